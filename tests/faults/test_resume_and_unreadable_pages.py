"""Fault suite: a worker killed after page k resumes at page k (the sandbox's request log says which page
it asked for first), a chain of crashes past MAX_ATTEMPTS, and activities pages that come back unreadable.

Workers run as real processes (`python -m core worker`) against the sandbox over HTTP, on both databases.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.connections import reconcile_connections
from core.jobs import queue as jobs
from core.reads.operations import problem_runs
from core.storage.models import BrokerageConnection, TransactionSyncLog, utcnow
from tests.faults.test_crash_recovery import SOAK, start_worker, wait_for, worker_env
from tests.syncsupport import assert_matches_ground_truth, connect, make_user

PAGE = 1000


def one_account_user(engine, sandbox, history_size: int) -> tuple[int, int]:
    """A user with one single-account connection, reconciled: (user id, connection id)."""
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_CRYPTO", history_size=history_size)
        reconcile_connections(s, user_id=uid)
        return uid, s.exec(select(BrokerageConnection.id)).one()


def latest(engine, connection_id) -> TransactionSyncLog | None:
    with Session(engine) as s:
        return s.exec(select(TransactionSyncLog).where(TransactionSyncLog.connection_id == connection_id)
                      .order_by(TransactionSyncLog.id.desc())).first()  # fmt: skip


def saved_offset(run: TransactionSyncLog) -> int:
    [account] = (run.checkpoint or {"accounts": {"-": {"offset": 0}}})["accounts"].values()
    return account["offset"]


def activity_offsets(sandbox) -> list[int]:
    return [int(e["params"]["offset"]) for e in sandbox.request_log() if e["path_template"].endswith("/activities")]


def wait_for_pages(engine, connection_id, pages: int, newer_than: int = 0) -> None:
    """Until a run after `newer_than` (not a dead one still marked running) has committed `pages` pages."""
    wait_for(lambda: (r := latest(engine, connection_id)) and r.id > newer_than and r.status == "running"
             and r.pages_done >= pages, 90, f"page {pages} of a run after run {newer_than}")  # fmt: skip


def kill_9(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def forget_the_dead(sandbox) -> None:
    """The sandbox logs a request when it answers: let the killed worker's requests in flight land first."""
    time.sleep(1.0)
    sandbox.reset_request_log()


def finish(env, engine, connection_id, log, newer_than: int = 0) -> TransactionSyncLog:
    """Start a worker and stop it once a run after `newer_than` has ended; that run."""
    proc = start_worker(env, log)
    try:
        wait_for(lambda: (r := latest(engine, connection_id)).id > newer_than and r.status in ("completed", "partial", "failed"),
                 180, "the run to end")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return latest(engine, connection_id)


def test_kill_9_after_page_k_resumes_at_page_k(engine, db_url, sandbox, tmp_path):
    """Each restart's first activities request is at the page the dead worker had in flight: nothing is re-read."""
    sandbox.set_faults(latency_ms=40)
    uid, cid = one_account_user(engine, sandbox, history_size=15000)
    with Session(engine, expire_on_commit=False) as s:
        jobs.enqueue_sync(s, user_id=uid, connection_id=cid, trigger="initial")
    env = worker_env(sandbox, db_url, tmp_path)
    rng = random.Random(int(os.environ.get("FAULT_SEED", "4")))
    dead_id, stored = 0, 0  # stored: the offset up to which pages are committed
    proc = start_worker(env, tmp_path / "worker.log")
    try:
        for _kill in range(4 if SOAK else 1):
            wait_for_pages(engine, cid, rng.randint(2, 3), newer_than=dead_id)
            kill_9(proc)
            dead = latest(engine, cid)
            dead_id, stored = dead.id, stored + PAGE * dead.pages_done  # a run counts its own pages
            forget_the_dead(sandbox)
            proc = start_worker(env, tmp_path / "worker.log")
            wait_for(lambda: activity_offsets(sandbox), 60, "the restarted worker's first page")
            assert activity_offsets(sandbox)[0] == stored, "the restart began at the page the dead run had in flight"
            assert saved_offset(dead) == stored
        wait_for(lambda: latest(engine, cid).status in ("completed", "partial", "failed"), 180, "the run to end")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    done = latest(engine, cid)
    assert done.status == "completed", (done.status, done.error_message)
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, uid)


