"""Webhooks that arrived before their connection was recorded. SnapTrade sends a new connection's events
(CONNECTION_ADDED, NEW_ACCOUNT_AVAILABLE, ACCOUNT_TRANSACTIONS_INITIAL_UPDATE…) while the browser is still
on its way back to /callback, so core.web.webhooks keeps them 'pending' and every reconcile (the callback's,
a sync's, a staff member's) matches them here once it has recorded the connection. A matched sync event
takes effect then: its accounts are hinted and one sync is queued (every event joins it). A state event
needs nothing more: the reconcile that recorded the connection read its state from SnapTrade itself.
Events still unmatched after WEBHOOK_PENDING_SECONDS are flagged for staff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.jobs.queue import enqueue_sync
from core.logs import log_event
from core.settings import get_settings
from core.snaptrade.webhook_events import CONNECTION_LEVEL_EVENTS, SYNC_EVENTS
from core.storage.models import BrokerageAccount, BrokerageConnection, WebhookEvent, utcnow

log = logging.getLogger("tradistry.webhooks")

PENDING_NOTE = "connection not recorded yet; waiting for the portal callback or a reconcile"


@dataclass
class MatchResult:
    matched: list[int] = field(default_factory=list)  # event ids that took effect now
    still_pending: list[int] = field(default_factory=list)
    run_ids: list[int] = field(default_factory=list)  # the runs they queued or joined (one per connection)
    flagged: int = 0


def hint_accounts(
    session: Session, conn: BrokerageConnection, event_type: str, account_id: str | None, now: datetime
) -> str | None:
    """Mark the accounts a sync event names (all of the connection's for a connection-level event) so the
    next sync reads them; returns a note when the event's account is not known yet. Does not commit."""
    hint = (
        sa.update(BrokerageAccount)
        .where(BrokerageAccount.has_pending_hint.is_(False))
        .values(has_pending_hint=True, updated_at=now)
    )
    if event_type in CONNECTION_LEVEL_EVENTS:
        session.execute(hint.where(BrokerageAccount.connection_id == conn.id, BrokerageAccount.is_active.is_(True)))
        return None
    account = (
        session.exec(select(BrokerageAccount).where(BrokerageAccount.snaptrade_account_id == account_id)).first()
        if account_id
        else None
    )
    if account is None or account.connection_id != conn.id:
        return "account not known yet; the sync's reconcile will add it"
    session.execute(hint.where(BrokerageAccount.id == account.id))
    return None


def _connection_of(session: Session, event: WebhookEvent) -> BrokerageConnection | None:
    """The event's connection if it is recorded now and belongs to the event's user."""
    conn = None
    if event.authorization_id:
        conn = session.exec(
            select(BrokerageConnection).where(BrokerageConnection.authorization_id == event.authorization_id)
        ).first()
    elif event.account_id:
        account = session.exec(
            select(BrokerageAccount).where(BrokerageAccount.snaptrade_account_id == event.account_id)
        ).first()
        conn = session.get(BrokerageConnection, account.connection_id) if account else None
    return conn if conn is not None and conn.user_id == event.user_id else None


def _match(
    session: Session, event: WebhookEvent, conn: BrokerageConnection, now: datetime, initial: bool
) -> int | None:
    """Apply one matched event; returns the run it queued or joined."""
    waited = (
        f"matched {(now - event.received_at).total_seconds():.0f} s after arrival, once the connection was recorded"
    )
    run_id, note = None, None
    if event.event_type in SYNC_EVENTS and conn.status != "disconnected":
        note = hint_accounts(session, conn, event.event_type, event.account_id, now)
        session.commit()
        run, _ = enqueue_sync(session, user_id=conn.user_id, connection_id=conn.id,
                              trigger="initial" if initial else "webhook")  # fmt: skip
        run_id = run.id
    elif event.event_type in SYNC_EVENTS:
        note = "connection is disconnected here; no sync queued"
    else:
        note = "its state was read from SnapTrade by the reconcile that recorded the connection"
    session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id == event.id, WebhookEvent.status == "pending")
        .values(status="processed", note=f"{waited}; {note}" if note else waited, processed_at=now)
    )
    session.commit()
    log_event(log, "webhook.matched", f"pending {event.event_type} matched its connection", user_id=event.user_id,
              connection_id=conn.id, run_id=run_id, webhook_id=event.webhook_id)  # fmt: skip
    return run_id


def match_pending(
    bind: Engine, *, user_id: int, initial_for: Iterable[int] = (), now: datetime | None = None
) -> MatchResult:
    """Apply the user's pending events whose connection is now recorded; flag those past the wait.

    `initial_for`: connections this reconcile just recorded, whose queued sync is their first import."""
    now = now or utcnow()
    initial = set(initial_for)
    out = MatchResult()
    with Session(bind, expire_on_commit=False) as session:
        events = session.exec(
            select(WebhookEvent)
            .where(WebhookEvent.status == "pending", WebhookEvent.user_id == user_id)
            .order_by(WebhookEvent.received_at, WebhookEvent.id)
        ).all()
        for event in events:
            conn = _connection_of(session, event)
            if conn is None:
                out.still_pending.append(event.id)
                continue
            run_id = _match(session, event, conn, now, conn.id in initial)
            out.matched.append(event.id)
            if run_id is not None and run_id not in out.run_ids:
                out.run_ids.append(run_id)
        out.flagged = flag_expired(session, now=now)
    return out


def expired_note(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"no connection with this authorization id was recorded within {minutes} min of the event"


def flag_expired(session: Session, *, now: datetime | None = None, wait_seconds: int | None = None) -> int:
    """Pending events older than the wait become flagged for staff. Commits; returns how many."""
    now = now or utcnow()
    wait = wait_seconds if wait_seconds is not None else get_settings().webhook_pending_seconds
    result = session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.status == "pending", WebhookEvent.received_at < now - timedelta(seconds=wait))
        .values(status="flagged", note=expired_note(wait), processed_at=now)
    )
    session.commit()
    if result.rowcount:
        log_event(log, "webhook.flagged", f"{result.rowcount} pending webhook event(s) flagged for staff",
                  level=logging.WARNING, count=result.rowcount)  # fmt: skip
    return result.rowcount or 0
