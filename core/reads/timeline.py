"""Everything that happened to one connection, or to one trader, newest first: portal attempts, webhooks
with their verdict, sync runs, sync issues, state changes and staff actions. Plain dataclasses for the
staff connection page and the support bundle; the wording of statuses comes from core.reads.views.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.audit import ACTION_LABELS
from core.reads.formatting import account_short_label, format_duration
from core.reads.operations import PROBLEM_RUN_STATUSES, retried_by, superseded_by
from core.reads.views import RUN_STATUS_LABELS, STATUS_LABELS, ConnectionState, connection_state, trigger_label
from core.storage.models import (
    AppUser,
    BrokerageAccount,
    BrokerageConnection,
    ConnectionStateChange,
    PortalAttempt,
    StaffAction,
    SyncIssue,
    SyncRunRequest,
    TransactionSyncLog,
    WebhookEvent,
)

KINDS = ("attempt", "webhook", "run", "issue", "state", "action")
KIND_LABELS = {"attempt": "Portal attempts", "webhook": "Webhooks", "run": "Sync runs", "issue": "Sync issues",
               "state": "State changes", "action": "Staff actions"}  # fmt: skip
KIND_NAMES = {"attempt": "Portal attempt", "webhook": "Webhook", "run": "Sync run", "issue": "Sync issue",
              "state": "State change", "action": "Staff action"}  # fmt: skip
WEBHOOK_VERDICTS = {"received": "Received", "processed": "Processed", "ignored": "Ignored", "pending": "Pending",
                    "flagged": "Flagged"}  # fmt: skip
ATTEMPT_OUTCOMES = {"open": "No result yet", "connected": "Connected", "failed": "Failed", "abandoned": "Abandoned",
                    "unknown": "Unknown"}  # fmt: skip
ACTION_OUTCOMES = {"started": "In progress", "done": "Done", "no_change": "No change", "failed": "Failed"}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    ref_id: int  # the run, issue, event, attempt, change or audit entry id
    title: str
    detail: str
    status: str  # the kind's own word: run status, verdict, outcome, new connection status
    connection_id: int | None = None
    run_id: int | None = None
    issue_id: int | None = None
    needs_attention: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConnectionSummary(ConnectionState):
    id: int = 0
    user_id: int = 0
    username: str = ""
    authorization_id: str = ""

    @property
    def title(self) -> str:
        return f"{self.brokerage_name or 'Brokerage'} · {self.username} · connection #{self.id}"


@dataclass(frozen=True)
class AccountStatus:
    """One account with our last successful sync of it and SnapTrade's own sync_status.transactions."""

    id: int
    label: str
    is_active: bool
    last_synced_at: datetime | None
    snaptrade_initial_sync_completed: bool | None
    snaptrade_last_successful_sync: date | None
    first_transaction_date: date | None


@dataclass(frozen=True)
class RunLine:
    id: int
    connection_id: int | None
    trigger: str
    status: str
    full_sync: bool
    queued_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    fetched: int
    new: int
    updated: int
    unchanged: int
    skipped: int
    api_requests: int
    error_code: str | None
    error_message: str | None
    superseded_by: int | None
    retried_by: int | None
    requested_by: str | None

    @property
    def needs_attention(self) -> bool:
        return self.status in PROBLEM_RUN_STATUSES and self.superseded_by is None and self.retried_by is None

    @property
    def outcome(self) -> str:
        return run_outcome(self.status, self.superseded_by, self.retried_by)


def run_outcome(status: str, superseded_by: int | None = None, retried_by: int | None = None) -> str:
    """'Failed · superseded by #12': the status a failure keeps, and what happened after it."""
    label = RUN_STATUS_LABELS.get(status, status)
    if status in PROBLEM_RUN_STATUSES and superseded_by is not None:
        return f"{label} · superseded by #{superseded_by}"
    if status in PROBLEM_RUN_STATUSES and retried_by is not None:
        return f"{label} · retry queued as #{retried_by}"
    return label


@dataclass(frozen=True)
class AttemptLine:
    id: int
    user_id: int
    username: str
    connection_id: int | None
    purpose: str
    broker: str | None
    outcome: str
    message: str | None
    webhook_result: str | None
    callback_status: str | None
    error_code: str | None
    requested_by: str | None
    created_at: datetime


# --------------------------------------------------------------------------- the pieces


def connection_summary(session: Session, connection_id: int) -> ConnectionSummary | None:
    row = session.execute(
        sa.select(BrokerageConnection, AppUser.username)
        .join(AppUser, AppUser.id == BrokerageConnection.user_id)
        .where(BrokerageConnection.id == connection_id)
    ).first()
    if row is None:
        return None
    c, username = row
    return ConnectionSummary(**connection_state(c), id=c.id, user_id=c.user_id, username=username,
                             authorization_id=c.authorization_id)  # fmt: skip


