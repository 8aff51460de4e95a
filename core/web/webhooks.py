"""SnapTrade webhooks: verify a delivery, store it exactly once in `webhook_events`, and apply its
effect (queue a coalesced sync, or update a connection's or account's state). Never calls SnapTrade.

A webhook is only a hint: the payload carries no data rows, so the worst a lost or late event can
do is delay a sync until the next scheduled one. Every step here is idempotent for that reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.accounts.pending_webhooks import PENDING_NOTE, hint_accounts
from core.jobs.queue import enqueue_sync
from core.logs import log_event
from core.redaction import redact
from core.snaptrade.webhook_events import HANDLED_EVENTS
from core.storage.models import BrokerageAccount, BrokerageConnection, SnapTradeUser, WebhookEvent, utcnow

log = logging.getLogger("tradistry.webhooks")

# SnapTrade retries ≥30 min later, so a small clock skew is all we allow into the future.
MAX_FUTURE_SKEW_SECONDS = 300
# A row still 'received' this long after arrival means its processing died half-way: a retry redoes it.
REPROCESS_AFTER_SECONDS = 120

BROKEN_DEFAULT_REASON = "SnapTrade reported the connection as broken"
DELETED_REASON = "The connection was deleted at SnapTrade; imported history is kept."
USER_DELETED_REASON = "The SnapTrade user was deleted; imported history is kept."
# The deprecated shared secret must not sit in the staff-visible payload copy.
STRIPPED_FIELDS = ("webhookSecret",)
_LOG_UNSAFE = re.compile(r"[^\w.:@/+=-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# SnapTrade's payloads nest two or three levels. json.loads recurses once per level and raises
# RecursionError (a 500) near 1000, so deeper bodies are refused before it runs.
MAX_NESTING = 32
_JSON_STRUCTURE = re.compile(r'[][{}"\\]')


class WebhookRejected(Exception):
    """A delivery we refuse; `status` is the HTTP status, `str()` a reason safe to send back."""

    def __init__(self, status: int, reason: str, *, event_type: str | None = None, webhook_id: str | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.event_type = event_type
        self.webhook_id = webhook_id


@dataclass
class WebhookResult:
    """What happened to one delivery: `outcome` accepted/duplicate, `event_status` processed/ignored/pending/flagged."""

    outcome: str
    webhook_id: str
    event_type: str
    event_id: int | None = None
    event_status: str | None = None
    note: str | None = None
    run_id: int | None = None
    run_created: bool = False
    connection_id: int | None = None
    user_id: int | None = None


@dataclass
class _Effect:
    status: str
    note: str | None = None
    connection: BrokerageConnection | None = None  # set when a sync should be queued
    connection_id: int | None = None  # the event's connection, when it was found


# --------------------------------------------------------------------------- verification


def canonical_json(payload: Any) -> str:
    """The form SnapTrade signs: compact, key-sorted `json.dumps` of the parsed payload."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def webhook_signature(consumer_key: str, payload: Any) -> str:
    digest = hmac.new(consumer_key.encode(), canonical_json(payload).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_matches(consumer_key: str, payload: Any, signature: str | None) -> bool:
    if not signature or not consumer_key:
        return False
    return hmac.compare_digest(webhook_signature(consumer_key, payload).encode(), signature.strip().encode())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def nesting_exceeds(text: str, limit: int = MAX_NESTING) -> bool:
    """Whether arrays and objects in a JSON text nest deeper than `limit` (brackets inside strings do
    not count). One pass over the brackets, quotes and backslashes, without recursion."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped_at = 0, False, -1
    for m in _JSON_STRUCTURE.finditer(text):
        char, at = m.group(), m.start()
        if in_string:
            if at == escaped_at:
                continue
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_delivery(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, parsed the way SnapTrade's signer sees it (plain floats, no NaN)."""
    try:
        # Decoded here rather than by json.loads (which also guesses UTF-16/32) so the depth check
        # reads the same characters the parser will.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "malformed JSON: the body is not UTF-8") from None
    if nesting_exceeds(text):
        raise WebhookRejected(400, f"malformed JSON: nested deeper than {MAX_NESTING} levels")
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        raise WebhookRejected(400, "malformed JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "the body must be a JSON object")
    return payload


def authenticate(
    payload: dict[str, Any], signature: str | None, *, client_id: str, consumer_key: str, legacy_secret: str = ""
) -> None:
    """Raise 401 unless the delivery is signed with our consumer key (or carries the legacy secret) and is for our clientId."""
    event_type, webhook_id = _text(payload.get("eventType")), _text(payload.get("webhookId"))
    signed = signature_matches(consumer_key, payload, signature)
    if not signed and legacy_secret:
        given = payload.get("webhookSecret")
        signed = isinstance(given, str) and hmac.compare_digest(given.encode(), legacy_secret.encode())
    if not signed:
        raise WebhookRejected(401, "invalid signature", event_type=event_type, webhook_id=webhook_id)
    # A valid signature with another clientId means our key is shared with a client we are not.
    if not isinstance(payload.get("clientId"), str) or not hmac.compare_digest(
        payload["clientId"].encode(), client_id.encode()
    ):
        raise WebhookRejected(401, "clientId does not match", event_type=event_type, webhook_id=webhook_id)


def parse_event_time(value: Any) -> datetime | None:
    """An ISO timestamp as aware UTC (naive means UTC); None when absent or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def validate_event(payload: dict[str, Any], *, max_age_seconds: int, now: datetime | None = None) -> datetime:
    """Check the fields we key on and the replay window; returns the event time."""
    webhook_id, event_type = payload.get("webhookId"), payload.get("eventType")
    if not isinstance(webhook_id, str) or not webhook_id or len(webhook_id) > 128:
        raise WebhookRejected(400, "webhookId is missing or invalid", event_type=_text(event_type))
    if not isinstance(event_type, str) or not event_type or len(event_type) > 64:
        raise WebhookRejected(400, "eventType is missing or invalid", webhook_id=webhook_id)
    event_time = parse_event_time(payload.get("eventTimestamp"))
    if event_time is None:
        raise WebhookRejected(
            400, "eventTimestamp is missing or not ISO 8601", event_type=event_type, webhook_id=webhook_id
        )
    age = ((now or utcnow()) - event_time).total_seconds()
    if age > max_age_seconds or age < -MAX_FUTURE_SKEW_SECONDS:
        raise WebhookRejected(400, "stale event: eventTimestamp is outside the accepted window",
                              event_type=event_type, webhook_id=webhook_id)  # fmt: skip
    return event_time


def receive_delivery(
    session: Session,
    body: bytes,
    signature: str | None,
    *,
    client_id: str,
    consumer_key: str,
    legacy_secret: str = "",
    max_age_seconds: int,
    now: datetime | None = None,
) -> WebhookResult:
    """The whole pipeline for one raw delivery: parse, authenticate, check, store and apply.

    Raises WebhookRejected before anything is written when the delivery is not acceptable.
    """
    payload = parse_delivery(body)
    authenticate(payload, signature, client_id=client_id, consumer_key=consumer_key, legacy_secret=legacy_secret)
    validate_event(payload, max_age_seconds=max_age_seconds, now=now)
    return process_webhook(session, payload, now=now)


# --------------------------------------------------------------------------- storage


def _insert_event(session: Session, row: dict[str, Any]) -> int | None:
    """INSERT … ON CONFLICT (webhook_id) DO NOTHING; the new id, or None when the webhookId exists."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(WebhookEvent).values(**row).on_conflict_do_nothing(index_elements=["webhook_id"])
        return session.execute(stmt.returning(WebhookEvent.id)).scalar_one_or_none()
    try:  # other dialects: the unique constraint still decides, via a savepoint
        with session.begin_nested():
            return session.execute(sa.insert(WebhookEvent).values(**row).returning(WebhookEvent.id)).scalar_one()
    except IntegrityError:
        return None


def _stuck_event_id(session: Session, webhook_id: str, now: datetime) -> int | None:
    """An earlier delivery of this id whose processing never finished (still 'received' and old)."""
    cutoff = now - timedelta(seconds=REPROCESS_AFTER_SECONDS)
    return session.exec(
        select(WebhookEvent.id).where(
            WebhookEvent.webhook_id == webhook_id, WebhookEvent.status == "received", WebhookEvent.received_at < cutoff
        )
    ).first()


def _event_row(payload: dict[str, Any], user_id: int | None, now: datetime) -> dict[str, Any]:
    stored = {k: v for k, v in payload.items() if k not in STRIPPED_FIELDS}
    return {
        "webhook_id": payload["webhookId"],
        "event_type": payload["eventType"],
        "client_id": _text(payload.get("clientId"), 128),
        "snaptrade_user_id": _text(payload.get("userId"), 128),
        "user_id": user_id,
        "authorization_id": _text(_authorization_id(payload), 64),
        "account_id": _text(payload.get("accountId"), 64),
        "event_timestamp": parse_event_time(payload.get("eventTimestamp")),
        "payload": stored,
        "status": "received",
        "received_at": now,
    }


# --------------------------------------------------------------------------- processing


def process_webhook(session: Session, payload: dict[str, Any], *, now: datetime | None = None) -> WebhookResult:
    """Store a verified event once and apply its effect; a repeated webhookId does nothing more."""
    now = now or utcnow()
    webhook_id, event_type = payload["webhookId"], payload["eventType"]
    user_id = _app_user_id(session, payload.get("userId"))
    event_id = _insert_event(session, _event_row(payload, user_id, now))
    if event_id is None:
        event_id = _stuck_event_id(session, webhook_id, now)
        if event_id is None:
            session.commit()
            return WebhookResult("duplicate", webhook_id, event_type)
    result = apply_event(session, event_id, payload, user_id, now=now)
    if event_type == "CONNECTION_ATTEMPTED" and user_id is not None:
        from core.accounts.attempts import record_attempt_webhook

        record_attempt_webhook(session, user_id=user_id, event_id=event_id, payload=payload, now=now)
    return result


def apply_event(
    session: Session, event_id: int, payload: dict[str, Any], user_id: int | None, *, now: datetime | None = None
) -> WebhookResult:
    """Apply a stored event's effect and record its verdict: on arrival, and again when staff re-process a
    flagged one (core.staff.actions). A sync it asks for joins any queued one. (An event that waited for its
    connection is matched by core.accounts.pending_webhooks when a reconcile records it.)"""
    now = now or utcnow()
    # Commit the row and the state changes before queueing: enqueue_sync commits (and on a lost race
    # rolls back) the session itself, which must not take our event row with it.
    effect = _apply_effect(session, payload, payload["eventType"], user_id, now)
    session.commit()
    result = WebhookResult("accepted", payload["webhookId"], payload["eventType"], event_id, effect.status, effect.note,
                           user_id=user_id, connection_id=effect.connection_id)  # fmt: skip
    if effect.connection is not None:
        run, created = enqueue_sync(session, user_id=effect.connection.user_id,
                                    connection_id=effect.connection.id, trigger="webhook")  # fmt: skip
        result.run_id, result.run_created = run.id, created
    values = {
        "status": effect.status,
        "note": effect.note,
        "processed_at": None if effect.status == "pending" else utcnow(),
    }
    session.execute(sa.update(WebhookEvent).where(WebhookEvent.id == event_id).values(**values))
    session.commit()
    return result


def _apply_effect(
    session: Session, payload: dict[str, Any], event_type: str, user_id: int | None, now: datetime
) -> _Effect:
    if event_type not in HANDLED_EVENTS:
        return _Effect("ignored", _ignored_note(payload, event_type, user_id))
    if user_id is None:
        return _Effect("flagged", "unknown SnapTrade user: no app user is registered with this userId")
    if event_type == "USER_DELETED":
        return _user_deleted(session, user_id, now)
    if event_type == "ACCOUNT_REMOVED":
        return _account_removed(session, payload, user_id, _event_time(payload, now))
    conn, problem = _find_connection(session, payload, user_id)
    if conn is None:
        # SnapTrade sends a new connection's events before the portal's callback records it: they wait.
        return _Effect("pending" if problem == PENDING_NOTE else "flagged", problem)
    if event_type == "CONNECTION_BROKEN":
        effect = _connection_broken(session, conn, payload, _event_time(payload, now), now)
    elif event_type == "CONNECTION_DELETED":
        effect = _connection_deleted(session, conn, DELETED_REASON, now)
    else:
        effect = _queue_sync(session, conn, payload, event_type, now)
    effect.connection_id = conn.id  # for the verdict's log event
    return effect


def _ignored_note(payload: dict[str, Any], event_type: str, user_id: int | None) -> str | None:
    notes = []
    if event_type == "CONNECTION_ATTEMPTED":
        notes.append(f"connectionAttemptedResult={_text(payload.get('connectionAttemptedResult')) or 'unknown'}")
    if user_id is None and payload.get("userId"):
        notes.append("SnapTrade user not known here")
    return "; ".join(notes) or None


def _find_connection(session: Session, payload: dict[str, Any], user_id: int) -> tuple[BrokerageConnection | None, str]:
    """The event's connection (via the account when the authorization id is absent), or why not."""
    auth_id = _authorization_id(payload)
    conn = None
    if auth_id:
        conn = session.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == auth_id)).first()
    elif payload.get("accountId"):
        account = _find_account(session, payload)
        conn = session.get(BrokerageConnection, account.connection_id) if account else None
    if conn is None:
        return None, PENDING_NOTE
    if conn.user_id != user_id:
        return None, "connection belongs to another app user than the event's userId"
    return conn, ""


