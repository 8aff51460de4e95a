"""Fault suite: the database going away mid-sync, two workers on one PostgreSQL, and secrets in logs."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.connections import reconcile_connections
from core.jobs import queue as jobs
from core.settings import reset_settings_cache
from core.storage import migrate
from core.storage.db import create_db_engine
from core.storage.models import BrokerageConnection, TransactionSyncLog
from tests.faults.test_crash_recovery import start_worker, wait_for, worker_env
from tests.pgserver import find_pg_bin, start_postgres
from tests.syncsupport import assert_matches_ground_truth, connect, make_user, snaptrade_user_id, sync_now


@pytest.fixture
def private_pg(settings_env):
    """A PostgreSQL server of this test's own, so stopping it harms no other test."""
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL binaries on this machine")
    server = start_postgres()
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text("CREATE DATABASE app"))
    admin.dispose()
    url = server.url_for("app")
    settings_env.setenv("DATABASE_URL", url)
    settings_env.setenv("SYNC_STALE_AFTER_SECONDS", "2")
    settings_env.setenv("SYNC_HEARTBEAT_SECONDS", "0.3")
    settings_env.setenv("HTTP_BACKOFF_BASE_SECONDS", "0.05")
    reset_settings_cache()
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    yield server, engine
    engine.dispose()
    server.destroy()


def test_database_going_away_mid_sync_fails_cleanly_and_the_next_run_recovers(private_pg, sandbox):
    from core.jobs.worker import Worker

    server, engine = private_pg
    sandbox.set_faults(latency_ms=20)
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=9000)
        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection)).one()
        jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="initial")
    worker = Worker(engine=engine, poll_seconds=0.2).start()
    try:

        def pages():
            try:
                with Session(engine) as s:
                    return s.exec(select(sa.func.max(TransactionSyncLog.pages_done))).one() or 0
            except sa.exc.OperationalError:
                return 0

        wait_for(lambda: pages() >= 3, 60, "three pages")
        server.stop("immediate")  # the database disappears mid-run
        time.sleep(1.5)
        server.start()
        wait_for(lambda: _last_status(engine) == "completed", 120, "recovery")
    finally:
        worker.stop()
    with Session(engine) as s:
        statuses = [r.status for r in s.exec(select(TransactionSyncLog).order_by(TransactionSyncLog.id))]
        assert statuses[-1] == "completed" and "interrupted" in statuses
        assert_matches_ground_truth(s, sandbox, uid)


def _last_status(engine):
    try:
        with Session(engine) as s:
            run = s.exec(select(TransactionSyncLog).order_by(TransactionSyncLog.id.desc())).first()
            return run.status if run else None
    except sa.exc.OperationalError:
        return None


def test_two_workers_on_one_postgresql_never_sync_the_same_connection_at_once(private_pg, sandbox, tmp_path):
    server, engine = private_pg
    sandbox.set_faults(latency_ms=5)
    with Session(engine, expire_on_commit=False) as s:
        uids = [make_user(s, f"user{i}") for i in range(3)]
        for uid in uids:
            connect(s, sandbox, uid, broker="SANDBOX_US", history_size=1500)
            connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=800)
            reconcile_connections(s, user_id=uid)
        conns = s.exec(select(BrokerageConnection)).all()
    env = worker_env(sandbox, server.url_for("app"), tmp_path)
    workers = [start_worker(env, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        deadline = time.time() + 20
        while time.time() < deadline:  # keep poking: every entry point races the workers
            with Session(engine, expire_on_commit=False) as s:
                for c in conns:
                    jobs.enqueue_sync(s, user_id=c.user_id, connection_id=c.id, trigger="webhook")
            time.sleep(0.3)
        wait_for(lambda: _all_idle(engine), 120, "the queue to drain")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=30) == 0  # SIGTERM stops cleanly
    with Session(engine) as s:
        runs = s.exec(select(TransactionSyncLog)).all()
        assert len({r.worker_id for r in runs}) == 2, "both workers took work"
        by_conn: dict[int, list] = {}
        for r in runs:
            assert r.status == "completed", (r.status, r.error_message)
            by_conn.setdefault(r.connection_id, []).append((r.started_at, r.completed_at))
        for spans in by_conn.values():
            spans.sort()
            for (_s1, e1), (s2, _e2) in zip(spans, spans[1:]):
                assert e1 <= s2, "two runs of one connection overlapped"
        for uid in uids:
            assert_matches_ground_truth(s, sandbox, uid)


def _all_idle(engine) -> bool:
    with Session(engine) as s:
        return s.exec(select(sa.func.count()).select_from(TransactionSyncLog)
                      .where(TransactionSyncLog.status.in_(("queued", "running")))).one() == 0  # fmt: skip


def test_secrets_never_reach_logs_or_errors(engine, sandbox, caplog, settings_env):
    """Run syncs through every failure path with DEBUG logging everywhere (urllib3 included)."""
    from core.redaction import install_log_redaction

    install_log_redaction()
    settings_env.setenv("HTTP_BACKOFF_BASE_SECONDS", "0.01")
    settings_env.setenv("HTTP_MAX_RETRIES", "2")
    reset_settings_cache()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        auth = connect(s, sandbox, uid, history_size=2000)
        secret = None
        from core.accounts.connections import get_snaptrade_identity

        secret = get_snaptrade_identity(s, uid).user_secret
    sandbox.set_faults(error_rate=0.3, drop_rate=0.2, malformed_rate=0.05, seed=9)
    runs = sync_now(engine, uid)
    sandbox.set_faults()
    sandbox.disable_connection(auth)
    runs += sync_now(engine, uid)
    texts = [caplog.text] + [str(r.error_message) + str(r.error_details) for r in runs]
    with Session(engine) as s:
        texts.append(snaptrade_user_id(s, uid))  # sanity: the user id itself may appear
    blob = "\n".join(texts[:-1])
    # The SDK's DEBUG request lines name the userSecret query parameter (its value is redacted): proof
    # that the logs searched below really hold the requests that carried the secret.
    assert "userSecret" in blob, "the DEBUG logs of the SnapTrade requests were captured"
    assert secret and secret not in blob
    assert sandbox.consumer_key not in blob
    assert os.environ["AUTH_COOKIE_KEY"] not in blob
