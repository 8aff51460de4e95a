"""The command line contract, run as real subprocesses against the sandbox and both databases."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from core.reads.export import COLUMNS as EXPORT_KEYS
from core.storage.models import AppUser, BrokerageTransaction, SnapTradeUser, TransactionSyncLog
from tests.faults.test_crash_recovery import wait_for
from tests.syncsupport import assert_matches_ground_truth

ROOT = Path(__file__).resolve().parents[2]


OUTPUTS: list[str] = []


def cli(env, *args, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=dict(env, LOG_LEVEL="DEBUG"), input=stdin,
                       capture_output=True, text=True, timeout=timeout)  # fmt: skip
    OUTPUTS.append(r.stdout + r.stderr)
    return r


def cli_env(sandbox, db_url, tmp_path) -> dict:
    env = dict(os.environ)
    env.update({"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "cli-data"), "SNAPTRADE_CLIENT_ID": sandbox.client_id,
                "SNAPTRADE_CONSUMER_KEY": sandbox.consumer_key, "SNAPTRADE_BASE_URL": sandbox.base_url,
                "ENCRYPTION_KEYS": os.environ["ENCRYPTION_KEYS"], "AUTH_COOKIE_KEY": "c" * 48})  # fmt: skip
    return env


def test_cli_end_to_end_users_connect_sync_export(engine, db_url, sandbox, tmp_path):
    env = cli_env(sandbox, db_url, tmp_path)
    assert cli(env, "migrate").returncode == 0
    r = cli(env, "users", "add", "Carol", "--role", "trader", "--email", "c@example.com", "--password-stdin",
            stdin="a long enough password\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    dup = cli(env, "users", "add", "carol", "--password-stdin", stdin="a long enough password\n")
    assert dup.returncode != 0 and "carol" in dup.stderr.lower() and "Traceback" not in dup.stderr
    short = cli(env, "users", "add", "dave", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "Traceback" not in short.stderr

    r = cli(env, "connect", "carol", "--broker", "SANDBOX_US", "--redirect", "http://127.0.0.1:8501/callback")
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip().splitlines()[-1]
    assert url.startswith(sandbox.base_url)
    with Session(engine) as s:
        uid = s.exec(select(AppUser.id).where(AppUser.username == "carol")).one()
        st_user = s.exec(select(SnapTradeUser).where(SnapTradeUser.user_id == uid)).one()
        assert st_user.snaptrade_user_id.startswith("tds-") and "carol" not in st_user.snaptrade_user_id
    sandbox.create_connection(st_user.snaptrade_user_id, broker="SANDBOX_CRYPTO", history_size=1500)

    r = cli(env, "sync", "carol")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "completed" in r.stdout and "%" in r.stderr  # a progress bar was drawn
    truth = sandbox.ground_truth(st_user.snaptrade_user_id)
    n = sum(len(v) for v in truth.values())

    out = tmp_path / "export.json"
    assert cli(env, "export", "carol", "--format", "json", "--out", str(out)).returncode == 0
    rows = json.loads(out.read_text())
    assert len(rows) == n and set(EXPORT_KEYS) <= set(rows[0])
    with Session(engine) as s:
        by_id = {t.snaptrade_activity_id: t for t in s.exec(select(BrokerageTransaction))}
    for row in rows:
        t = by_id[row["snaptrade_activity_id"]]
        for key in ("quantity", "price", "amount", "fee", "fx_rate"):
            value = row[key]
            assert value is None or (isinstance(value, str) and Decimal(value) == getattr(t, key))
        assert row["trade_date"] == t.trade_date.isoformat()
        assert row["settlement_date"] in (None, t.settlement_date and t.settlement_date.isoformat())

    r = cli(env, "export", "carol", "--format", "csv")
    assert r.returncode == 0
    parsed = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(parsed) == n and list(parsed[0]) == list(EXPORT_KEYS)

    # Rotation: re-encrypt under a new first key, then the old key alone is no longer needed.
    new_key = Fernet.generate_key().decode()
    env_both = dict(env, ENCRYPTION_KEYS=f"{new_key},{env['ENCRYPTION_KEYS']}")
    r = cli(env_both, "rotate-key")
    assert r.returncode == 0 and "re-encrypted 1" in r.stdout
    env_new = dict(env, ENCRYPTION_KEYS=new_key)
    assert cli(env_new, "sync", "carol").returncode == 0
    wrong = cli(dict(env, ENCRYPTION_KEYS=Fernet.generate_key().decode()), "sync", "carol")
    assert wrong.returncode != 0 and "ENCRYPTION_KEYS" in wrong.stderr and "Traceback" not in wrong.stderr
    # Nothing the commands printed, DEBUG logs included, holds a secret.
    printed = "\n".join(OUTPUTS)
    assert "userSecret=[REDACTED]" in printed  # the DEBUG request log really was printed, scrubbed
    for secret in (
        sandbox.user_secret(st_user.snaptrade_user_id),
        sandbox.consumer_key,
        env["ENCRYPTION_KEYS"],
        new_key,
    ):
        assert secret not in printed


def _connected_trader(env, engine, sandbox, username: str, broker: str) -> str:
    """A trader added and registered through the CLI, with one sandbox connection of 50 activities; its id."""
    cli(env, "users", "add", username, "--password-stdin", stdin="a long enough password\n")
    assert cli(env, "connect", username).returncode == 0
    with Session(engine) as s:
        st = s.exec(select(SnapTradeUser)).one().snaptrade_user_id
    return sandbox.create_connection(st, broker=broker, history_size=50)


def test_cli_sync_exits_nonzero_when_the_run_did_not_complete(engine, db_url, sandbox, tmp_path):
    env = cli_env(sandbox, db_url, tmp_path)
    sandbox.disable_connection(_connected_trader(env, engine, sandbox, "erin", "SANDBOX_US"))
    r = cli(env, "sync", "erin")
    assert r.returncode != 0 and "reconnect" in r.stdout.lower()
    missing = cli(env, "sync", "nobody")
    assert missing.returncode != 0 and "no user named" in missing.stderr


def test_cli_sync_with_nothing_new_makes_two_requests_like_the_worker(engine, db_url, sandbox, tmp_path):
    env = cli_env(sandbox, db_url, tmp_path)
    _connected_trader(env, engine, sandbox, "frank", "SANDBOX_CRYPTO")
    assert cli(env, "sync", "frank").returncode == 0
    sandbox.reset_request_log()
    r = cli(env, "sync", "frank")
    assert r.returncode == 0 and "completed" in r.stdout, r.stderr
    # The CLI's reconcile (connections + accounts) and nothing more: the run reuses it.
    assert [e["path_template"] for e in sandbox.request_log()] == ["/authorizations", "/accounts/all"]


def _bare_env(tmp_path) -> dict:
    """Sandbox mode on a SQLite file of its own: enough for commands that never reach SnapTrade."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPTRADE_")}
    return dict(env, DATA_DIR=str(tmp_path / "data"), DATABASE_URL=f"sqlite:///{tmp_path}/cli.db", LOG_LEVEL="INFO")


