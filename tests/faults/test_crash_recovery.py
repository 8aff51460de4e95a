"""Fault suite: kill -9 of a worker mid-sync, the database going away, concurrent triggers.

Workers run as real processes (`python -m core worker`) against the sandbox over HTTP.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.jobs import queue as jobs
from core.storage.models import BrokerageConnection, BrokerageTransaction, TransactionSyncLog
from tests.syncsupport import assert_matches_ground_truth, connect, make_user

ROOT = Path(__file__).resolve().parents[2]
SOAK = bool(os.environ.get("SOAK"))


def worker_env(sb, db_url: str, tmp_path) -> dict:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data"), "SNAPTRADE_CLIENT_ID": sb.client_id,
        "SNAPTRADE_CONSUMER_KEY": sb.consumer_key, "SNAPTRADE_BASE_URL": sb.base_url,
        "ENCRYPTION_KEYS": os.environ["ENCRYPTION_KEYS"], "AUTH_COOKIE_KEY": "c" * 48,
        "SYNC_HEARTBEAT_SECONDS": "0.3", "SYNC_STALE_AFTER_SECONDS": "2", "WORKER_POLL_SECONDS": "0.2",
        "HTTP_BACKOFF_BASE_SECONDS": "0.05", "LOG_LEVEL": "WARNING",
    })  # fmt: skip
    return env


def start_worker(env, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "core", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _run(engine, run_id):
    with Session(engine) as s:
        return s.get(TransactionSyncLog, run_id)


def test_kill_9_mid_sync_then_restart_converges_to_ground_truth(engine, db_url, sandbox, tmp_path):
    sandbox.set_faults(latency_ms=15)
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=12000)
        from core.accounts.connections import reconcile_connections

        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection)).one()
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="initial")
    env = worker_env(sandbox, db_url, tmp_path)
    rng = random.Random(int(os.environ.get("FAULT_SEED", "4")))
    kills = 6 if SOAK else 2
    for _ in range(kills):
        proc = start_worker(env, tmp_path / "worker.log")
        target = rng.randint(1, 9)
        try:
            wait_for(
                lambda t=target: _latest_pages(engine, conn.id) >= t or _finished(engine, conn.id), 60, f"page {target}"
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if _finished(engine, conn.id):
            break
    finish_with_a_new_worker(engine, env, tmp_path, conn.id)
    with Session(engine) as s:
        runs = s.exec(select(TransactionSyncLog).order_by(TransactionSyncLog.id)).all()
        assert runs[-1].status == "completed", (
            runs[-1].status,
            runs[-1].error_message,
            open(tmp_path / "worker.log").read()[-2000:],
        )
        assert any(r.status == "interrupted" for r in runs), "the killed run is recorded as interrupted"
        ids = s.exec(select(BrokerageTransaction.snaptrade_activity_id)).all()
        assert len(ids) == len(set(ids))
        assert_matches_ground_truth(s, sandbox, uid)


def test_kill_9_while_a_journal_step_runs_beside_the_import_resumes_at_the_second_account(
    engine, db_url, sandbox, tmp_path
):
    """Killed once the first account is imported, when (on PostgreSQL) its journal step runs beside the second
    account's import: that step is stored whole or not at all, the next run resumes at the second account
    without fetching the first again, and the journal ends current."""
    from core.jobs.queue import REQUEUED_MESSAGE
    from core.storage.models import BrokerageAccount
    from tests.core.journal.builders import assert_journal_is_current

    sandbox.set_faults(latency_ms=15)
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=5000)
        from core.accounts.connections import reconcile_connections

        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection)).one()
        first, second = s.exec(select(BrokerageAccount).order_by(BrokerageAccount.id)).all()
        jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="initial")
    env = worker_env(sandbox, db_url, tmp_path)
    proc = start_worker(env, tmp_path / "worker.log")
    try:
        wait_for(lambda: (_latest_run(engine, conn.id).accounts_done or 0) >= 1, 120, "the first account's import")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with engine.connect() as c:
        trips = c.execute(
            sa.text("SELECT count(*) FROM journal_round_trips WHERE account_id = :a"), {"a": first.id}
        ).scalar()
        marks = c.execute(
            sa.text("SELECT count(*) FROM journal_dirty_pairs WHERE account_id = :a"), {"a": first.id}
        ).scalar()
    assert (trips == 0) == (marks > 0), "the first account's journal step is stored whole or not at all"
    killed = _latest_run(engine, conn.id)
    assert killed.status == "running", "killed before the run ended"
    sandbox.reset_request_log()
    finish_with_a_new_worker(engine, env, tmp_path, conn.id)
    fetched = {r["path"] for r in sandbox.request_log() if r["path"].endswith("/activities")}
    assert fetched == {f"/accounts/{second.snaptrade_account_id}/activities"}, "resumes at the second account"
    with Session(engine) as s:
        told = s.get(TransactionSyncLog, killed.id)
        assert (told.status, told.error_message) == ("interrupted", REQUEUED_MESSAGE), "what the Sync page says"
        assert _latest_run(engine, conn.id).status == "completed"
        assert_journal_is_current(s, uid)
        assert_matches_ground_truth(s, sandbox, uid)


def _latest_run(engine, connection_id) -> TransactionSyncLog | None:
    with Session(engine) as s:
        return s.exec(select(TransactionSyncLog).where(TransactionSyncLog.connection_id == connection_id)
                      .order_by(TransactionSyncLog.id.desc())).first()  # fmt: skip


def finish_with_a_new_worker(engine, env, tmp_path, connection_id) -> None:
    """A worker started afresh, stopped (SIGTERM) once the connection's latest run has finished."""
    proc = start_worker(env, tmp_path / "worker.log")
    try:
        wait_for(lambda: _finished(engine, connection_id), 120, "the requeued run to finish")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _latest_pages(engine, connection_id) -> int:
    run = _latest_run(engine, connection_id)
    return run.pages_done if run else 0