def username(session: Session, user_id: int) -> str | None:
    return session.exec(select(AppUser.username).where(AppUser.id == user_id)).first()


def user_connections(session: Session, user_id: int) -> list[ConnectionSummary]:
    ids = session.exec(select(BrokerageConnection.id).where(BrokerageConnection.user_id == user_id)
                       .order_by(BrokerageConnection.id)).all()  # fmt: skip
    return [s for s in (connection_summary(session, i) for i in ids) if s is not None]


def account_statuses(session: Session, connection_id: int) -> list[AccountStatus]:
    accounts = session.exec(select(BrokerageAccount).where(BrokerageAccount.connection_id == connection_id)
                            .order_by(BrokerageAccount.id)).all()  # fmt: skip
    return [AccountStatus(a.id, account_short_label(a), a.is_active, a.last_synced_at, a.snaptrade_initial_sync_completed,
                          a.snaptrade_last_successful_sync, a.first_transaction_date) for a in accounts]  # fmt: skip


def _error_code(details: Any) -> str | None:
    if not isinstance(details, dict):
        return None
    error = details.get("error")
    code = error.get("code") if isinstance(error, dict) else details.get("code")
    return str(code) if code is not None else None


def runs(session: Session, *, connection_id: int | None = None, user_id: int | None = None,
         run_ids: Iterable[int] | None = None, limit: int = 100) -> list[RunLine]:  # fmt: skip
    R = TransactionSyncLog
    stmt = sa.select(R, superseded_by(R).label("superseded_by"), retried_by(R).label("retried_by"))
    if connection_id is not None:
        stmt = stmt.where(R.connection_id == connection_id)
    if user_id is not None:
        stmt = stmt.where(R.user_id == user_id)
    if run_ids is not None:
        stmt = stmt.where(R.id.in_(list(run_ids)))
    rows = session.execute(stmt.order_by(R.id.desc()).limit(limit)).all()
    return [
        RunLine(r.id, r.connection_id, r.trigger, r.status, r.full_sync, r.queued_at, r.started_at, r.completed_at, r.duration_seconds,
                r.transactions_fetched, r.transactions_new, r.transactions_updated, r.transactions_unchanged,
                r.transactions_skipped, r.api_requests, _error_code(r.error_details), r.error_message, sup, retry,
                (r.error_details or {}).get("requested_by") if isinstance(r.error_details, dict) else None)
        for r, sup, retry in rows
    ]  # fmt: skip


@dataclass(frozen=True)
class RunDetail:
    run: RunLine
    error_details: dict | None
    account_breakdown: list
    requests: list[dict]  # the last SnapTrade requests kept (core.snaptrade.trace), oldest first


def run_detail(session: Session, run_id: int, request_limit: int = 50) -> RunDetail | None:
    """One run with its error details, per-account breakdown and last request metadata."""
    lines = runs(session, run_ids=[run_id], limit=1)
    row = session.get(TransactionSyncLog, run_id)
    if not lines or row is None:
        return None
    return RunDetail(lines[0], row.error_details, list(row.account_breakdown or []),
                     run_requests(session, run_id, request_limit))  # fmt: skip


def run_requests(session: Session, run_id: int, limit: int = 50) -> list[dict]:
    """The run's last `limit` SnapTrade requests (metadata only), oldest first."""
    rows = session.exec(select(SyncRunRequest).where(SyncRunRequest.run_id == run_id)
                        .order_by(SyncRunRequest.seq.desc()).limit(limit)).all()  # fmt: skip
    return [r.model_dump(exclude={"id", "run_id"}) for r in reversed(rows)]


def _connection_accounts(session: Session, connection_id: int) -> tuple[list[int], list[str]]:
    rows = session.execute(sa.select(BrokerageAccount.id, BrokerageAccount.snaptrade_account_id)
                           .where(BrokerageAccount.connection_id == connection_id)).all()  # fmt: skip
    return [r[0] for r in rows], [r[1] for r in rows]


def webhook_events(session: Session, *, connection_id: int | None = None, user_id: int | None = None,
                   statuses: tuple[str, ...] | None = None, limit: int = 200) -> list[WebhookEvent]:  # fmt: skip
    """A connection's events (by authorization id, or by one of its accounts) or all of a trader's."""
    W = WebhookEvent
    stmt = select(W)
    if connection_id is not None:
        conn = session.get(BrokerageConnection, connection_id)
        if conn is None:
            return []
        _, snaptrade_accounts = _connection_accounts(session, connection_id)
        match = W.authorization_id == conn.authorization_id
        if snaptrade_accounts:
            match = sa.or_(match, sa.and_(W.authorization_id.is_(None), W.account_id.in_(snaptrade_accounts)))
        stmt = stmt.where(match)
    if user_id is not None:
        stmt = stmt.where(W.user_id == user_id)
    if statuses:
        stmt = stmt.where(W.status.in_(statuses))
    return list(session.exec(stmt.order_by(W.received_at.desc(), W.id.desc()).limit(limit)))