def test_users_add_without_a_terminal_or_password_stdin_says_what_to_do(tmp_path):
    # A new session has no controlling terminal, so getpass cannot open /dev/tty and falls back to the empty stdin.
    r = subprocess.run([sys.executable, "-m", "core", "users", "add", "bob"], cwd=ROOT, env=_bare_env(tmp_path),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, start_new_session=True)  # fmt: skip
    assert r.returncode == 2
    assert "--password-stdin" in r.stderr and "EOFError" not in r.stderr  # was "error: EOFError: "


def test_long_user_input_is_echoed_cut(tmp_path):
    env = _bare_env(tmp_path)
    assert cli(env, "migrate").returncode == 0
    long = "a" * 100_000
    for args in (
        ["export", long],
        ["sync", long],
        ["users", "add", "bob", "--role", long],
        ["users", "add", "bob", long],
    ):
        r = cli(env, *args, stdin="")
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert "a" * 41 not in r.stderr and "100,000 characters" in r.stderr, args  # was echoed in full
        assert len(r.stderr) < 1500, args


def test_production_cli_refuses_placeholder_keys(tmp_path):
    env = dict(os.environ, SNAPTRADE_CLIENT_ID="CID", SNAPTRADE_CONSUMER_KEY="KEY", ENCRYPTION_KEYS="changeme",
               AUTH_COOKIE_KEY="c" * 48, DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/x.db")  # fmt: skip
    r = cli(env, "migrate")
    assert r.returncode == 2 and "ENCRYPTION_KEYS" in r.stderr


def test_cli_reset_secret_rotates_and_after_a_refusal_registers_again(engine, db_url, sandbox, tmp_path):
    from core.accounts.crypto import decrypt_secret

    env = cli_env(sandbox, db_url, tmp_path)
    cli(env, "users", "add", "frank", "--password-stdin", stdin="a long enough password\n")
    none_yet = cli(env, "users", "reset-secret", "frank")
    assert none_yet.returncode == 2 and "no SnapTrade registration" in none_yet.stderr
    assert cli(env, "connect", "frank").returncode == 0
    with Session(engine) as s:
        st = s.exec(select(SnapTradeUser)).one().snaptrade_user_id
    sandbox.create_connection(st, broker="SANDBOX_US", history_size=20)
    first = sandbox.user_secret(st)

    r = cli(env, "users", "reset-secret", "frank")  # a proactive rotation, e.g. after a suspected leak
    assert r.returncode == 0 and "reset and stored" in r.stdout, r.stderr
    second = sandbox.user_secret(st)
    with Session(engine) as s:
        assert second != first and decrypt_secret(s.exec(select(SnapTradeUser)).one().user_secret_encrypted) == second

    sandbox.invalidate_user_secret(st)
    r = cli(env, "sync", "frank")
    assert r.returncode != 0 and "1083" in r.stderr and "users reset-secret frank" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli(env, "users", "reset-secret", "frank")
    assert r.returncode == 3 and "--register-again" in r.stderr
    r = cli(env, "users", "reset-secret", "frank", "--register-again")
    assert r.returncode == 0 and "Registered with SnapTrade again" in r.stdout, r.stderr
    with Session(engine) as s:
        row = s.exec(select(SnapTradeUser)).one()
        assert row.snaptrade_user_id != st and row.status == "active"
        new = sandbox.user_secret(row.snaptrade_user_id)
    printed = "\n".join(OUTPUTS)
    for secret in (first, second, new):
        assert secret not in printed


# --------------------------------------------------------------------------- a sync that crashes, is stopped, or follows a worker


def cli_popen(env, log_path, *args) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, stdout=log, stderr=log)