def _finished(engine, connection_id) -> bool:
    run = _latest_run(engine, connection_id)
    return run is not None and run.status in ("completed", "partial", "failed")


def test_concurrent_triggers_yield_one_run_per_connection(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=50)
        connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=50)
        from core.accounts.connections import reconcile_connections

        reconcile_connections(s, user_id=uid)
        conn_ids = [c.id for c in s.exec(select(BrokerageConnection))]
    errors = []

    def trigger(i):
        try:
            with Session(engine, expire_on_commit=False) as s:
                if i % 3 == 0:
                    jobs.request_manual_sync(s, user_id=uid)
                else:
                    jobs.enqueue_sync(
                        s, user_id=uid, connection_id=conn_ids[i % 2], trigger="webhook" if i % 3 == 1 else "scheduled"
                    )
        except jobs.ManualSyncLimitExceeded:
            pass
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=trigger, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Session(engine) as s:
        active = s.exec(select(TransactionSyncLog.connection_id, sa.func.count()).where(
            TransactionSyncLog.status.in_(("queued", "running"))).group_by(TransactionSyncLog.connection_id)).all()  # fmt: skip
        assert sorted(c for c, _ in active) == sorted(conn_ids)
        assert all(n == 1 for _, n in active)


def test_double_sync_now_yields_one_run(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=20)
        from core.accounts.connections import reconcile_connections

        reconcile_connections(s, user_id=uid)
        first = jobs.request_manual_sync(s, user_id=uid)
        second = jobs.request_manual_sync(s, user_id=uid)
        assert [r.id for r in first] == [r.id for r in second]


def test_manual_sync_limit_is_enforced_with_a_clear_message(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=20)
        from core.accounts.connections import reconcile_connections

        reconcile_connections(s, user_id=uid)
        for _ in range(5):
            jobs.request_manual_sync(s, user_id=uid)
        with pytest.raises(jobs.ManualSyncLimitExceeded) as exc:
            jobs.request_manual_sync(s, user_id=uid)
        assert "5 manual syncs every 60 seconds" in str(exc.value) and exc.value.retry_after_seconds > 0
        assert jobs.manual_sync_quota(s, uid).remaining == 0
