"""The job queue, which is `transaction_sync_log` itself: enqueue (coalesced), claim, heartbeat,
recover stale runs, the per-user manual-sync limit, and staff retry/requeue.

The database enforces one queued-or-running run per connection (a partial unique index), so every
entry point (page, CLI, webhook, scheduler) can race safely: the loser joins the existing run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.settings import get_settings
from core.storage.models import (
    ACTIVE_SYNC_STATUSES,
    BrokerageConnection,
    ManualSyncRequest,
    TransactionSyncLog,
    utcnow,
)

MAX_ATTEMPTS = 5  # runs in one chain of stale-run recoveries; after that a person should look
REQUEUED_MESSAGE = "The worker stopped during this run (no heartbeat); it was requeued to resume."
GAVE_UP_MESSAGE = (
    "The worker stopped during this run and the {n} before it, so it was not requeued; the next sync {then}."
)
SYNCABLE_CONNECTION_STATUSES = ("active", "needs_reconnect", "error", "pending")


class ManualSyncLimitExceeded(Exception):
    """Too many manual syncs in the window; the message says when the next one is allowed."""

    def __init__(self, limit: int, window_seconds: int, retry_after_seconds: int):
        self.limit = limit
        self.window_seconds = window_seconds
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"You can start {limit} manual syncs every {window_seconds} seconds, and you have used them all. "
            f"Try again in {retry_after_seconds} s. Scheduled and webhook-triggered syncs keep running meanwhile."
        )


class NothingToSync(Exception):
    """The user has no connection that can be synced."""


@dataclass
class ManualSyncQuota:
    limit: int
    window_seconds: int
    used: int
    remaining: int
    reset_in_seconds: int


def _active_run(session: Session, connection_id: int) -> TransactionSyncLog | None:
    return session.exec(
        select(TransactionSyncLog).where(
            TransactionSyncLog.connection_id == connection_id,
            TransactionSyncLog.status.in_(ACTIVE_SYNC_STATUSES),
        )
    ).first()


def enqueue_sync(
    session: Session,
    *,
    user_id: int,
    connection_id: int,
    trigger: str,
    full: bool = False,
    checkpoint: dict | None = None,
    error_details: dict | None = None,
    reconciled_at: datetime | None = None,
) -> tuple[TransactionSyncLog, bool]:
    """Queue a sync of one connection, or join the one already queued or running (created=False).

    A new run without a checkpoint of its own resumes where the connection's last run stopped unfinished.
    `reconciled_at`: the caller has just reconciled the user with SnapTrade; a queued run (new or joined) then
    skips its own reconcile if it starts soon enough (core.ingest.reconcile_once)."""
    if checkpoint is None:
        unfinished = _unfinished_run(session, user_id, connection_id, full)
        if unfinished is not None:
            checkpoint = unfinished.checkpoint
            error_details = {**(error_details or {}), "resumed_from": unfinished.id}
    for _ in range(3):
        existing = _active_run(session, connection_id)
        if existing is not None:
            if existing.status == "queued" and (full and not existing.full_sync or reconciled_at is not None):
                existing.full_sync = existing.full_sync or full
                existing.reconciled_at = reconciled_at or existing.reconciled_at
                session.add(existing)
                session.commit()
            elif existing.status == "running":
                # News arrived while a run is under way: ask the scheduler for a follow-up soon.
                session.execute(
                    sa.update(BrokerageConnection)
                    .where(BrokerageConnection.id == connection_id)
                    .values(next_sync_at=utcnow())
                )
                session.commit()
            return existing, False
        run = TransactionSyncLog(
            user_id=user_id,
            connection_id=connection_id,
            trigger=trigger,
            status="queued",
            full_sync=full,
            phase="queued",
            checkpoint=checkpoint,
            error_details=error_details,
            reconciled_at=reconciled_at,
        )
        try:
            with session.begin_nested():
                session.add(run)
            session.commit()
            return run, True
        except IntegrityError:
            session.rollback()  # lost the race: another entry point queued it first
    existing = _active_run(session, connection_id)
    if existing is None:
        raise RuntimeError("could not enqueue a sync: the queue is contended")
    return existing, False


def _unfinished_run(session: Session, user_id: int, connection_id: int, full: bool) -> TransactionSyncLog | None:
    """The connection's latest run when it stopped with a checkpoint and no result (interrupted, or failed
    after its attempts ran out): every page before its checkpoint is stored, so there is no need to re-read
    them. A full sync does not take an incremental run's window."""
    last = session.exec(
        select(TransactionSyncLog)  # (user_id, queued_at) index: a walk over this user's runs only
        .where(TransactionSyncLog.user_id == user_id, TransactionSyncLog.connection_id == connection_id)
        .order_by(TransactionSyncLog.queued_at.desc(), TransactionSyncLog.id.desc())
        .limit(1)
    ).first()
    if last is None or last.status not in ("interrupted", "failed") or not (last.checkpoint or {}).get("accounts"):
        return None
    return None if full and not last.full_sync else last