def latest_run(engine) -> TransactionSyncLog | None:
    with Session(engine) as s:
        return s.exec(select(TransactionSyncLog).order_by(TransactionSyncLog.id.desc())).first()


def saved_offset(run: TransactionSyncLog) -> int:
    [account] = run.checkpoint["accounts"].values()
    return account["offset"]


def one_slow_account(engine, db_url, sandbox, tmp_path, history_size: int = 9000) -> dict:
    """A user "frank" with one 9-page account, a sandbox that answers in 100 ms, and a short stale-run rule."""
    env = cli_env(sandbox, db_url, tmp_path)
    env.update({"SYNC_STALE_AFTER_SECONDS": "2", "SYNC_HEARTBEAT_SECONDS": "0.3", "HTTP_BACKOFF_BASE_SECONDS": "0.05",
                "WORKER_POLL_SECONDS": "0.2", "LOG_LEVEL": "WARNING"})  # fmt: skip
    cli(env, "users", "add", "frank", "--password-stdin", stdin="a long enough password\n")
    assert cli(env, "connect", "frank").returncode == 0
    with Session(engine) as s:
        st = s.exec(select(SnapTradeUser)).one().snaptrade_user_id
    sandbox.create_connection(st, broker="SANDBOX_CRYPTO", history_size=history_size)
    sandbox.set_faults(latency_ms=100)
    return env


def reset_request_log_after_the_dead(sandbox) -> None:
    """The sandbox logs a request when it answers: let the requests a dead or stopped client left in
    flight (100 ms each) land before the log is cleared, so they are not taken for the next client's."""
    time.sleep(1.0)
    sandbox.reset_request_log()


def first_activities_offset(sandbox) -> int:
    return next(int(e["params"]["offset"]) for e in sandbox.request_log() if e["path_template"].endswith("/activities"))