def issues(session: Session, *, connection_id: int | None = None, user_id: int | None = None,
           limit: int = 200) -> list[SyncIssue]:  # fmt: skip
    stmt = select(SyncIssue)
    if connection_id is not None:
        account_ids, _ = _connection_accounts(session, connection_id)
        run_ids = select(TransactionSyncLog.id).where(TransactionSyncLog.connection_id == connection_id)
        stmt = stmt.where(sa.or_(SyncIssue.account_id.in_(account_ids or [-1]), SyncIssue.run_id.in_(run_ids)))
    if user_id is not None:
        stmt = stmt.where(SyncIssue.user_id == user_id)
    return list(session.exec(stmt.order_by(SyncIssue.created_at.desc(), SyncIssue.id.desc()).limit(limit)))


def attempts(session: Session, *, connection_id: int | None = None, user_id: int | None = None,
             outcomes: tuple[str, ...] | None = None, limit: int = 200) -> list[AttemptLine]:  # fmt: skip
    P = PortalAttempt
    stmt = sa.select(P, AppUser.username).join(AppUser, AppUser.id == P.user_id)
    if connection_id is not None:
        stmt = stmt.where(P.connection_id == connection_id)
    if user_id is not None:
        stmt = stmt.where(P.user_id == user_id)
    if outcomes:
        stmt = stmt.where(P.outcome.in_(outcomes))
    rows = session.execute(stmt.order_by(P.created_at.desc(), P.id.desc()).limit(limit)).all()
    return [AttemptLine(a.id, a.user_id, username, a.connection_id, a.purpose, a.broker, a.outcome, a.message,
                        a.webhook_result, a.callback_status, a.error_code, a.requested_by, a.created_at)
            for a, username in rows]  # fmt: skip


def failed_attempts(session: Session, *, user_id: int | None = None, limit: int = 200) -> list[AttemptLine]:
    """Portal attempts that failed (SnapTrade's result or the callback's error), newest first, across users."""
    return attempts(session, user_id=user_id, outcomes=("failed",), limit=limit)


def state_changes(session: Session, connection_ids: Iterable[int], limit: int = 200) -> list[ConnectionStateChange]:
    ids = list(connection_ids)
    if not ids:
        return []
    return list(session.exec(select(ConnectionStateChange).where(ConnectionStateChange.connection_id.in_(ids))
                             .order_by(ConnectionStateChange.changed_at.desc(), ConnectionStateChange.id.desc())
                             .limit(limit)))  # fmt: skip


def staff_actions(session: Session, *, connection_id: int | None = None, user_id: int | None = None,
                  limit: int = 200) -> list[StaffAction]:  # fmt: skip
    from core.accounts.audit import entries

    return entries(session, connection_id=connection_id, user_id=user_id, limit=limit)


# --------------------------------------------------------------------------- entries


def _run_entry(r: RunLine) -> TimelineEntry:
    trigger = trigger_label(r.trigger, r.full_sync)
    if r.requested_by:
        trigger += f", asked by {r.requested_by}"
    parts = [f"{r.fetched} fetched ({r.new} new, {r.updated} updated, {r.unchanged} unchanged, {r.skipped} skipped)",
             f"{r.api_requests} SnapTrade request(s)"]  # fmt: skip
    if r.duration_seconds is not None:
        parts.append(format_duration(r.duration_seconds))
    if r.error_message or r.error_code:
        parts.append(f"error{' ' + r.error_code if r.error_code else ''}: {r.error_message or '—'}")
    return TimelineEntry(r.queued_at, "run", r.id, f"Sync run #{r.id} · {trigger} · {r.outcome}", "; ".join(parts),
                         r.status, r.connection_id, run_id=r.id, needs_attention=r.needs_attention)  # fmt: skip


def _webhook_entry(e: WebhookEvent, connection_id: int | None) -> TimelineEntry:
    verdict = WEBHOOK_VERDICTS.get(e.status, e.status)
    result = (e.payload or {}).get("connectionAttemptedResult") if isinstance(e.payload, dict) else None
    detail = "; ".join(p for p in (f"result {result}" if result else None, e.note,
                                   f"webhookId {e.webhook_id}") if p)  # fmt: skip
    return TimelineEntry(e.received_at, "webhook", e.id, f"Webhook {e.event_type} · {verdict}", detail, e.status,
                         connection_id, needs_attention=e.status == "flagged")  # fmt: skip


