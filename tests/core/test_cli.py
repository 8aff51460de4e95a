"""The command line contract, run as real subprocesses against the sandbox and both databases."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from cryptography.fernet import Fernet
from sqlmodel import Session, select

from core.reads.export import COLUMNS as EXPORT_KEYS
from core.storage.models import AppUser, BrokerageTransaction, SnapTradeUser

ROOT = Path(__file__).resolve().parents[2]


OUTPUTS: list[str] = []


def cli(env, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=dict(env, LOG_LEVEL="DEBUG"), input=stdin,
                       capture_output=True, text=True, timeout=180)  # fmt: skip
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
    for secret in (sandbox.user_secret(st_user.snaptrade_user_id), sandbox.consumer_key, env["ENCRYPTION_KEYS"], new_key):
        assert secret not in printed


def test_cli_sync_exits_nonzero_when_the_run_did_not_complete(engine, db_url, sandbox, tmp_path):
    env = cli_env(sandbox, db_url, tmp_path)
    cli(env, "users", "add", "erin", "--password-stdin", stdin="a long enough password\n")
    assert cli(env, "connect", "erin").returncode == 0
    with Session(engine) as s:
        st = s.exec(select(SnapTradeUser)).one().snaptrade_user_id
    auth_id = sandbox.create_connection(st, broker="SANDBOX_US", history_size=50)
    sandbox.disable_connection(auth_id)
    r = cli(env, "sync", "erin")
    assert r.returncode != 0 and "reconnect" in r.stdout.lower()
    missing = cli(env, "sync", "nobody")
    assert missing.returncode != 0 and "no user named" in missing.stderr


def test_production_cli_refuses_placeholder_keys(tmp_path):
    env = dict(os.environ, SNAPTRADE_CLIENT_ID="CID", SNAPTRADE_CONSUMER_KEY="KEY", ENCRYPTION_KEYS="changeme",
               AUTH_COOKIE_KEY="c" * 48, DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/x.db")  # fmt: skip
    r = cli(env, "migrate")
    assert r.returncode == 2 and "ENCRYPTION_KEYS" in r.stderr


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