def manual_sync_quota(session: Session, user_id: int, now: datetime | None = None) -> ManualSyncQuota:
    s = get_settings()
    now = now or utcnow()
    since = now - timedelta(seconds=s.manual_sync_window_seconds)
    times = session.exec(
        select(ManualSyncRequest.requested_at)
        .where(ManualSyncRequest.user_id == user_id, ManualSyncRequest.requested_at > since)
        .order_by(ManualSyncRequest.requested_at)
    ).all()
    used = len(times)
    remaining = max(0, s.manual_sync_limit - used)
    reset = 0
    if times:
        oldest = times[0] if times[0].tzinfo else times[0].replace(tzinfo=now.tzinfo)
        reset = max(0, math.ceil((oldest + timedelta(seconds=s.manual_sync_window_seconds) - now).total_seconds()))
    return ManualSyncQuota(s.manual_sync_limit, s.manual_sync_window_seconds, used, remaining, reset)


def request_manual_sync(
    session: Session,
    *,
    user_id: int,
    connection_id: int | None = None,
    full: bool = False,
    now: datetime | None = None,
    reconciled_at: datetime | None = None,
    skip_needs_reconnect: bool = False,
) -> list[TransactionSyncLog]:
    """A user's "Sync now" for one connection or all of them, within the per-user limit (`reconciled_at`: see
    enqueue_sync). With `skip_needs_reconnect` (the page's "All connections") a connection that needs reconnecting
    is left out unless it is the one named: its run would ask SnapTrade first and fail again unless the login was
    fixed at the broker meanwhile."""
    quota = manual_sync_quota(session, user_id, now)
    if quota.remaining <= 0:
        raise ManualSyncLimitExceeded(quota.limit, quota.window_seconds, max(1, quota.reset_in_seconds))
    query = select(BrokerageConnection).where(
        BrokerageConnection.user_id == user_id,
        BrokerageConnection.status.in_(SYNCABLE_CONNECTION_STATUSES),
    )
    if connection_id is not None:
        query = query.where(BrokerageConnection.id == connection_id)
    found = session.exec(query).all()
    skip = skip_needs_reconnect and connection_id is None
    connections = [c for c in found if not (skip and c.status == "needs_reconnect")]
    if found and not connections:
        names = " and ".join(c.brokerage_name or c.brokerage_slug or "Your connection" for c in found)
        raise NothingToSync(f"{names} must be reconnected first: press Reconnect on the Connections page.")
    if not connections:
        raise NothingToSync(
            "That connection cannot be synced."
            if connection_id
            else "No connection to sync yet: connect a broker first."
        )
    session.add(ManualSyncRequest(user_id=user_id, requested_at=now or utcnow()))
    session.commit()
    return [
        enqueue_sync(
            session, user_id=user_id, connection_id=c.id, trigger="manual", full=full, reconciled_at=reconciled_at
        )[0]
        for c in connections
    ]


def get_run(session: Session, run_id: int) -> TransactionSyncLog | None:
    return session.get(TransactionSyncLog, run_id)