def _find_account(session: Session, payload: dict[str, Any]) -> BrokerageAccount | None:
    account_id = _text(payload.get("accountId"), 64)
    if not account_id:
        return None
    return session.exec(select(BrokerageAccount).where(BrokerageAccount.snaptrade_account_id == account_id)).first()


def _queue_sync(
    session: Session, conn: BrokerageConnection, payload: dict[str, Any], event_type: str, now: datetime
) -> _Effect:
    """Mark the hinted accounts and ask for a sync (the caller enqueues after committing)."""
    if conn.status == "disconnected":
        return _Effect("flagged", "connection is disconnected here; no sync queued")
    if event_type == "CONNECTION_FIXED":
        if not _newer_state_event(conn, payload, now):
            return _Effect("ignored", "older than the connection's last state change; not applied")
        _mark_state_event(conn, payload, now)
        conn.status, conn.disabled_at, conn.status_reason = "active", None, None
        conn.updated_at = now
        session.add(conn)
    note = hint_accounts(session, conn, event_type, _text(payload.get("accountId"), 64), now)
    return _Effect("processed", note, connection=conn)


def _connection_broken(
    session: Session, conn: BrokerageConnection, payload: dict[str, Any], event_time: datetime, now: datetime
) -> _Effect:
    if conn.status == "disconnected":
        return _Effect("ignored", "connection is already disconnected here")
    if not _newer_state_event(conn, payload, now):
        return _Effect("ignored", "older than the connection's last state change; not applied")
    _mark_state_event(conn, payload, now)
    if conn.status != "needs_reconnect" or conn.disabled_at is None:
        conn.disabled_at = event_time
    conn.status = "needs_reconnect"
    conn.status_reason = _broken_reason(payload)
    conn.updated_at = now
    session.add(conn)
    return _Effect("processed")


