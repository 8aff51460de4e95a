"""A connection's and a trader's timeline: every kind of entry, newest first, filters; the state history
the database triggers keep whoever changes a connection's status; runs' "superseded by" wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import select

from core.accounts.attempts import record_callback, record_portal_link
from core.reads import timeline as tl
from core.staff.actions import perform
from core.storage.models import ConnectionStateChange, SnapTradeUser
from core.web.webhooks import process_webhook
from tests import factories as f

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def changes(session, connection_id: int) -> list[tuple[str | None, str]]:
    session.expire_all()
    rows = session.exec(select(ConnectionStateChange).where(ConnectionStateChange.connection_id == connection_id)
                        .order_by(ConnectionStateChange.id)).all()  # fmt: skip
    return [(r.from_status, r.to_status) for r in rows]


def test_every_status_change_is_recorded_by_the_database_whoever_makes_it(session):
    user, conn, _ = f.make_trader(session, "bob")
    session.add(SnapTradeUser(user_id=user.id, snaptrade_user_id="st-bob", user_secret_encrypted="x"))
    session.commit()
    broken = {"webhookId": "w1", "eventType": "CONNECTION_BROKEN", "userId": "st-bob", "clientId": "CID",
              "brokerageAuthorizationId": conn.authorization_id, "eventTimestamp": datetime.now(UTC).isoformat(),
              "reason": "Login expired"}  # fmt: skip
    process_webhook(session, broken)  # the webhook code knows nothing about the history
    session.execute(sa.update(type(conn)).where(type(conn).id == conn.id).values(next_sync_at=datetime.now(UTC)))
    session.execute(sa.update(type(conn)).where(type(conn).id == conn.id).values(status="active"))  # plain SQL too
    session.commit()
    assert changes(session, conn.id) == [(None, "active"), ("active", "needs_reconnect"), ("needs_reconnect", "active")]
    recorded = session.exec(
        select(ConnectionStateChange).where(ConnectionStateChange.to_status == "needs_reconnect")
    ).one()
    assert recorded.reason == "Login expired"
    assert abs((recorded.changed_at - datetime.now(UTC)).total_seconds()) < 60  # the database's clock, as aware UTC


def test_a_connection_timeline_holds_every_kind_newest_first_and_filters(session):
    staff = f.make_user(session, "sam", role="staff")
    user, conn, account = f.make_trader(session, "carol")
    other = f.make_connection(session, user, authorization_id="auth-other")
    failed = f.make_run(session, user, conn, status="failed", queued_at=T0, error_message="SnapTrade answered 503",
                        error_details={"error": {"code": "3002"}})  # fmt: skip
    done = f.make_run(
        session, user, conn, status="completed", queued_at=T0 + timedelta(hours=1), transactions_fetched=5
    )
    f.make_run(session, user, other, status="failed", queued_at=T0)  # another connection's: not here
    issue = f.make_issue(session, user, account, run_id=failed.id, created_at=T0 + timedelta(minutes=5))
    f.make_webhook_event(session, user, authorization_id=conn.authorization_id, status="processed",
                         received_at=T0 + timedelta(minutes=30))  # fmt: skip
    f.make_webhook_event(session, user, authorization_id="auth-other", status="processed")
    record_portal_link(session, user_id=user.id, reconnect_connection_id=conn.id, now=T0 + timedelta(minutes=40))
    perform(session, actor_user_id=staff.id, action="disable_auto_sync", connection_id=conn.id)

    entries = tl.connection_timeline(session, conn.id)
    assert {e.kind for e in entries} == set(tl.KINDS)
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    run_titles = [e.title for e in entries if e.kind == "run"]
    assert run_titles == [f"Sync run #{done.id} · Sync now · Completed",
                          f"Sync run #{failed.id} · Sync now · Failed · superseded by #{done.id}"]  # fmt: skip
    failed_entry = next(e for e in entries if e.ref_id == failed.id and e.kind == "run")
    assert "error 3002: SnapTrade answered 503" in failed_entry.detail and not failed_entry.needs_attention
    issue_entry = next(e for e in entries if e.kind == "issue")
    assert (issue_entry.issue_id, issue_entry.run_id, issue_entry.needs_attention) == (issue.id, failed.id, True)
    assert next(e for e in entries if e.kind == "action").title == "Staff · Disable auto-sync by sam · Done"
    assert len([e for e in entries if e.kind == "webhook"]) == 1

    only = tl.connection_timeline(session, conn.id, kinds=["run", "action"])
    assert {e.kind for e in only} == {"run", "action"} and len(only) == 3


def test_a_trader_timeline_shows_a_failed_attempt_that_never_became_a_connection(session):
    user = f.make_user(session, "dora")
    record_portal_link(session, user_id=user.id, broker="SANDBOX_US")
    record_callback(session, user_id=user.id, params={"status": "ERROR", "error_code": "1066"}, status="error",
                    message="The brokerage connection failed: the brokerage rejected the login.", error_code="1066")  # fmt: skip
    [entry] = tl.user_timeline(session, user.id)
    assert entry.kind == "attempt" and entry.connection_id is None and entry.needs_attention
    assert entry.title == "Portal attempt · new connection · SANDBOX_US · Failed"
    assert "callback ERROR (error 1066)" in entry.detail
    [failed] = tl.failed_attempts(session)
    assert (failed.username, failed.error_code) == ("dora", "1066")


def test_account_statuses_show_our_last_sync_and_snaptrades_sync_status(session):
    _, conn, account = f.make_trader(session, "erin")
    account.snaptrade_initial_sync_completed = True
    account.snaptrade_last_successful_sync = T0.date()
    account.last_synced_at = T0
    session.add(account)
    session.commit()
    [status] = tl.account_statuses(session, conn.id)
    assert status.label == "Individual ••••1234"
    assert (status.last_synced_at, status.snaptrade_initial_sync_completed, status.snaptrade_last_successful_sync) == (
        T0,
        True,
        T0.date(),
    )


def test_run_outcome_words():
    assert tl.run_outcome("failed", 12) == "Failed · superseded by #12"
    assert tl.run_outcome("interrupted", None, 13) == "Interrupted · retry queued as #13"
    assert tl.run_outcome("completed", 12) == "Completed"
