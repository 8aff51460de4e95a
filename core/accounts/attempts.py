"""Connect attempts through SnapTrade's portal as staff see them: the link we issued, SnapTrade's
CONNECTION_ATTEMPTED webhook and the browser's return to /callback, joined into one `portal_attempts` row.

Each source finds the user's most recent attempt it has not been joined to yet (within ATTEMPT_WINDOW),
or starts a new one: a failed login in the portal is an attempt even if the browser never comes back.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from core.logs import log_event
from core.storage.models import PortalAttempt, utcnow

log = logging.getLogger("tradistry.portal")

PORTAL_LINK_SECONDS = 300  # SnapTrade's portal links expire after 5 minutes
# A webhook or callback belongs to a link issued at most this long before (people linger in the portal).
ATTEMPT_WINDOW = timedelta(minutes=30)
ATTEMPT_RESULTS = {  # SnapTrade's connectionAttemptedResult in words (REFERENCE §11)
    "SUCCESS": "the brokerage login succeeded",
    "AUTH_EXPIRED": "the brokerage login session expired",
    "INVALID_AUTH_CODE": "the brokerage returned an invalid authorization code",
    "AUTH_NOT_IN_PROGRESS": "the brokerage login was not in progress",
    "DIFFERENT_ACCOUNT": "a different brokerage login than the original connection was used",
    "UNCAUGHT_ERROR": "SnapTrade hit an unexpected error",
    "INVALID_CREDENTIALS": "the brokerage rejected the username or password",
    "INVALID_MFA_CODE": "the multi-factor code was wrong",
    "NO_DATA": "the brokerage returned no accounts",
}
CALLBACK_OUTCOMES = {"connected": "connected", "error": "failed", "abandoned": "abandoned", "unknown": "unknown"}


def record_portal_link(
    session: Session, *, user_id: int, broker: str | None = None, reconnect_connection_id: int | None = None,
    requested_by: str | None = None, now: datetime | None = None,
) -> PortalAttempt:  # fmt: skip
    """A portal link was issued (by the trader, or by staff for them). Commits."""
    now = now or utcnow()
    attempt = PortalAttempt(user_id=user_id, connection_id=reconnect_connection_id, broker=broker,
                            purpose="reconnect" if reconnect_connection_id else "connect", requested_by=requested_by,
                            link_created_at=now, link_expires_at=now + timedelta(seconds=PORTAL_LINK_SECONDS),
                            created_at=now, updated_at=now)  # fmt: skip
    session.add(attempt)
    session.commit()
    log_event(log, "portal.link", f"portal link issued for a {attempt.purpose}", user_id=user_id,
              connection_id=reconnect_connection_id, attempt_id=attempt.id, broker=broker, requested_by=requested_by)  # fmt: skip
    return attempt


def _open_attempt(session: Session, user_id: int, now: datetime, unjoined: Any) -> PortalAttempt | None:
    return session.exec(
        select(PortalAttempt)
        .where(PortalAttempt.user_id == user_id, PortalAttempt.created_at >= now - ATTEMPT_WINDOW, unjoined.is_(None))
        .order_by(PortalAttempt.created_at.desc(), PortalAttempt.id.desc())
    ).first()


def reconnecting(session: Session, user_id: int, now: datetime | None = None) -> int | None:
    """The connection the portal pass the browser is coming back from (the latest one without a callback yet) was
    issued to reconnect, if any: SnapTrade's webhook may have recorded the fix before the browser is back."""
    attempt = _open_attempt(session, user_id, now or utcnow(), PortalAttempt.callback_status)
    return attempt.connection_id if attempt is not None and attempt.purpose == "reconnect" else None


def record_attempt_webhook(
    session: Session, *, user_id: int, event_id: int, payload: dict[str, Any], now: datetime | None = None
) -> PortalAttempt:
    """SnapTrade's CONNECTION_ATTEMPTED: the portal's login result, success or not. Commits."""
    now = now or utcnow()
    result = str(payload.get("connectionAttemptedResult") or "UNKNOWN")[:64]
    attempt = _open_attempt(session, user_id, now, PortalAttempt.webhook_event_id) or PortalAttempt(
        user_id=user_id, created_at=now
    )
    attempt.webhook_event_id, attempt.webhook_result, attempt.updated_at = event_id, result, now
    attempt.broker = attempt.broker or (str(payload["brokerageId"])[:64] if payload.get("brokerageId") else None)
    if result != "SUCCESS":
        attempt.outcome = "failed"
        attempt.message = f"SnapTrade: {ATTEMPT_RESULTS.get(result, result.replace('_', ' ').lower())} ({result})."
    elif attempt.outcome == "open":
        attempt.outcome, attempt.message = "connected", "SnapTrade: the brokerage login succeeded."
    session.add(attempt)
    session.commit()
    log_event(log, "portal.attempt", f"portal attempt result {result}", level=logging.INFO if result == "SUCCESS"
              else logging.WARNING, user_id=user_id, connection_id=attempt.connection_id, attempt_id=attempt.id,
              result=result)  # fmt: skip
    return attempt


def record_callback(
    session: Session, *, user_id: int, params: dict[str, Any], status: str, message: str,
    connection_id: int | None = None, error_code: str | None = None, now: datetime | None = None,
) -> PortalAttempt:  # fmt: skip
    """The browser came back to /callback; `status` is core.accounts.connections.CallbackOutcome's. Commits."""
    now = now or utcnow()
    attempt = _open_attempt(session, user_id, now, PortalAttempt.callback_status) or PortalAttempt(
        user_id=user_id, created_at=now
    )
    attempt.callback_status = str(params.get("status") or "").upper()[:16] or None
    attempt.callback_at, attempt.updated_at = now, now
    attempt.error_code = (str(error_code)[:16] if error_code else None) or attempt.error_code
    attempt.connection_id = connection_id or attempt.connection_id
    outcome = CALLBACK_OUTCOMES.get(status, "unknown")
    # A failure SnapTrade reported is kept even when the callback itself says little more.
    if not (attempt.outcome == "failed" and outcome in ("unknown", "failed")):
        attempt.outcome, attempt.message = outcome, message
    elif outcome == "failed":
        attempt.message = f"{attempt.message} {message}".strip()
    session.add(attempt)
    session.commit()
    log_event(log, "portal.callback", f"portal callback {status}", level=logging.INFO if status == "connected"
              else logging.WARNING, user_id=user_id, connection_id=attempt.connection_id, attempt_id=attempt.id,
              callback_status=attempt.callback_status, error_code=attempt.error_code)  # fmt: skip
    return attempt