def _broken_reason(payload: dict[str, Any]) -> str:
    details = payload.get("details")
    candidates = [payload.get("reason")]
    if isinstance(details, dict):
        candidates += [details.get(k) for k in ("reason", "disabled_reason", "message", "detail")]
    else:
        candidates.append(details)
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return redact(value.strip())[:500]
    return BROKEN_DEFAULT_REASON


def _connection_deleted(session: Session, conn: BrokerageConnection, reason: str, now: datetime) -> _Effect:
    """Disconnected, history kept: the same end state as a user's own disconnect."""
    conn.status, conn.status_reason = "disconnected", reason
    conn.auto_sync_enabled, conn.next_sync_at, conn.updated_at = False, None, now
    session.add(conn)
    session.execute(
        sa.update(BrokerageAccount)
        .where(BrokerageAccount.connection_id == conn.id, BrokerageAccount.is_active.is_(True))
        .values(is_active=False, removed_at=now, updated_at=now)
    )
    return _Effect("processed")


def _user_deleted(session: Session, user_id: int, now: datetime) -> _Effect:
    connections = session.exec(
        select(BrokerageConnection).where(
            BrokerageConnection.user_id == user_id, BrokerageConnection.status != "disconnected"
        )
    ).all()
    for conn in connections:
        _connection_deleted(session, conn, USER_DELETED_REASON, now)
    return _Effect("processed", f"{len(connections)} connection(s) disconnected")


