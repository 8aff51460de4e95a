"""The staff's reads behind Operations: connections and runs that need a person, the issues ledger, the
webhook log and the health summary. Every function takes a Session; nothing here writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from core.storage.models import (
    ACTIVE_SYNC_STATUSES,
    AppUser,
    BrokerageAccount,
    BrokerageConnection,
    SyncIssue,
    TransactionSyncLog,
    WebhookEvent,
    utcnow,
)

# Connection states a staff member has to act on.
ATTENTION_STATUSES = ("needs_reconnect", "error")
PROBLEM_RUN_STATUSES = ("failed", "partial", "interrupted")
FINISHED_RUN_STATUSES = ("completed", "partial", "failed", "interrupted")


def _frame(session: Session, stmt) -> pd.DataFrame:
    """Rows of a select as a DataFrame whose columns are the select's (also when there are no rows)."""
    rows = session.execute(stmt).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=list(stmt.selected_columns.keys()))


def connections_needing_attention(session: Session) -> pd.DataFrame:
    """Connections in needs_reconnect or error across all users, oldest problem first."""
    C = BrokerageConnection
    since = sa.func.coalesce(C.disabled_at, C.updated_at)
    stmt = (
        sa.select(
            C.id,
            AppUser.username,
            C.brokerage_name,
            C.status,
            C.status_reason,
            C.error_message,
            C.error_details,
            since.label("since"),
            C.last_successful_sync_at,
            C.last_sync_at,
            C.authorization_id,
        )
        .join(AppUser, AppUser.id == C.user_id)
        .where(C.status.in_(ATTENTION_STATUSES))
        .order_by(since, C.id)
    )
    return _frame(session, stmt)


def superseded_by(run: Any = TransactionSyncLog) -> sa.ScalarSelect:
    """The first completed run of the same connection after `run`: a failure it turned into history."""
    later = sa.orm.aliased(TransactionSyncLog)
    return (
        sa.select(sa.func.min(later.id))
        .where(later.connection_id == run.connection_id, later.status == "completed", later.id > run.id)
        .scalar_subquery()
    )


def retried_by(run: Any = TransactionSyncLog) -> sa.ScalarSelect:
    """A queued or running run of the same connection after `run`: the problem is in hand, for now."""
    later = sa.orm.aliased(TransactionSyncLog)
    return (
        sa.select(sa.func.min(later.id))
        .where(later.connection_id == run.connection_id, later.status.in_(ACTIVE_SYNC_STATUSES), later.id > run.id)
        .scalar_subquery()
    )


