"""core/jobs/worker.py: the worker claims queued runs and runs them against the sandbox, keeps a running run's
heartbeat, recovers runs whose worker died, schedules due connections, and hands its run back when stopped."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.connections import reconcile_connections
from core.jobs import queue as jobs
from core.jobs.worker import Heartbeat, Worker
from core.storage.models import BrokerageConnection, TransactionSyncLog, utcnow
from tests import factories as f
from tests.syncsupport import connect, make_user


def wait_for(predicate, timeout: float = 60.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


def get_run(engine, run_id: int) -> TransactionSyncLog:
    with Session(engine) as s:
        return s.get(TransactionSyncLog, run_id)


@pytest.fixture
def connection(engine, sandbox) -> BrokerageConnection:
    """A trader with one sandbox connection of 120 activities, known to the database."""
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=120)
        reconcile_connections(s, user_id=uid)
        return s.exec(select(BrokerageConnection).where(BrokerageConnection.user_id == uid)).one()


def enqueue(engine, connection: BrokerageConnection, trigger: str = "manual") -> TransactionSyncLog:
    with Session(engine, expire_on_commit=False) as s:
        return jobs.enqueue_sync(s, user_id=connection.user_id, connection_id=connection.id, trigger=trigger)[0]


def test_run_once_claims_the_queued_run_and_runs_it_to_completion(engine, connection):
    run = enqueue(engine, connection)
    worker = Worker(engine, worker_id="w-test", scheduler=False)
    assert worker.run_once() is True
    done = get_run(engine, run.id)
    assert (done.status, done.worker_id, done.attempts) == ("completed", "w-test", 1)
    assert done.transactions_new > 100 and done.heartbeat_at is not None
    assert worker.run_once() is False  # nothing left


def test_a_running_worker_picks_up_a_run_queued_after_it_started_and_stops_when_asked(engine, connection):
    others = set(threading.enumerate())
    worker = Worker(engine, worker_id="w-bg", poll_seconds=0.05, scheduler=False).start()
    try:
        run = enqueue(engine, connection)
        wait_for(lambda: get_run(engine, run.id).status == "completed")
    finally:
        worker.stop(timeout=30)
    assert worker.stopping
    assert [t.name for t in set(threading.enumerate()) - others if t.name == "sync-worker"] == []


def test_a_stale_run_is_interrupted_and_its_resumption_is_run(engine, connection):
    dead = enqueue(engine, connection)
    with Session(engine) as s:
        jobs.claim_run(s, dead.id, "dead-worker")
        s.execute(sa.update(TransactionSyncLog).where(TransactionSyncLog.id == dead.id)
                  .values(heartbeat_at=utcnow() - timedelta(minutes=10)))  # fmt: skip
        s.commit()
    assert Worker(engine, worker_id="w-live", scheduler=False).run_once() is True
    old = get_run(engine, dead.id)
    assert old.status == "interrupted" and old.worker_id == "dead-worker"
    with Session(engine) as s:
        (resumed,) = s.exec(select(TransactionSyncLog).where(TransactionSyncLog.id != dead.id)).all()
    assert (resumed.status, resumed.worker_id) == ("completed", "w-live")
    assert resumed.error_details["resumed_from"] == dead.id


def test_a_stopped_worker_hands_its_run_back_to_the_queue(engine, connection):
    run = enqueue(engine, connection)
    worker = Worker(engine, worker_id="w-stopping", scheduler=False)
    with Session(engine) as s:
        jobs.claim_run(s, run.id, worker.worker_id)
    worker.stop()  # e.g. SIGTERM before the first account
    assert worker.execute(run.id).status == "queued"
    back = get_run(engine, run.id)
    assert back.status == "queued" and back.worker_id is None and "will resume" in back.phase


def test_the_heartbeat_touches_a_running_run_until_it_ends(engine):
    with Session(engine, expire_on_commit=False) as s:
        user, conn, _ = f.make_trader(s)
        running = f.make_run(s, user, conn, status="running", heartbeat_at=utcnow() - timedelta(minutes=5))
        finished = f.make_run(s, user, None, status="completed", heartbeat_at=utcnow() - timedelta(minutes=5))
    before, untouched = get_run(engine, running.id).heartbeat_at, get_run(engine, finished.id).heartbeat_at
    with Heartbeat(engine, running.id, every=0.05), Heartbeat(engine, finished.id, every=0.05):
        wait_for(lambda: get_run(engine, running.id).heartbeat_at != before, timeout=10)
    last = get_run(engine, running.id).heartbeat_at
    time.sleep(0.3)
    assert get_run(engine, running.id).heartbeat_at == last  # stopped with the block
    assert get_run(engine, finished.id).heartbeat_at == untouched  # only running runs are touched


def test_maintenance_queues_due_connections_only_when_the_worker_schedules(engine):
    with Session(engine, expire_on_commit=False) as s:
        _, due, _ = f.make_trader(s)  # active, auto-sync on, never synced: due now
    Worker(engine, scheduler=False).maintenance()
    with Session(engine) as s:
        assert s.exec(select(TransactionSyncLog)).all() == []
    Worker(engine, scheduler=True).maintenance()
    with Session(engine) as s:
        (run,) = s.exec(select(TransactionSyncLog)).all()
        assert (run.connection_id, run.trigger, run.status) == (due.id, "scheduled", "queued")
        assert s.get(BrokerageConnection, due.id).next_sync_at is not None


def test_maintenance_runs_at_most_once_per_poll_interval(engine):
    worker = Worker(engine, scheduler=True, poll_seconds=60)
    assert worker.run_once() is False  # maintenance ran: nothing was due yet
    with Session(engine, expire_on_commit=False) as s:
        f.make_trader(s)  # due from now on
    assert worker.run_once() is False
    with Session(engine) as s:
        assert s.exec(select(TransactionSyncLog)).all() == []  # not scheduled again within the minute