def _account_removed(session: Session, payload: dict[str, Any], user_id: int, event_time: datetime) -> _Effect:
    account = _find_account(session, payload)
    if account is None:
        return _Effect("flagged", "unknown account: no brokerage account with this accountId")
    if account.user_id != user_id:
        return _Effect("flagged", "account belongs to another app user than the event's userId")
    if account.is_active:
        account.is_active, account.removed_at, account.updated_at = False, event_time, utcnow()
        session.add(account)
    return _Effect("processed")


# Retries arrive ≥30 min late, so a BROKEN retry can land after the FIXED that followed it:
# remember the newest applied state event per connection and ignore older ones.
_STATE_MARK = "webhook_state_event_at"


def _newer_state_event(conn: BrokerageConnection, payload: dict[str, Any], now: datetime) -> bool:
    last = parse_event_time((conn.extra or {}).get(_STATE_MARK))
    return last is None or _event_time(payload, now) >= last


def _mark_state_event(conn: BrokerageConnection, payload: dict[str, Any], now: datetime) -> None:
    # A new dict, so the JSON column sees the change.
    conn.extra = {**(conn.extra or {}), _STATE_MARK: _event_time(payload, now).isoformat()}


# --------------------------------------------------------------------------- small helpers


def _app_user_id(session: Session, snaptrade_user_id: Any) -> int | None:
    if not isinstance(snaptrade_user_id, str) or not snaptrade_user_id:
        return None
    return session.exec(
        select(SnapTradeUser.user_id).where(SnapTradeUser.snaptrade_user_id == snaptrade_user_id)
    ).first()


