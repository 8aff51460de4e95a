"""Fault suite: things that stall instead of failing, on SQLite and PostgreSQL. A database write lock
held past the wait, and (below) a SnapTrade that never answers: each run ends with a short message."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session, select

from core.accounts.connections import reconcile_connections
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.messages import MAX_ERROR_CHARS
from core.settings import reset_settings_cache
from core.storage.db import create_db_engine
from core.storage.models import BrokerageConnection, TransactionSyncLog
from tests.syncsupport import connect, make_user

LOCK_WAIT_MS = 300


def claimed_run(engine, sandbox, history_size: int) -> tuple[int, int]:
    """A user with one connection at the sandbox and a run for it, claimed: (run id, connection id)."""
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=history_size)
        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection)).one()
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="manual")
        jobs.claim_run(s, run.id, "test-worker")
    return run.id, conn.id


def short_lock_wait(engine) -> None:
    """The run's connections give up on a held lock after LOCK_WAIT_MS instead of 30 s."""

    def on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
        else:
            cur.execute(f"SET lock_timeout = '{LOCK_WAIT_MS}ms'")
            dbapi_conn.commit()
        cur.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # pooled connections were opened with the long wait


class WriteLock:
    """Another connection holding the transactions table's write lock until released."""

    def __init__(self, engine) -> None:
        self.engine, self.held = engine, None

    def take(self) -> None:
        if self.engine.dialect.name == "sqlite":
            self.held = sqlite3.connect(self.engine.url.database, isolation_level=None, check_same_thread=False)
            self.held.execute("BEGIN IMMEDIATE")
        else:
            self.held = create_db_engine(self.engine.url.render_as_string(hide_password=False)).connect()
            self.held.execute(sa.text("LOCK TABLE brokerage_transactions IN EXCLUSIVE MODE"))

    def release(self, *_args) -> None:
        if self.held is not None:
            self.held.rollback()
            self.held.close()
            self.held = None


def test_a_write_lock_held_past_the_wait_ends_the_run_with_a_short_message(engine, sandbox, caplog):
    run_id, conn_id = claimed_run(engine, sandbox, history_size=2500)
    short_lock_wait(engine)
    lock = WriteLock(engine)
    # The lock is taken after the first page is stored, so the second page's write (its statement and a
    # thousand raw activities) is the one that gives up; it is let go as soon as that write fails, so the
    # run can record its end.
    event.listen(engine, "handle_error", lock.release)
    try:
        with caplog.at_level(logging.ERROR, logger="tradistry.sync"):
            run = execute_run(run_id, engine=engine, on_progress=lambda r: lock.held or lock.take())
    finally:
        lock.release()
    with Session(engine) as s:
        run = s.get(TransactionSyncLog, run_id)
        conn = s.get(BrokerageConnection, conn_id)
    assert run.status == "failed" and run.pages_done == 1
    for text in (run.error_message, conn.error_message, run.error_details["error"]["message"]):
        # was 104,770 characters on SQLite and 13,673 on PostgreSQL
        assert len(text) <= len("Unexpected error: ") + MAX_ERROR_CHARS, len(text)
        assert "INSERT" not in text and "[SQL" not in text and "BUY" not in text and "{" not in text
        assert "database error (" in text  # (OperationalError) on SQLite, (LockNotAvailable) on PostgreSQL
    assert "INSERT" in caplog.text, "the whole error, statement included, is in the log"


@pytest.mark.timeout(120)
def test_a_snaptrade_that_never_answers_ends_the_run_with_a_short_message(engine, sandbox, settings_env):
    for name, value in (
        ("HTTP_TIMEOUT_SECONDS", "0.5"),
        ("HTTP_MAX_RETRIES", "2"),
        ("HTTP_BACKOFF_BASE_SECONDS", "0.05"),
    ):
        settings_env.setenv(name, value)
    reset_settings_cache()
    run_id, conn_id = claimed_run(engine, sandbox, history_size=50)
    sandbox.hold_responses(3600, path_template="/accounts/{accountId}/activities")
    done = threading.Event()
    # In a thread with a bound: before timeouts were enforced this call never returned.
    t0 = time.monotonic()
    threading.Thread(target=lambda: (execute_run(run_id, engine=engine), done.set()), daemon=True).start()
    assert done.wait(60), "the run is still waiting for SnapTrade after 60 s"
    elapsed = time.monotonic() - t0
    with Session(engine) as s:
        run = s.get(TransactionSyncLog, run_id)
    accounts = run.accounts_total
    assert run.status == "failed" and accounts >= 1
    # each account: three attempts of 0.5 s, then the next account
    assert elapsed < accounts * 3 * (0.5 + 0.5) + 5, elapsed
    assert run.error_message.startswith(f"{accounts} of {accounts} account(s) could not be synced")
    assert run.error_message.count("SnapTrade did not answer the activities request within 0.5 s") == accounts
    assert len(run.error_message) < 150 * accounts
