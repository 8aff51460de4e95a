"""Webhooks that beat the portal's callback: kept pending, matched when a reconcile records their
connection (one coalesced sync), flagged only after WEBHOOK_PENDING_SECONDS; and the whole story with
the sandbox, which sends a new connection's webhooks before the browser is back, as SnapTrade does."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from core.accounts import pending_webhooks
from core.accounts.connections import create_portal_link, handle_portal_callback
from core.jobs.worker import Worker
from core.settings import reset_settings_cache
from core.storage.models import BrokerageConnection, SnapTradeUser, TransactionSyncLog, WebhookEvent
from core.web.webhooks import process_webhook
from tests.core.accounts.test_connections import portal
from tests.core.web.test_api import LiveServer
from tests.factories import make_account, make_connection, make_user
from tests.syncsupport import make_user as make_trader_user

SYNC_EVENTS = ("CONNECTION_ADDED", "NEW_ACCOUNT_AVAILABLE", "ACCOUNT_TRANSACTIONS_INITIAL_UPDATE")


def event(event_type: str, **fields) -> dict:
    return {"webhookId": str(uuid.uuid4()), "clientId": "CID", "eventTimestamp": datetime.now(UTC).isoformat(),
            "userId": "st-early", "eventType": event_type, "brokerageAuthorizationId": "auth-new", **fields}  # fmt: skip


@pytest.fixture
def trader(session):
    user = make_user(session)
    session.add(SnapTradeUser(user_id=user.id, snaptrade_user_id="st-early", user_secret_encrypted="x"))
    session.commit()
    return user


def statuses(session: Session) -> Counter:
    session.expire_all()
    return Counter(session.exec(select(WebhookEvent.status)).all())


def all_runs(session: Session) -> list[TransactionSyncLog]:
    session.expire_all()
    return list(session.exec(select(TransactionSyncLog)))


def test_early_events_wait_then_take_effect_once_with_one_sync(session, engine, trader):
    for payload in (event("CONNECTION_ADDED"), event("NEW_ACCOUNT_AVAILABLE", accountId="acc-new"),
                    event("ACCOUNT_TRANSACTIONS_INITIAL_UPDATE", accountId="acc-new")):  # fmt: skip
        assert process_webhook(session, payload).event_status == "pending"
    assert statuses(session) == {"pending": 3} and all_runs(session) == []

    conn = make_connection(session, trader, authorization_id="auth-new")  # what the callback's reconcile records
    make_account(session, conn, snaptrade_account_id="acc-new")
    result = pending_webhooks.match_pending(engine, user_id=trader.id, initial_for=[conn.id])
    assert len(result.matched) == 3 and result.still_pending == []
    [run] = all_runs(session)
    assert (run.connection_id, run.trigger, run.status) == (conn.id, "initial", "queued") and result.run_ids == [run.id]
    assert statuses(session) == {"processed": 3}
    notes = session.exec(select(WebhookEvent.note)).all()
    assert all(n.startswith("matched ") and "once the connection was recorded" in n for n in notes)
    assert pending_webhooks.match_pending(engine, user_id=trader.id).matched == []  # nothing left to do


def test_an_event_for_another_connection_keeps_waiting(session, engine, trader):
    process_webhook(session, event("CONNECTION_ADDED", brokerageAuthorizationId="auth-later"))
    make_connection(session, trader, authorization_id="auth-new")
    result = pending_webhooks.match_pending(engine, user_id=trader.id)
    assert result.matched == [] and len(result.still_pending) == 1 and all_runs(session) == []


def test_events_still_unmatched_after_the_wait_are_flagged_for_staff(session, engine, trader, settings_env):
    settings_env.setenv("WEBHOOK_PENDING_SECONDS", "600")
    reset_settings_cache()
    process_webhook(session, event("CONNECTION_ADDED"))
    now = datetime.now(UTC)
    assert pending_webhooks.flag_expired(session, now=now + timedelta(seconds=590)) == 0
    assert statuses(session) == {"pending": 1}
    assert pending_webhooks.flag_expired(session, now=now + timedelta(seconds=610)) == 1
    row = session.exec(select(WebhookEvent)).one()
    assert row.status == "flagged" and "within 10 min" in row.note and row.processed_at is not None


def test_the_worker_flags_expired_events_as_part_of_its_maintenance(session, engine, trader, settings_env):
    settings_env.setenv("WEBHOOK_PENDING_SECONDS", "0")
    reset_settings_cache()
    process_webhook(session, event("CONNECTION_ADDED"), now=datetime.now(UTC) - timedelta(seconds=5))
    Worker(engine=engine, scheduler=False).maintenance()
    assert statuses(session) == {"flagged": 1}


def test_with_the_sandbox_webhooks_before_the_callback_take_effect_when_it_records_the_connection(
    session, engine, settings_env, sandbox
):
    """The real order: the portal's Connect makes the sandbox send CONNECTION_ATTEMPTED, CONNECTION_ADDED,
    NEW_ACCOUNT_AVAILABLE… to our webhook route before it redirects the browser to /callback."""
    server = LiveServer().start()
    try:
        sandbox.set_webhook_url(server.webhook_url)
        uid = make_trader_user(session, "early-bird")
        url = create_portal_link(session, user_id=uid, broker="SANDBOX_US", redirect_url="http://127.0.0.1:9/callback")
        params = portal(url, "SANDBOX_US", "connect")
        assert sandbox.wait_for_webhooks(15)
        delivered = Counter(d["payload"]["eventType"] for d in sandbox.webhook_deliveries() if d["delivered"])
        assert all(delivered[e] >= 1 for e in SYNC_EVENTS), delivered
        session.expire_all()
        early = session.exec(select(WebhookEvent).where(WebhookEvent.event_type.in_(SYNC_EVENTS))).all()
        assert early and {e.status for e in early} == {"pending"}  # not flagged, not lost
        assert all_runs(session) == []

        outcome = handle_portal_callback(session, user_id=uid, params=params)  # the browser is back
        assert outcome.status == "connected"
        session.expire_all()
        assert {e.status for e in session.exec(select(WebhookEvent).where(WebhookEvent.event_type.in_(SYNC_EVENTS)))} == {
            "processed"}  # fmt: skip
        [run] = all_runs(session)  # every early event and the callback itself: one queued sync
        assert outcome.run_ids == [run.id] and (run.trigger, run.status) == ("initial", "queued")
        conn = session.get(BrokerageConnection, outcome.connection_id)
        assert conn.authorization_id == params["connection_id"]

        Worker(engine=engine, scheduler=False).execute(run.id)
        session.expire_all()
        assert session.get(TransactionSyncLog, run.id).status == "completed"
        assert [r.id for r in all_runs(session)] == [run.id]  # nothing else was queued by the early events
        assert "flagged" not in statuses(session)
    finally:
        server.stop()
