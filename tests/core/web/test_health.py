"""The health document: counts without user data, degraded on a stalled queue, 503 when the database is gone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import core
from core.storage.db import create_db_engine
from core.web.health import health
from tests.factories import make_connection, make_run, make_user


def test_an_empty_database_is_ok_with_zero_counts(engine):
    body, status = health(engine)
    assert status == 200
    assert body["status"] == "ok" and body["version"] == core.__version__
    assert body["database"] == {"reachable": True}
    assert body["connections"] == {"active": 0, "failing": 0}
    assert body["queue"]["depth"] == 0 and body["queue"]["oldest_queued_age_seconds"] is None
    assert body["last_completed_sync_at"] is None


def test_counts_queue_age_and_last_sync_without_any_user_data(engine, session):
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    user = make_user(session, "alice-the-trader", email="alice@example.com")
    active = make_connection(session, user, brokerage_name="Secret Broker Name")
    broken = make_connection(session, user, status="needs_reconnect")
    make_connection(session, user, status="error")
    make_connection(session, user, status="disconnected")
    make_run(session, user, active, status="queued", queued_at=now - timedelta(seconds=90))
    make_run(session, user, broken, status="completed", completed_at=now - timedelta(hours=2))
    make_run(session, user, None, status="completed", completed_at=now - timedelta(hours=5))

    body, status = health(engine, now=now)
    assert status == 200 and body["status"] == "ok"
    assert body["connections"] == {"active": 1, "failing": 2}
    assert body["queue"]["depth"] == 1 and body["queue"]["oldest_queued_age_seconds"] == 90.0
    assert body["last_completed_sync_at"] == "2026-03-01T10:00:00Z"
    text = json.dumps(body)
    for private in ("alice", "example.com", "Secret Broker", user.username):
        assert private not in text


def test_a_queue_that_has_not_moved_for_long_is_degraded(engine, session):
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    user = make_user(session)
    conn = make_connection(session, user)
    make_run(session, user, conn, status="queued", queued_at=now - timedelta(hours=1))
    body, status = health(engine, now=now)
    assert status == 200 and body["status"] == "degraded"
    assert body["reasons"] == ["the oldest queued sync has waited 3600 s"]


def test_an_unreachable_database_is_503_down_without_a_traceback_or_the_url(settings_env):
    dead = create_db_engine("postgresql+psycopg://monitor:pa55word@127.0.0.1:1/nowhere?connect_timeout=2")
    try:
        body, status = health(dead)
    finally:
        dead.dispose()
    assert status == 503
    assert body["status"] == "down" and body["database"]["reachable"] is False
    text = json.dumps(body)
    assert "pa55word" not in text and "Traceback" not in text and "127.0.0.1" not in text