def _authorization_id(payload: dict[str, Any]) -> str | None:
    # The OAuth-app schema names it connectionId.
    return _text(payload.get("brokerageAuthorizationId") or payload.get("connectionId"))


def _event_time(payload: dict[str, Any], now: datetime) -> datetime:
    return parse_event_time(payload.get("eventTimestamp")) or now


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value)
    return text[:limit] if limit else text


def log_delivery(event_type: str | None, webhook_id: str | None, outcome: str, detail: str = "",
                 result: WebhookResult | None = None) -> None:  # fmt: skip
    """The one log event per delivery (its verdict); fields may come from an unverified body, so they are cleaned."""

    def clean(value: str | None) -> str:
        return _LOG_UNSAFE.sub("?", redact(value or "-"))[:80]

    level = logging.INFO if outcome in ("accepted", "duplicate") else logging.WARNING
    detail = _CONTROL.sub(" ", redact(detail))[:400] if detail else ""
    message = (f"snaptrade webhook eventType={clean(event_type)} webhookId={clean(webhook_id)} outcome={outcome}"
               + (f" detail={detail}" if detail else ""))  # fmt: skip
    log_event(log, "webhook.verdict", message, level=level, event_type=clean(event_type), webhook_id=clean(webhook_id),
              outcome=outcome, verdict=result.event_status if result else None, note=result.note if result else None,
              user_id=result.user_id if result else None, connection_id=result.connection_id if result else None,
              run_id=result.run_id if result else None)  # fmt: skip