def _issue_entry(i: SyncIssue, connection_id: int | None) -> TimelineEntry:
    state = f"resolved by {i.resolved_by}" if i.resolved_at else "unresolved"
    detail = "; ".join(p for p in (i.reason, f"activity {i.snaptrade_activity_id}" if i.snaptrade_activity_id else None,
                                   f"run #{i.run_id}" if i.run_id else None,
                                   f"note: {i.resolution_note}" if i.resolution_note else None) if p)  # fmt: skip
    return TimelineEntry(i.created_at, "issue", i.id, f"Sync issue #{i.id} · {i.kind} · {state}", detail,
                         "resolved" if i.resolved_at else "open", connection_id, run_id=i.run_id, issue_id=i.id,
                         needs_attention=i.resolved_at is None)  # fmt: skip


def _state_entry(c: ConnectionStateChange) -> TimelineEntry:
    to = STATUS_LABELS.get(c.to_status, c.to_status)
    title = f"Connection recorded · {to}" if c.from_status is None else \
        f"State · {STATUS_LABELS.get(c.from_status, c.from_status)} → {to}"  # fmt: skip
    return TimelineEntry(c.changed_at, "state", c.id, title, c.reason or "", c.to_status, c.connection_id)


def _attempt_entry(a: AttemptLine) -> TimelineEntry:
    what = "reconnect" if a.purpose == "reconnect" else "new connection"
    parts = [a.message, f"link issued by staff {a.requested_by}" if a.requested_by else None,
             f"SnapTrade result {a.webhook_result}" if a.webhook_result else None,
             f"callback {a.callback_status}" + (f" (error {a.error_code})" if a.error_code else "") if a.callback_status
             else None]  # fmt: skip
    return TimelineEntry(a.created_at, "attempt", a.id, f"Portal attempt · {what}{' · ' + a.broker if a.broker else ''} · "
                         f"{ATTEMPT_OUTCOMES.get(a.outcome, a.outcome)}", "; ".join(p for p in parts if p), a.outcome,
                         a.connection_id, needs_attention=a.outcome == "failed")  # fmt: skip


def _action_entry(s: StaffAction) -> TimelineEntry:
    label = ACTION_LABELS.get(s.action, s.action)
    detail = "; ".join(p for p in (s.message, f"note: {s.note}" if s.note else None) if p)
    return TimelineEntry(s.created_at, "action", s.id, f"Staff · {label} by {s.actor_username} · "
                         f"{ACTION_OUTCOMES.get(s.outcome, s.outcome)}", detail, s.outcome, s.connection_id,
                         run_id=s.run_id, issue_id=s.issue_id)  # fmt: skip


def _sorted(entries: list[TimelineEntry], kinds: Iterable[str] | None, limit: int) -> list[TimelineEntry]:
    wanted = set(kinds) if kinds else set(KINDS)
    chosen = [e for e in entries if e.kind in wanted]
    chosen.sort(key=lambda e: (e.at, KINDS.index(e.kind), e.ref_id), reverse=True)
    return chosen[:limit]


def connection_timeline(session: Session, connection_id: int, *, kinds: Iterable[str] | None = None,
                        limit: int = 500) -> list[TimelineEntry]:  # fmt: skip
    """Everything that touched one connection, newest first, optionally only some kinds."""
    cid = connection_id
    entries = [_run_entry(r) for r in runs(session, connection_id=cid, limit=limit)]
    entries += [_webhook_entry(e, cid) for e in webhook_events(session, connection_id=cid, limit=limit)]
    entries += [_issue_entry(i, cid) for i in issues(session, connection_id=cid, limit=limit)]
    entries += [_state_entry(c) for c in state_changes(session, [cid], limit=limit)]
    entries += [_attempt_entry(a) for a in attempts(session, connection_id=cid, limit=limit)]
    entries += [_action_entry(s) for s in staff_actions(session, connection_id=cid, limit=limit)]
    return _sorted(entries, kinds, limit)


def user_timeline(session: Session, user_id: int, *, kinds: Iterable[str] | None = None,
                  limit: int = 500) -> list[TimelineEntry]:  # fmt: skip
    """Everything that touched one trader: all their connections, plus attempts and webhooks that never
    became a connection (a failed login in the portal, an event for a connection never recorded)."""
    connection_ids = [c.id for c in user_connections(session, user_id)]
    entries = [_run_entry(r) for r in runs(session, user_id=user_id, limit=limit)]
    entries += [_webhook_entry(e, None) for e in webhook_events(session, user_id=user_id, limit=limit)]
    entries += [_issue_entry(i, None) for i in issues(session, user_id=user_id, limit=limit)]
    entries += [_state_entry(c) for c in state_changes(session, connection_ids, limit=limit)]
    entries += [_attempt_entry(a) for a in attempts(session, user_id=user_id, limit=limit)]
    entries += [_action_entry(s) for s in staff_actions(session, user_id=user_id, limit=limit)]
    return _sorted(entries, kinds, limit)
