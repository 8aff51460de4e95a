"""Portal attempts: the link, SnapTrade's CONNECTION_ATTEMPTED and the callback joined into one attempt;
failures recorded even when the browser never comes back; the sandbox portal end to end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from core.accounts.attempts import ATTEMPT_WINDOW, record_callback, record_portal_link
from core.accounts.connections import create_portal_link, handle_portal_callback
from core.reads import timeline as tl
from core.storage.models import PortalAttempt, SnapTradeUser, WebhookEvent
from core.web.webhooks import process_webhook
from tests.core.accounts.test_connections import portal
from tests.core.web.test_api import LiveServer
from tests.factories import make_user
from tests.syncsupport import make_user as make_trader_user


def attempted(result: str, user: str = "st-att") -> dict:
    return {"webhookId": str(uuid.uuid4()), "clientId": "CID", "eventTimestamp": datetime.now(UTC).isoformat(),
            "userId": user, "eventType": "CONNECTION_ATTEMPTED", "brokerageId": "ALPACA",
            "connectionAttemptedResult": result}  # fmt: skip


def test_link_webhook_and_callback_are_one_failed_attempt(session):
    user = make_user(session)
    session.add(SnapTradeUser(user_id=user.id, snaptrade_user_id="st-att", user_secret_encrypted="x"))
    session.commit()
    link = record_portal_link(session, user_id=user.id, broker="ALPACA")
    result = process_webhook(session, attempted("INVALID_CREDENTIALS"))
    assert result.event_status == "ignored"  # the event itself changes no data…
    record_callback(session, user_id=user.id, params={"status": "ERROR", "error_code": "1066"}, status="error",
                    message="The brokerage connection failed (error code 1066).", error_code="1066")  # fmt: skip
    [attempt] = session.exec(select(PortalAttempt)).all()  # …but the attempt records it
    assert attempt.id == link.id and attempt.outcome == "failed"
    assert (attempt.webhook_result, attempt.callback_status, attempt.error_code) == (
        "INVALID_CREDENTIALS",
        "ERROR",
        "1066",
    )
    assert attempt.webhook_event_id == session.exec(select(WebhookEvent.id)).one()
    assert "rejected the username or password" in attempt.message and "1066" in attempt.message


def test_a_failure_reported_only_by_snaptrade_is_still_an_attempt(session):
    user = make_user(session)
    session.add(SnapTradeUser(user_id=user.id, snaptrade_user_id="st-att", user_secret_encrypted="x"))
    session.commit()
    process_webhook(session, attempted("INVALID_MFA_CODE"))  # no link recorded, no callback ever
    [attempt] = tl.failed_attempts(session, user_id=user.id)
    assert attempt.webhook_result == "INVALID_MFA_CODE" and attempt.callback_status is None


def test_an_old_link_is_not_joined_by_a_new_callback(session):
    user = make_user(session)
    now = datetime.now(UTC)
    record_portal_link(session, user_id=user.id, now=now - ATTEMPT_WINDOW - timedelta(minutes=1))
    record_callback(
        session, user_id=user.id, params={"status": "ABANDONED"}, status="abandoned", message="left", now=now
    )
    outcomes = sorted(a.outcome for a in session.exec(select(PortalAttempt)))
    assert outcomes == ["abandoned", "open"]


def test_the_sandbox_portal_invalid_credentials_then_success(session, engine, sandbox):
    server = LiveServer().start()
    try:
        sandbox.set_webhook_url(server.webhook_url)
        uid = make_trader_user(session, "fran")
        url = create_portal_link(session, user_id=uid, broker="SANDBOX_US", redirect_url="http://127.0.0.1:9/callback")
        params = portal(url, "SANDBOX_US", "invalid")
        assert params["status"] == "ERROR"
        assert sandbox.wait_for_webhooks(15)
        outcome = handle_portal_callback(session, user_id=uid, params=params)
        record_callback(session, user_id=uid, params=params, status=outcome.status, message=outcome.message,
                        error_code=outcome.error_code)  # fmt: skip
        url = create_portal_link(session, user_id=uid, broker="SANDBOX_US", redirect_url="http://127.0.0.1:9/callback")
        params = portal(url, "SANDBOX_US", "connect")
        assert sandbox.wait_for_webhooks(15)
        outcome = handle_portal_callback(session, user_id=uid, params=params)
        record_callback(session, user_id=uid, params=params, status=outcome.status, message=outcome.message,
                        connection_id=outcome.connection_id)  # fmt: skip
        attempts = tl.attempts(session, user_id=uid)
        assert [(a.outcome, a.webhook_result, a.callback_status) for a in attempts] == [
            ("connected", "SUCCESS", "SUCCESS"),
            ("failed", "INVALID_CREDENTIALS", "ERROR"),
        ]  # newest first
        assert attempts[0].connection_id == outcome.connection_id and attempts[1].error_code == "1066"
    finally:
        server.stop()
