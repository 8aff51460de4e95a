"""Webhooks that arrived before their connection was recorded. SnapTrade sends a new connection's events
(CONNECTION_ADDED, NEW_ACCOUNT_AVAILABLE, ACCOUNT_TRANSACTIONS_INITIAL_UPDATE…) while the browser is still
on its way back to /callback, so they are kept 'pending' (core.web.webhooks) and matched again whenever a
reconcile records connections: the callback's, a sync's, a staff member's. A match takes effect then, and
every matched event joins the same queued sync. Events still unmatched after WEBHOOK_PENDING_SECONDS are
flagged for staff, who can re-process flagged events once the cause is fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.logs import log_event
from core.settings import get_settings
from core.storage.models import SnapTradeUser, WebhookEvent, utcnow
from core.web.webhooks import WebhookResult, apply_event

log = logging.getLogger("tradistry.webhooks")

REPROCESSABLE = ("pending", "flagged")


@dataclass
class MatchResult:
    matched: list[int] = field(default_factory=list)  # event ids that took effect now
    still_pending: list[int] = field(default_factory=list)
    run_ids: list[int] = field(default_factory=list)  # the runs they queued or joined (one per connection)
    flagged: int = 0


def expired_note(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"no connection with this authorization id was recorded within {minutes} min of the event"


def _apply_again(session: Session, event: WebhookEvent, now: datetime, initial_for: frozenset[int]) -> WebhookResult:
    payload = dict(event.payload or {})
    payload.setdefault("webhookId", event.webhook_id)
    payload.setdefault("eventType", event.event_type)
    return apply_event(session, event.id, payload, event.user_id, now=now, initial_for=initial_for)


def _late_note(result: WebhookResult, event: WebhookEvent, now: datetime) -> str:
    received = event.received_at
    waited = (now - received).total_seconds() if received else 0
    base = f"matched {waited:.0f} s after arrival, once the connection was recorded"
    return f"{base}; {result.note}" if result.note else base


def match_pending(
    bind: Engine, *, user_id: int, initial_for: Iterable[int] = (), now: datetime | None = None
) -> MatchResult:
    """Apply the user's pending events whose connection is now recorded; flag those past the wait.

    `initial_for`: connections this reconcile just recorded, whose queued sync is their first import."""
    now = now or utcnow()
    initial = frozenset(initial_for)
    out = MatchResult()
    with Session(bind, expire_on_commit=False) as session:
        events = session.exec(
            select(WebhookEvent)
            .where(WebhookEvent.status == "pending", WebhookEvent.user_id == user_id)
            .order_by(WebhookEvent.received_at, WebhookEvent.id)
        ).all()
        for event in events:
            result = _apply_again(session, event, now, initial)
            if result.event_status == "pending":
                out.still_pending.append(event.id)
                continue
            _set_note(session, event.id, _late_note(result, event, now))
            out.matched.append(event.id)
            if result.run_id is not None and result.run_id not in out.run_ids:
                out.run_ids.append(result.run_id)
            log_event(log, "webhook.matched", f"pending {event.event_type} matched its connection", user_id=user_id,
                      connection_id=result.connection_id, run_id=result.run_id, webhook_id=event.webhook_id,
                      verdict=result.event_status)  # fmt: skip
        out.flagged = flag_expired(session, now=now)
    return out


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


def reprocess_events(session: Session, event_ids: Iterable[int], *, now: datetime | None = None) -> list[WebhookResult]:
    """Staff: apply flagged (or pending) events again, e.g. after a reconcile recorded their connection or
    the SnapTrade user was registered. An event that still cannot be matched stays flagged, with a fresh note."""
    now = now or utcnow()
    results = []
    for event_id in event_ids:
        event = session.get(WebhookEvent, event_id, populate_existing=True)
        if event is None or event.status not in REPROCESSABLE:
            continue
        if event.user_id is None and event.snaptrade_user_id:
            event.user_id = session.exec(
                select(SnapTradeUser.user_id).where(SnapTradeUser.snaptrade_user_id == event.snaptrade_user_id)
            ).first()
            session.add(event)
            session.commit()
        result = _apply_again(session, event, now, frozenset())
        if result.event_status == "pending":
            result.event_status = "flagged"
            _set_note(session, event.id, f"re-processed at {now:%Y-%m-%d %H:%M} UTC: {result.note}", status="flagged")
        else:
            _set_note(session, event.id, f"re-processed by staff{'; ' + result.note if result.note else ''}")
        results.append(result)
    return results


def _set_note(session: Session, event_id: int, note: str, status: str | None = None) -> None:
    values: dict = {"note": note[:1000]}
    if status is not None:
        values.update(status=status, processed_at=utcnow())
    session.execute(sa.update(WebhookEvent).where(WebhookEvent.id == event_id).values(**values))
    session.commit()