@pytest.mark.slow
def test_crashes_past_max_attempts_fail_truthfully_and_the_next_scheduled_sync_resumes(
    engine, db_url, sandbox, tmp_path
):
    sandbox.set_faults(latency_ms=40)
    # room for a third page per run: the kill may land just after a run commits one more than the two awaited
    uid, cid = one_account_user(engine, sandbox, history_size=jobs.MAX_ATTEMPTS * 3 * PAGE + 4 * PAGE)
    with Session(engine, expire_on_commit=False) as s:
        jobs.enqueue_sync(s, user_id=uid, connection_id=cid, trigger="initial")
    env = worker_env(sandbox, db_url, tmp_path)
    dead_id, stopped_at = 0, [0]
    for _kill in range(jobs.MAX_ATTEMPTS):  # every run of the chain dies after two pages of its own
        sandbox.reset_request_log()  # the dead worker's requests have landed: it was killed 2.5 s ago
        proc = start_worker(env, tmp_path / "worker.log")
        try:
            wait_for_pages(engine, cid, 2, newer_than=dead_id)
        finally:
            kill_9(proc)
        dead = latest(engine, cid)
        dead_id = dead.id
        assert activity_offsets(sandbox)[0] == stopped_at[-1], "each run resumed where the one before stopped"
        stopped_at.append(saved_offset(dead))
        assert stopped_at[-1] >= stopped_at[-2] + 2 * PAGE, stopped_at  # and kept its two pages
        time.sleep(2.5)  # its heartbeat goes stale (SYNC_STALE_AFTER_SECONDS=2)
    with Session(engine) as s:  # the next scheduled time comes; the restarted worker recovers, then schedules
        s.execute(sa.update(BrokerageConnection).values(next_sync_at=utcnow()))
        s.commit()
    forget_the_dead(sandbox)
    done = finish(env, engine, cid, tmp_path / "worker.log", newer_than=dead.id)
    with Session(engine) as s:
        gave_up = s.get(TransactionSyncLog, dead.id)
        assert gave_up.status == "failed" and "not requeued" in gave_up.error_message, gave_up.error_message
        # Staff see the run that gave up as a failure the resumed run made history of: off "Need attention",
        # listed with the run that superseded it when superseded runs are asked for.
        assert gave_up.id not in set(problem_runs(s)["id"])
        listed = problem_runs(s, include_superseded=True).set_index("id")
        assert listed.loc[gave_up.id, "superseded_by"] == done.id
        assert done.trigger == "scheduled" and done.error_details["resumed_from"] == dead.id
        assert done.status == "completed", (done.status, done.error_message)
        assert activity_offsets(sandbox)[0] == saved_offset(dead)
        assert_matches_ground_truth(s, sandbox, uid)


@pytest.mark.parametrize("kind", ["truncated", pytest.param("html", marks=pytest.mark.slow)])
def test_unreadable_pages_are_retried_then_end_partial_with_a_reason_and_the_next_sync_converges(
    engine, db_url, sandbox, tmp_path, kind
):
    uid, cid = one_account_user(engine, sandbox, history_size=6000)
    env = dict(worker_env(sandbox, db_url, tmp_path), HTTP_MAX_RETRIES="3")
    sandbox.corrupt_pages(count=3, kind=kind, after=2)  # the third page comes back unreadable three times
    sandbox.reset_request_log()
    with Session(engine, expire_on_commit=False) as s:
        jobs.enqueue_sync(s, user_id=uid, connection_id=cid, trigger="initial")
    first = finish(env, engine, cid, tmp_path / "worker.log")
    assert first.status == "completed", (first.status, first.error_message)
    assert activity_offsets(sandbox) == [0, 1000, 2000, 2000, 2000, 2000, 3000, 4000, 5000]
    sandbox.corrupt_pages(count=-1, kind=kind, after=1)  # then SnapTrade keeps answering garbage
    with Session(engine, expire_on_commit=False) as s:
        jobs.enqueue_sync(s, user_id=uid, connection_id=cid, trigger="manual", full=True)
    broken = finish(env, engine, cid, tmp_path / "worker.log")
    assert broken.status == "partial" and "not valid JSON" in broken.error_message, broken.error_message
    assert len(broken.error_message) < 200
    sandbox.set_faults()
    with Session(engine, expire_on_commit=False) as s:
        jobs.enqueue_sync(s, user_id=uid, connection_id=cid, trigger="manual", full=True)
    assert finish(env, engine, cid, tmp_path / "worker.log").status == "completed"
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, uid)
