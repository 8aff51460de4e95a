"""The job queue: coalescing, claiming, stale-run recovery, staff retry/requeue, the scheduler."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from core.accounts.auth import create_user
from core.jobs import queue as jobs
from core.jobs.worker import schedule_due
from core.storage.models import BrokerageConnection, TransactionSyncLog, utcnow


def _conn(session, uid, n=0, **kw) -> BrokerageConnection:
    c = BrokerageConnection(user_id=uid, authorization_id=f"auth-{uid}-{n}", brokerage_name="Sandbox", **kw)
    session.add(c)
    session.commit()
    return c


@pytest.fixture
def uid(session):
    return create_user(session, username="jobuser", password="long enough pw").id


def test_enqueue_coalesces_and_the_database_refuses_a_second_active_run(session, uid):
    c = _conn(session, uid)
    first, created = jobs.enqueue_sync(session, user_id=uid, connection_id=c.id, trigger="manual")
    again, created2 = jobs.enqueue_sync(session, user_id=uid, connection_id=c.id, trigger="webhook", full=True)
    assert created and not created2 and again.id == first.id and again.full_sync
    session.add(TransactionSyncLog(user_id=uid, connection_id=c.id, trigger="manual", status="queued"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()
    session.rollback()


def test_claim_takes_the_oldest_queued_run_once(session, uid):
    a, b = _conn(session, uid, 1), _conn(session, uid, 2)
    r1, _ = jobs.enqueue_sync(session, user_id=uid, connection_id=a.id, trigger="manual")
    r2, _ = jobs.enqueue_sync(session, user_id=uid, connection_id=b.id, trigger="manual")
    got = jobs.claim_next_job(session, "w1")
    assert got.id == r1.id and got.status == "running" and got.attempts == 1
    assert jobs.claim_run(session, r1.id, "w2") is None
    assert jobs.claim_next_job(session, "w2").id == r2.id
    assert jobs.claim_next_job(session, "w3") is None


def test_stale_running_run_is_interrupted_and_requeued_with_its_checkpoint(session, uid):
    c = _conn(session, uid)
    run, _ = jobs.enqueue_sync(session, user_id=uid, connection_id=c.id, trigger="initial")
    jobs.claim_run(session, run.id, "dead-worker")
    session.execute(sa.update(TransactionSyncLog).where(TransactionSyncLog.id == run.id).values(
        heartbeat_at=utcnow() - timedelta(minutes=10), checkpoint={"accounts": {"a1": {"offset": 3000}}}))  # fmt: skip
    session.commit()
    new_ids = jobs.recover_stale_runs(session, stale_after_seconds=60)
    assert len(new_ids) == 1
    old = session.get(TransactionSyncLog, run.id, populate_existing=True)
    new = session.get(TransactionSyncLog, new_ids[0])
    assert old.status == "interrupted" and "requeued" in old.error_message
    assert new.status == "queued" and new.checkpoint == {"accounts": {"a1": {"offset": 3000}}}
    assert new.error_details["resumed_from"] == run.id
    assert jobs.recover_stale_runs(session, stale_after_seconds=60) == []  # a fresh heartbeat is left alone


def test_staff_retry_and_requeue(session, uid):
    c = _conn(session, uid)
    run, _ = jobs.enqueue_sync(session, user_id=uid, connection_id=c.id, trigger="manual")
    with pytest.raises(ValueError, match="only interrupted, failed or partial"):
        jobs.requeue_run(session, run.id)
    run.status = "failed"
    session.add(run)
    session.commit()
    requeued = jobs.requeue_run(session, run.id)
    assert requeued.status == "queued"
    with pytest.raises(ValueError):
        jobs.requeue_run(session, run.id)
    requeued.status = "partial"
    session.add(requeued)
    session.commit()
    retry, created = jobs.retry_run(session, run.id)
    assert created and retry.id != run.id and retry.status == "queued"


def test_scheduler_queues_due_connections_only_and_spreads_the_next_time(session, uid, settings_env):
    now = utcnow()
    due = _conn(session, uid, 1, status="active", auto_sync_enabled=True, next_sync_at=now - timedelta(minutes=1))
    _conn(session, uid, 2, status="active", auto_sync_enabled=True, next_sync_at=now + timedelta(hours=1))
    _conn(session, uid, 3, status="active", auto_sync_enabled=False, next_sync_at=now - timedelta(minutes=1))
    _conn(session, uid, 4, status="needs_reconnect", auto_sync_enabled=True, next_sync_at=now - timedelta(minutes=1))
    queued = schedule_due(session)
    runs = session.exec(select(TransactionSyncLog)).all()
    assert [r.connection_id for r in runs] == [due.id] and queued == [runs[0].id] and runs[0].trigger == "scheduled"
    session.refresh(due)
    assert due.next_sync_at > now + timedelta(minutes=due.sync_frequency_minutes - 1)
    assert schedule_due(session) == []  # not due any more


def test_manual_sync_quota_counts_the_window(session, uid):
    c = _conn(session, uid)
    t0 = utcnow()
    for i in range(5):
        jobs.request_manual_sync(session, user_id=uid, connection_id=c.id, now=t0 + timedelta(seconds=i))
    q = jobs.manual_sync_quota(session, uid, now=t0 + timedelta(seconds=10))
    assert (q.used, q.remaining) == (5, 0) and 49 <= q.reset_in_seconds <= 50
    with pytest.raises(jobs.ManualSyncLimitExceeded, match="Try again in"):
        jobs.request_manual_sync(session, user_id=uid, now=t0 + timedelta(seconds=10))
    assert (
        jobs.manual_sync_quota(session, uid, now=t0 + timedelta(seconds=61)).remaining == 2
    )  # t0+0 and t0+1 left the window


def test_no_connection_gives_a_clear_message(session, uid):
    with pytest.raises(jobs.NothingToSync, match="connect a broker"):
        jobs.request_manual_sync(session, user_id=uid)


CHECKPOINT = {"accounts": {"a1": {"offset": 3000, "t0": "2026-01-01T00:00:00+00:00", "track": False, "start": None}}}


def _crashed_run(session, c, uid, *, chain: int, checkpoint=CHECKPOINT) -> TransactionSyncLog:
    """A running run of `c` whose worker died ten minutes ago, the `chain`-th attempt in a row."""
    run, _ = jobs.enqueue_sync(session, user_id=uid, connection_id=c.id, trigger="initial")
    jobs.claim_run(session, run.id, "dead-worker")
    session.execute(sa.update(TransactionSyncLog).where(TransactionSyncLog.id == run.id).values(
        heartbeat_at=utcnow() - timedelta(minutes=10), checkpoint=checkpoint,
        error_details={"attempt_chain": chain} if chain > 1 else None))  # fmt: skip
    session.commit()
    return run


def test_when_attempts_run_out_the_run_says_so_needs_a_person_and_the_next_sync_resumes(session, uid):
    from core.reads.operations import problem_runs

    c = _conn(session, uid, status="active", auto_sync_enabled=True)
    last = _crashed_run(session, c, uid, chain=jobs.MAX_ATTEMPTS)
    assert jobs.recover_stale_runs(session, stale_after_seconds=60) == []  # not requeued again
    last = session.get(TransactionSyncLog, last.id, populate_existing=True)
    assert last.status == "failed" and "requeued" not in last.error_message.replace("not requeued", "")
    assert "not requeued" in last.error_message and "resumes from its checkpoint" in last.error_message
    assert last.id in set(problem_runs(session)["id"]), "staff see it among the runs that need a person"
    # The next scheduled sync starts where it stopped, with a fresh chain of attempts.
    c.next_sync_at = utcnow() - timedelta(minutes=1)
    session.add(c)
    session.commit()
    [next_id] = schedule_due(session)
    nxt = session.get(TransactionSyncLog, next_id)
    assert nxt.checkpoint == CHECKPOINT and nxt.error_details == {"resumed_from": last.id}
    # A full sync asked for later reads everything again instead of taking the incremental run's window.
    nxt.status = "interrupted"
    session.add(nxt)
    session.commit()
    full, _ = jobs.enqueue_sync(session, user_id=uid, connection_id=c.id, trigger="manual", full=True)
    assert full.checkpoint is None


def test_a_completed_run_leaves_nothing_to_resume(session, uid):
    c = _conn(session, uid)
    run = _crashed_run(session, c, uid, chain=1)
    session.execute(sa.update(TransactionSyncLog).where(TransactionSyncLog.id == run.id).values(status="completed"))
    session.commit()
    nxt, _ = jobs.enqueue_sync(session, user_id=uid, connection_id=c.id, trigger="scheduled")
    assert nxt.checkpoint is None and nxt.error_details is None


def test_a_cli_waiting_on_a_dead_run_takes_it_over_by_the_workers_rule(session, uid, settings_env):
    settings_env.setenv("SYNC_STALE_AFTER_SECONDS", "60")
    from core.settings import reset_settings_cache

    reset_settings_cache()
    c = _conn(session, uid)
    alive, _ = jobs.enqueue_sync(session, user_id=uid, connection_id=c.id, trigger="manual")
    jobs.claim_run(session, alive.id, "live-worker")
    assert jobs.take_over_stale_run(session, alive.id) is None  # a fresh heartbeat: keep following it
    session.execute(sa.update(TransactionSyncLog).where(TransactionSyncLog.id == alive.id).values(
        heartbeat_at=utcnow() - timedelta(minutes=2), checkpoint=CHECKPOINT))  # fmt: skip
    session.commit()
    successor = jobs.take_over_stale_run(session, alive.id)
    dead = session.get(TransactionSyncLog, alive.id, populate_existing=True)
    assert dead.status == "interrupted" and successor.status == "queued" and successor.checkpoint == CHECKPOINT
    assert successor.error_details["resumed_from"] == dead.id
    # Attempts spent: the CLI still goes on, from the checkpoint, since a person asked for it.
    c2 = _conn(session, uid, 2)
    spent = _crashed_run(session, c2, uid, chain=jobs.MAX_ATTEMPTS)
    successor = jobs.take_over_stale_run(session, spent.id)
    assert session.get(TransactionSyncLog, spent.id, populate_existing=True).status == "failed"
    assert successor.status == "queued" and successor.checkpoint == CHECKPOINT