def problem_runs(
    session: Session, statuses: Sequence[str] = PROBLEM_RUN_STATUSES, limit: int = 100, *,
    include_superseded: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Failed, partial and interrupted runs, newest first, with error details and account breakdown;
    `superseded_by` names the later completed run that made one history (those are left out unless asked)."""
    R = TransactionSyncLog
    superseded = superseded_by(R)
    stmt = (
        sa.select(
            R.id,
            AppUser.username,
            R.user_id,
            R.connection_id,
            BrokerageConnection.brokerage_name,
            R.trigger,
            R.status,
            superseded.label("superseded_by"),
            retried_by(R).label("retried_by"),
            R.queued_at,
            R.started_at,
            R.completed_at,
            R.duration_seconds,
            R.attempts,
            R.transactions_new,
            R.error_message,
            R.error_details,
            R.account_breakdown,
        )
        .join(AppUser, AppUser.id == R.user_id)
        .outerjoin(BrokerageConnection, BrokerageConnection.id == R.connection_id)
        .where(R.status.in_(tuple(statuses)))
        .order_by(R.queued_at.desc(), R.id.desc())
        .limit(limit)
    )
    if not include_superseded:
        stmt = stmt.where(superseded.is_(None))
    return _frame(session, stmt)


def connections_needing_a_person(session: Session) -> set[int]:
    """Connections someone has to look at: needing a reconnect or in error, or (still connected) with a
    failed, partial or interrupted run that no later run completed and no queued or running run is retrying."""
    R, C = TransactionSyncLog, BrokerageConnection
    by_status = session.execute(sa.select(C.id).where(C.status.in_(ATTENTION_STATUSES))).scalars()
    by_runs = session.execute(
        sa.select(R.connection_id)
        .join(C, C.id == R.connection_id)
        .where(R.status.in_(PROBLEM_RUN_STATUSES), C.status != "disconnected",
               superseded_by(R).is_(None), retried_by(R).is_(None))
        .distinct()
    ).scalars()  # fmt: skip
    return {*by_status, *by_runs}


def sync_issues(session: Session, unresolved_only: bool = True, limit: int = 200) -> pd.DataFrame:
    """The issues ledger (quarantined/skipped/merged/flagged records) with raw payloads."""
    Issue = SyncIssue
    stmt = (
        sa.select(
            Issue.id,
            AppUser.username,
            Issue.account_id,
            Issue.run_id,
            Issue.kind,
            Issue.reason,
            Issue.snaptrade_activity_id,
            Issue.matched_transaction_id,
            Issue.raw_payload,
            Issue.created_at,
            Issue.resolved_at,
            Issue.resolved_by,
            Issue.resolution_note,
            Issue.user_id,
            BrokerageAccount.connection_id,
        )
        .outerjoin(AppUser, AppUser.id == Issue.user_id)
        .outerjoin(BrokerageAccount, BrokerageAccount.id == Issue.account_id)
        .order_by(Issue.created_at.desc(), Issue.id.desc())
        .limit(limit)
    )
    if unresolved_only:
        stmt = stmt.where(Issue.resolved_at.is_(None))
    return _frame(session, stmt)


def webhook_log(session: Session, limit: int = 200, status: str | None = None) -> pd.DataFrame:
    """Received webhook events, newest first."""
    W = WebhookEvent
    stmt = (
        sa.select(
            W.id,
            W.received_at,
            W.event_type,
            W.status,
            AppUser.username,
            W.authorization_id,
            W.account_id,
            W.event_timestamp,
            W.processed_at,
            W.note,
            W.webhook_id,
            W.payload,
            W.user_id,
            BrokerageConnection.id.label("connection_id"),
        )
        .outerjoin(AppUser, AppUser.id == W.user_id)
        .outerjoin(BrokerageConnection, BrokerageConnection.authorization_id == W.authorization_id)
        .order_by(W.received_at.desc(), W.id.desc())
        .limit(limit)
    )
    if status:
        stmt = stmt.where(W.status == status)
    return _frame(session, stmt)


@dataclass(frozen=True)
class HealthSummary:
    runs_24h: int
    completed_24h: int
    success_rate_24h: float | None  # completed / finished runs; None when nothing finished
    p50_duration_seconds: float | None
    p95_duration_seconds: float | None
    errors_by_code: dict[str, int]
    active_connections: int
    attention_connections: int
    queue_depth: int
    running: int
    oldest_queued_age_seconds: float | None


def _percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: the answer is a duration that happened)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def health_summary(session: Session, now: datetime | None = None) -> HealthSummary:
    """Tiles for the operations page: last-24-h run outcomes, durations, error codes, queue."""
    now = now or utcnow()
    since = now - timedelta(hours=24)
    R = TransactionSyncLog
    finished_at = sa.func.coalesce(R.completed_at, R.queued_at)
    # A day of runs is small: fetch the few columns and summarise in Python (same code on both dialects).
    recent = session.execute(
        sa.select(R.status, R.duration_seconds, R.error_details).where(
            R.status.in_(FINISHED_RUN_STATUSES), finished_at >= since
        )
    ).all()
    completed = sum(1 for r in recent if r.status == "completed")
    durations = [r.duration_seconds for r in recent if r.duration_seconds is not None]
    codes: Counter[str] = Counter()
    for r in recent:
        if r.status != "completed" and isinstance(r.error_details, dict) and r.error_details.get("code") is not None:
            codes[str(r.error_details["code"])] += 1
    by_status = dict(
        session.execute(
            sa.select(BrokerageConnection.status, sa.func.count()).group_by(BrokerageConnection.status)
        ).all()
    )
    queue = session.execute(
        sa.select(R.status, sa.func.count(), sa.func.min(R.queued_at))
        .where(R.status.in_(("queued", "running")))
        .group_by(R.status)
    ).all()
    queue_by_status = {status: (n, oldest) for status, n, oldest in queue}
    queued_n, oldest = queue_by_status.get("queued", (0, None))
    return HealthSummary(
        runs_24h=len(recent),
        completed_24h=completed,
        success_rate_24h=(completed / len(recent)) if recent else None,
        p50_duration_seconds=_percentile(durations, 50),
        p95_duration_seconds=_percentile(durations, 95),
        errors_by_code=dict(codes.most_common()),
        active_connections=int(by_status.get("active", 0)),
        attention_connections=len(connections_needing_a_person(session)),
        queue_depth=int(queued_n),
        running=int(queue_by_status.get("running", (0, None))[0]),
        oldest_queued_age_seconds=(now - _as_utc(oldest)).total_seconds() if oldest else None,
    )