def recent_runs(
    session: Session, user_id: int | None = None, limit: int = 50, statuses: tuple[str, ...] | None = None
) -> list[TransactionSyncLog]:
    query = select(TransactionSyncLog)
    if user_id is not None:
        query = query.where(TransactionSyncLog.user_id == user_id)
    if statuses:
        query = query.where(TransactionSyncLog.status.in_(statuses))
    return list(
        session.exec(query.order_by(TransactionSyncLog.queued_at.desc(), TransactionSyncLog.id.desc()).limit(limit))
    )


def active_runs(session: Session, user_id: int) -> list[TransactionSyncLog]:
    return recent_runs(session, user_id, limit=100, statuses=ACTIVE_SYNC_STATUSES)


def retry_run(session: Session, run_id: int) -> tuple[TransactionSyncLog, bool]:
    """Staff action: a fresh run for the same connection (joins an active one if there is one)."""
    run = session.get(TransactionSyncLog, run_id)
    if run is None or run.connection_id is None:
        raise ValueError(f"run {run_id} does not exist or has no connection")
    return enqueue_sync(
        session, user_id=run.user_id, connection_id=run.connection_id, trigger="manual", full=run.full_sync
    )


def requeue_run(session: Session, run_id: int) -> TransactionSyncLog:
    """Staff action: put an interrupted or failed run back in the queue, keeping its checkpoint."""
    run = session.get(TransactionSyncLog, run_id)
    if run is None:
        raise ValueError(f"run {run_id} does not exist")
    if run.status not in ("interrupted", "failed", "partial"):
        raise ValueError(f"run {run_id} is {run.status}; only interrupted, failed or partial runs can be requeued")
    if run.connection_id is not None and _active_run(session, run.connection_id) is not None:
        raise ValueError("a sync of this connection is already queued or running")
    run.status = "queued"
    run.phase = "queued"
    run.queued_at = utcnow()
    run.completed_at = None
    run.worker_id = None
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ValueError("a sync of this connection is already queued or running") from None
    return run


def claim_next_job(session: Session, worker_id: str) -> TransactionSyncLog | None:
    """Atomically take the oldest queued run (SKIP LOCKED on PostgreSQL; SQLite has one writer)."""
    bind = session.get_bind()
    now = utcnow()
    for _ in range(5):
        query = (
            select(TransactionSyncLog.id)
            .where(TransactionSyncLog.status == "queued")
            .order_by(TransactionSyncLog.queued_at, TransactionSyncLog.id)
            .limit(1)
        )
        if bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        run_id = session.exec(query).first()
        if run_id is None:
            session.commit()
            return None
        result = session.execute(
            sa.update(TransactionSyncLog)
            .where(TransactionSyncLog.id == run_id, TransactionSyncLog.status == "queued")
            .values(
                status="running",
                worker_id=worker_id,
                started_at=sa.func.coalesce(TransactionSyncLog.started_at, now),
                heartbeat_at=now,
                attempts=TransactionSyncLog.attempts + 1,
                phase="starting",
            )
        )
        session.commit()
        if result.rowcount == 1:
            return session.get(TransactionSyncLog, run_id, populate_existing=True)
    return None


def claim_run(session: Session, run_id: int, worker_id: str) -> TransactionSyncLog | None:
    """Take one specific queued run (the CLI runs its own job); None if someone else has it."""
    now = utcnow()
    result = session.execute(
        sa.update(TransactionSyncLog)
        .where(TransactionSyncLog.id == run_id, TransactionSyncLog.status == "queued")
        .values(status="running", worker_id=worker_id, heartbeat_at=now, phase="starting",
                started_at=sa.func.coalesce(TransactionSyncLog.started_at, now),
                attempts=TransactionSyncLog.attempts + 1)
    )  # fmt: skip
    session.commit()
    return session.get(TransactionSyncLog, run_id, populate_existing=True) if result.rowcount == 1 else None