def test_cli_sync_takes_over_a_crashed_cli_sync_and_resumes_where_it_stopped(engine, db_url, sandbox, tmp_path):
    env = one_slow_account(engine, db_url, sandbox, tmp_path)
    first = cli_popen(env, tmp_path / "first.log", "sync", "frank")
    try:
        wait_for(lambda: (r := latest_run(engine)) and r.pages_done >= 2, 60, "two pages")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    crashed = latest_run(engine)
    reset_request_log_after_the_dead(sandbox)
    try:
        second = cli(env, "sync", "frank", timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the second sync waited on the dead run instead of taking it over") from None
    assert second.returncode == 0, second.stderr[-2000:]
    assert "completed" in second.stdout and f"run {crashed.id}: its worker stopped answering" in second.stderr
    assert first_activities_offset(sandbox) == saved_offset(crashed) == 1000 * crashed.pages_done, (
        "resumed at the saved page"
    )
    with Session(engine) as s:
        assert s.get(TransactionSyncLog, crashed.id).status == "interrupted"
        assert_matches_ground_truth(s, sandbox, s.exec(select(AppUser.id)).one())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_sync_stops_cleanly_on_a_signal_and_the_next_sync_resumes(engine, db_url, sandbox, tmp_path, signum):
    env = one_slow_account(engine, db_url, sandbox, tmp_path)
    proc = cli_popen(env, tmp_path / "stopped.log", "sync", "frank")
    try:
        wait_for(lambda: (r := latest_run(engine)) and r.pages_done >= 2, 60, "two pages")
        proc.send_signal(signum)
        code = proc.wait(timeout=15)
    finally:
        proc.kill()
    output = (tmp_path / "stopped.log").read_text()
    assert code != 0 and "Traceback" not in output and "stopped on request" in output, output[-2000:]
    stopped = latest_run(engine)
    assert stopped.status == "interrupted" and stopped.error_message.startswith("Stopped on request")
    assert saved_offset(stopped) == 1000 * stopped.pages_done >= 2000
    reset_request_log_after_the_dead(sandbox)
    again = cli(env, "sync", "frank")
    assert again.returncode == 0, again.stderr[-2000:]
    assert first_activities_offset(sandbox) == saved_offset(stopped)
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, s.exec(select(AppUser.id)).one())


def test_cli_sync_following_a_workers_run_stops_on_sigterm_and_leaves_the_run_alone(engine, db_url, sandbox, tmp_path):
    env = one_slow_account(engine, db_url, sandbox, tmp_path, history_size=20000)
    sandbox.set_faults(latency_ms=300)  # the worker's run lasts well past the follower's stop
    with Session(engine, expire_on_commit=False) as s:
        from core.accounts.connections import reconcile_connections
        from core.jobs import queue as jobs

        uid = s.exec(select(AppUser.id)).one()
        reconcile_connections(s, user_id=uid)
        [run] = jobs.request_manual_sync(s, user_id=uid)
    worker = cli_popen(env, tmp_path / "worker.log", "worker")
    try:
        wait_for(
            lambda: (r := latest_run(engine)) and r.status == "running" and r.pages_done >= 1, 60, "the worker's run"
        )
        follower = cli_popen(env, tmp_path / "follower.log", "sync", "frank")
        try:
            # Its progress bar is drawn: it is in the loop that follows the worker's run.
            wait_for(lambda: "pages " in (tmp_path / "follower.log").read_text(), 30, "the follower's progress")
            follower.send_signal(signal.SIGTERM)
            try:
                code = follower.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise AssertionError("SIGTERM did not stop a sync that follows a worker's run") from None
        finally:
            follower.kill()
        assert latest_run(engine).status == "running", "the follower stopped before the run ended"
        assert code != 0 and "Traceback" not in (tmp_path / "follower.log").read_text()
        assert latest_run(engine).id == run.id
        wait_for(lambda: latest_run(engine).status == "completed", 120, "the worker to finish its run")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


ROUND_TRIP_KEYS = ["account", "instrument", "currency", "direction", "status", "opened_on", "closed_on", "quantity",
                   "gross_pnl", "fees", "net_pnl", "flags", "activities"]  # fmt: skip
SUMMARY_KEYS = ["currency", "closed_trades", "wins", "losses", "scratches", "win_rate", "gross_profit", "gross_loss",
                "profit_factor", "expectancy", "average_win", "average_loss", "largest_win", "largest_loss",
                "max_drawdown", "average_holding_days"]  # fmt: skip
POSITION_KEYS = ["account", "instrument", "currency", "quantity", "cost_basis", "broker_quantity", "status"]