def _stale(cutoff: datetime):
    """A running run whose worker has not beaten since `cutoff`: it is gone (crashed, killed, cut off)."""
    beat = TransactionSyncLog.heartbeat_at
    return sa.and_(TransactionSyncLog.status == "running", sa.or_(beat.is_(None), beat < cutoff))


def _stale_cutoff(stale_after_seconds: int | float | None) -> datetime:
    return utcnow() - timedelta(seconds=stale_after_seconds or get_settings().sync_stale_after_seconds)


def recover_stale_runs(session: Session, stale_after_seconds: int | None = None) -> list[int]:
    """Runs whose worker died (no heartbeat) become interrupted and a resuming run is queued."""
    stale = session.exec(select(TransactionSyncLog).where(_stale(_stale_cutoff(stale_after_seconds)))).all()
    requeued = [_end_stale_run(session, run) for run in stale]
    return [run_id for run_id in requeued if run_id is not None]


def take_over_stale_run(
    session: Session, run_id: int, stale_after_seconds: float | None = None
) -> TransactionSyncLog | None:
    """For the CLI, which would otherwise wait on a run forever: when that run's worker is gone (the rule of
    recover_stale_runs), end it and return the queued run that resumes it; None while the run is alive."""
    run = session.exec(select(TransactionSyncLog).where(TransactionSyncLog.id == run_id,
                                                        _stale(_stale_cutoff(stale_after_seconds)))).first()  # fmt: skip
    if run is None or run.connection_id is None:
        return None
    _end_stale_run(session, run)
    # Joins the resuming run, or (attempts spent) starts a new one from the checkpoint: the user asked.
    return enqueue_sync(session, user_id=run.user_id, connection_id=run.connection_id, trigger=run.trigger,
                        full=run.full_sync)[0]  # fmt: skip


def _end_stale_run(session: Session, run: TransactionSyncLog) -> int | None:
    """Interrupt one stale run and queue its resuming run (the new id); once MAX_ATTEMPTS runs of a chain
    died, fail it instead, saying so: staff see it among the failed runs, and the connection's next sync
    still resumes from its checkpoint (enqueue_sync)."""
    chain = (run.error_details or {}).get("attempt_chain", 1)
    gave_up = chain >= MAX_ATTEMPTS
    if gave_up:
        then = "resumes from its checkpoint" if (run.checkpoint or {}).get("accounts") else "starts it over"
        values = {"status": "failed", "phase": "done", "error_message": GAVE_UP_MESSAGE.format(n=chain - 1, then=then),
                  "error_details": {**(run.error_details or {}), "gave_up": True}}  # fmt: skip
    else:
        values = {"status": "interrupted", "phase": "interrupted", "error_message": REQUEUED_MESSAGE}
    claimed = session.execute(
        sa.update(TransactionSyncLog)
        .where(TransactionSyncLog.id == run.id, TransactionSyncLog.status == "running",
               TransactionSyncLog.heartbeat_at == run.heartbeat_at)
        .values(completed_at=utcnow(), **values)
    )  # fmt: skip
    session.commit()
    if claimed.rowcount != 1 or run.connection_id is None or gave_up:
        return None
    new_run, created = enqueue_sync(
        session,
        user_id=run.user_id,
        connection_id=run.connection_id,
        trigger=run.trigger,
        full=run.full_sync,
        checkpoint=run.checkpoint,
        error_details={"resumed_from": run.id, "attempt_chain": chain + 1},
    )
    return new_run.id if created else None


def connections_due(session: Session, now: datetime | None = None, limit: int = 100) -> list[BrokerageConnection]:
    now = now or utcnow()
    return list(
        session.exec(
            select(BrokerageConnection)
            .where(
                BrokerageConnection.status == "active",
                BrokerageConnection.auto_sync_enabled.is_(True),
                sa.or_(BrokerageConnection.next_sync_at.is_(None), BrokerageConnection.next_sync_at <= now),
            )
            .order_by(BrokerageConnection.next_sync_at)
            .limit(limit)
        )
    )