def test_cli_trades_and_positions_print_issue_22s_json_of_a_synced_user_and_journal_rebuild_keeps_it(
    engine, db_url, sandbox, tmp_path
):
    """The JSON equals the engine run over the synced activities (a path that never reads the journal
    tables) and the sandbox's positions, string for string."""
    from core.journal.jsonout import positions_json, trades_json
    from core.journal.positions import held_positions
    from core.journal.reconcile import BrokerPosition, reconcile
    from core.storage.models import BrokerageAccount
    from sandbox import shapes
    from tests.core.journal.builders import engine_journal

    env = cli_env(sandbox, db_url, tmp_path)
    cli(env, "users", "add", "jules", "--password-stdin", stdin="a long enough password\n")
    assert cli(env, "connect", "jules").returncode == 0
    with Session(engine) as s:
        st = s.exec(select(SnapTradeUser)).one().snaptrade_user_id
    sandbox.create_connection(st, broker="SANDBOX_US", history_size=1200)
    sandbox.create_connection(st, broker="SANDBOX_CA", history_size=400)
    assert cli(env, "sync", "jules").returncode == 0

    trades = cli(env, "trades", "jules", "--format", "json")
    assert trades.returncode == 0, trades.stderr
    payload = json.loads(trades.stdout)
    with Session(engine) as s:
        uid = s.exec(select(AppUser.id).where(AppUser.username == "jules")).one()
        reference = engine_journal(s, uid)
        broker = [BrokerPosition(account=a.snaptrade_account_id, instrument=h.instrument, currency=h.currency, units=h.units)
                  for a in s.exec(select(BrokerageAccount))
                  for h in held_positions(shapes.positions(sandbox.state, sandbox.state.accounts[a.snaptrade_account_id])["results"])]  # fmt: skip
    assert payload == json.loads(json.dumps(trades_json(reference.round_trips)))
    assert list(payload) == ["round_trips", "summary", "daily"] and len(payload["round_trips"]) > 50
    assert all(list(rt) == ROUND_TRIP_KEYS for rt in payload["round_trips"])
    assert [s["currency"] for s in payload["summary"]] == ["CAD", "USD"]
    assert all(list(s) == SUMMARY_KEYS for s in payload["summary"])
    assert all(list(d) == ["date", "currency", "net_pnl", "trades"] for d in payload["daily"])
    closed = [rt for rt in payload["round_trips"] if rt["status"] == "closed" and not rt["flags"]]
    assert closed and all(isinstance(rt["net_pnl"], str) and Decimal(rt["net_pnl"]) == Decimal(rt["gross_pnl"]) - Decimal(rt["fees"])
                          for rt in closed)  # fmt: skip

    out = tmp_path / "positions.json"
    positions = cli(env, "positions", "jules", "--format", "json", "--out", str(out))
    assert positions.returncode == 0 and positions.stdout == ""
    held = json.loads(out.read_text())
    assert held == json.loads(json.dumps(positions_json(reconcile(reference.positions, broker))))
    assert held["positions"] and all(list(p) == POSITION_KEYS for p in held["positions"])
    assert {p["status"] for p in held["positions"]} <= {"matched", "differs", "not_at_broker", "only_at_broker"}

    rebuilt = cli(env, "journal", "rebuild", "jules")
    assert rebuilt.returncode == 0 and "jules: journal rebuilt" in rebuilt.stdout
    assert cli(env, "journal", "rebuild", "--all").returncode == 0
    assert json.loads(cli(env, "trades", "jules", "--format", "json").stdout) == payload
    assert cli(env, "journal", "rebuild").returncode == 2
    assert "no user named" in cli(env, "trades", "nobody", "--format", "json").stderr


def test_the_banner_names_the_database_in_use_without_its_password(tmp_path):
    env = _bare_env(tmp_path)  # no SnapTrade credentials: sandbox mode
    r = cli(env, "banner")
    assert r.returncode == 0, r.stderr
    assert f"Database: sqlite:///{tmp_path}/cli.db" in r.stdout and "under data/" not in r.stdout
    assert "demo trader login:" in r.stdout
    pg = cli(dict(env, DATABASE_URL="postgresql+psycopg://app:s3cret-pw@db.internal:5432/tradistry"), "banner")
    assert "Database: postgresql+psycopg://app:***@db.internal:5432/tradistry" in pg.stdout
    assert "s3cret-pw" not in pg.stdout + pg.stderr


def test_an_output_file_that_cannot_be_written_is_named_in_a_sentence(tmp_path):
    env = _bare_env(tmp_path)
    assert cli(env, "migrate").returncode == 0
    assert cli(env, "users", "add", "carol", "--password-stdin", stdin="a long enough password\n").returncode == 0
    r = cli(env, "export", "carol", "--out", str(tmp_path / "missing" / "x.csv"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    [said] = [line for line in r.stderr.splitlines() if line.startswith("error:")]  # the log has the detail
    assert said == f"error: cannot use {tmp_path}/missing/x.csv: No such file or directory"
