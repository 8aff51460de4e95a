"""Staff actions: the server-side role check, one effect per confirmation, the audit trail, and what each
action does (against the sandbox where it asks SnapTrade), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import zipfile
from io import BytesIO

import pytest
from sqlmodel import Session, select

from core.accounts.audit import PermissionDenied, entries
from core.accounts.connections import reconcile_connections
from core.staff import actions as staff_actions
from core.staff.actions import perform
from core.storage.models import (
    BrokerageConnection,
    PortalAttempt,
    StaffAction,
    SyncIssue,
    TransactionSyncLog,
    WebhookEvent,
)
from tests import factories as f
from tests.syncsupport import connect, make_user, snaptrade_user_id


@pytest.fixture
def world(session):
    """Staff sam, trader bob with a failed run (with a checkpoint), an open issue and a flagged event."""
    staff = f.make_user(session, "sam", role="staff")
    trader, conn, account = f.make_trader(session, "bob")
    failed = f.make_run(session, trader, conn, status="failed", error_message="SnapTrade answered 503",
                        checkpoint={"accounts": {account.snaptrade_account_id: {"offset": 2000}}})  # fmt: skip
    issue = f.make_issue(session, trader, account)
    return staff, trader, conn, account, failed, issue


def runs(session: Session, connection_id: int) -> list[TransactionSyncLog]:
    session.expire_all()
    return list(session.exec(select(TransactionSyncLog).where(TransactionSyncLog.connection_id == connection_id)
                             .order_by(TransactionSyncLog.id)))  # fmt: skip


def audit_rows(session: Session) -> list[StaffAction]:
    session.expire_all()
    return list(session.exec(select(StaffAction).order_by(StaffAction.id)))


def test_a_trader_forging_an_action_gets_nothing_and_leaves_no_audit_entry(session, world):
    _, trader, conn, _, failed, issue = world
    for action, kwargs in [("retry_sync", {}), ("disable_auto_sync", {}), ("resolve_issue", {"issue_id": issue.id}),
                           ("support_bundle", {}), ("reconnect_link", {})]:  # fmt: skip
        with pytest.raises(PermissionDenied):
            perform(session, actor_user_id=trader.id, action=action, connection_id=conn.id, note="x", **kwargs)
    with pytest.raises(PermissionDenied):
        perform(session, actor_user_id=None, action="retry_sync", connection_id=conn.id)
    assert audit_rows(session) == []
    assert [r.id for r in runs(session, conn.id)] == [failed.id]
    assert session.get(BrokerageConnection, conn.id, populate_existing=True).auto_sync_enabled
    assert session.get(SyncIssue, issue.id, populate_existing=True).resolved_at is None


def test_a_deactivated_or_demoted_staff_member_is_refused(session, world):
    staff, _, conn, *_ = world
    staff.role = "trader"
    session.add(staff)
    session.commit()
    with pytest.raises(PermissionDenied):
        perform(session, actor_user_id=staff.id, action="retry_sync", connection_id=conn.id)
    staff.role, staff.is_active = "staff", False
    session.add(staff)
    session.commit()
    with pytest.raises(PermissionDenied):
        perform(session, actor_user_id=staff.id, action="retry_sync", connection_id=conn.id)
    assert audit_rows(session) == []


def test_retry_resumes_the_failed_run_from_its_checkpoint_and_is_audited(session, world):
    staff, trader, conn, account, failed, _ = world
    result = perform(session, actor_user_id=staff.id, action="retry_sync", connection_id=conn.id, idempotency_key="k1")
    assert result.outcome == "done" and f"Retry of run #{failed.id}" in result.message
    [_, retry] = runs(session, conn.id)
    assert (retry.status, retry.trigger, retry.checkpoint) == ("queued", "manual", failed.checkpoint)
    assert retry.error_details == {"requested_by": "sam", "staff_action_id": result.action_id, "retry_of": failed.id}
    [entry] = audit_rows(session)
    assert (entry.actor_username, entry.action, entry.connection_id, entry.user_id, entry.outcome) == (
        "sam",
        "retry_sync",
        conn.id,
        trader.id,
        "done",
    )
    assert entry.details["run_id"] == retry.id and entry.finished_at is not None


def test_the_same_confirmation_twice_acts_once(session, world):
    staff, _, conn, *_ = world
    first = perform(session, actor_user_id=staff.id, action="retry_sync", connection_id=conn.id, idempotency_key="dbl")
    again = perform(session, actor_user_id=staff.id, action="retry_sync", connection_id=conn.id, idempotency_key="dbl")
    assert (again.repeated, again.action_id, again.outcome) == (True, first.action_id, "done")
    assert len(runs(session, conn.id)) == 2 and len(audit_rows(session)) == 1


def test_a_double_click_racing_from_two_threads_acts_once(engine, world):
    staff, _, conn, *_ = world
    barrier, results, errors = threading.Barrier(2), [], []

    def click():
        try:
            with Session(engine, expire_on_commit=False) as s:
                barrier.wait(5)
                results.append(perform(s, actor_user_id=staff.id, action="full_resync", connection_id=conn.id,
                                       idempotency_key="race"))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(r.repeated for r in results) == [False, True]
    with Session(engine) as s:
        assert len(s.exec(select(StaffAction)).all()) == 1
        queued = s.exec(select(TransactionSyncLog).where(TransactionSyncLog.status == "queued")).all()
        assert len(queued) == 1 and queued[0].full_sync


def test_a_second_retry_while_one_is_queued_joins_it(session, world):
    staff, _, conn, *_ = world
    first = perform(session, actor_user_id=staff.id, action="retry_sync", connection_id=conn.id, idempotency_key="a")
    second = perform(session, actor_user_id=staff.id, action="retry_sync", connection_id=conn.id, idempotency_key="b")
    assert second.outcome == "no_change" and f"run #{first.details['run_id']}" in second.message
    assert len(runs(session, conn.id)) == 2 and [e.outcome for e in audit_rows(session)] == ["done", "no_change"]


def test_full_resync_upgrades_a_queued_run_and_waits_for_a_running_one(session, world):
    staff, trader, conn, *_ = world
    queued = f.make_run(session, trader, conn, status="queued")
    result = perform(session, actor_user_id=staff.id, action="full_resync", connection_id=conn.id)
    assert result.outcome == "done" and session.get(TransactionSyncLog, queued.id, populate_existing=True).full_sync
    queued.status = "running"
    session.add(queued)
    session.commit()
    result = perform(session, actor_user_id=staff.id, action="full_resync", connection_id=conn.id)
    assert result.outcome == "no_change" and "is running" in result.message


def test_actions_on_a_disconnected_connection_fail_with_a_reason(session, world):
    staff, _, conn, *_ = world
    conn.status = "disconnected"
    session.add(conn)
    session.commit()
    result = perform(session, actor_user_id=staff.id, action="retry_sync", connection_id=conn.id)
    assert result.outcome == "failed" and "disconnected" in result.message
    assert audit_rows(session)[-1].outcome == "failed"


def test_resolving_an_issue_needs_a_note_and_keeps_it(session, world):
    staff, _, _, _, _, issue = world
    refused = perform(session, actor_user_id=staff.id, action="resolve_issue", issue_id=issue.id, note="  ")
    assert refused.outcome == "failed" and "note" in refused.message
    done = perform(session, actor_user_id=staff.id, action="resolve_issue", issue_id=issue.id, note="broker fixed it")
    assert done.outcome == "done"
    stored = session.get(SyncIssue, issue.id, populate_existing=True)
    assert (stored.resolved_by, stored.resolution_note) == ("sam", "broker fixed it")
    again = perform(session, actor_user_id=staff.id, action="resolve_issue", issue_id=issue.id, note="again")
    assert again.outcome == "no_change"
    assert [(e.action, e.issue_id, e.connection_id is not None) for e in audit_rows(session)] == [
        ("resolve_issue", issue.id, True)
    ] * 3  # the issue's connection, found through its account


def test_disable_auto_sync_is_idempotent(session, world):
    staff, _, conn, *_ = world
    assert perform(session, actor_user_id=staff.id, action="disable_auto_sync", connection_id=conn.id).outcome == "done"
    stored = session.get(BrokerageConnection, conn.id, populate_existing=True)
    assert not stored.auto_sync_enabled and stored.next_sync_at is None
    assert (
        perform(session, actor_user_id=staff.id, action="disable_auto_sync", connection_id=conn.id).outcome
        == "no_change"
    )


def test_staff_turn_auto_sync_back_on_at_the_connections_frequency(session, world):
    staff, _, conn, *_ = world
    perform(session, actor_user_id=staff.id, action="disable_auto_sync", connection_id=conn.id)
    on = perform(session, actor_user_id=staff.id, action="enable_auto_sync", connection_id=conn.id)
    stored = session.get(BrokerageConnection, conn.id, populate_existing=True)
    assert on.outcome == "done" and stored.auto_sync_enabled and stored.next_sync_at is not None
    assert (
        on.message == f"Auto-sync is on again: the next scheduled sync is at {stored.next_sync_at:%Y-%m-%d %H:%M} UTC."
    )
    again = perform(session, actor_user_id=staff.id, action="enable_auto_sync", connection_id=conn.id)
    assert (again.outcome, again.message) == ("no_change", "Auto-sync was already on for this connection.")
    assert [e.action for e in audit_rows(session)][-2:] == ["enable_auto_sync", "enable_auto_sync"]


def test_reprocessing_flagged_events_applies_those_whose_connection_now_exists(session, world):
    staff, trader, conn, account, *_ = world
    ok = f.make_webhook_event(session, trader, status="flagged", authorization_id=conn.authorization_id,
                              payload={"webhookId": "w-ok", "eventType": "ACCOUNT_TRANSACTIONS_UPDATED",
                                       "brokerageAuthorizationId": conn.authorization_id,
                                       "accountId": account.snaptrade_account_id})  # fmt: skip
    stray = f.make_webhook_event(session, trader, status="flagged", authorization_id=conn.authorization_id,
                                 event_type="ACCOUNT_REMOVED", payload={"webhookId": "w-stray", "eventType": "ACCOUNT_REMOVED",
                                 "brokerageAuthorizationId": conn.authorization_id, "accountId": "nope"})  # fmt: skip
    result = perform(session, actor_user_id=staff.id, action="reprocess_webhooks", connection_id=conn.id)
    assert result.outcome == "done" and "1 took effect, 1 still flagged" in result.message
    session.expire_all()
    assert session.get(WebhookEvent, ok.id).status == "processed"
    assert session.get(WebhookEvent, stray.id).status == "flagged"
    assert [r.status for r in runs(session, conn.id)] == ["failed", "queued"]


def test_reconcile_and_a_reconnect_link_ask_the_sandbox(session, sandbox):
    staff = f.make_user(session, "sam", role="staff")
    uid = make_user(session, "tina")
    auth_id = connect(session, sandbox, uid)
    reconcile_connections(session, user_id=uid)
    conn = session.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == auth_id)).one()
    sandbox.disable_connection(auth_id, reason="Login expired")

    result = perform(session, actor_user_id=staff.id, action="reconcile", connection_id=conn.id)
    assert result.outcome == "done" and result.message == "Status Active → Needs reconnect."
    link = perform(session, actor_user_id=staff.id, action="reconnect_link", connection_id=conn.id,
                   idempotency_key="link-1")  # fmt: skip
    assert link.outcome == "done" and link.link.startswith(sandbox.base_url) and link.link_expires_at
    [attempt] = session.exec(select(PortalAttempt)).all()
    assert (attempt.purpose, attempt.connection_id, attempt.requested_by) == ("reconnect", conn.id, "sam")
    stored = audit_rows(session)
    assert [e.action for e in stored] == ["reconcile", "reconnect_link"]
    assert link.link not in repr([e.model_dump() for e in stored])  # the link is never stored
    repeated = perform(session, actor_user_id=staff.id, action="reconnect_link", connection_id=conn.id,
                       idempotency_key="link-1")  # fmt: skip
    assert repeated.repeated and repeated.link is None  # not issued twice, and not shown again
    assert snaptrade_user_id(session, uid)


def test_a_support_bundle_is_an_audited_zip(session, world):
    staff, _, conn, *_ = world
    result = perform(session, actor_user_id=staff.id, action="support_bundle", connection_id=conn.id)
    names = zipfile.ZipFile(BytesIO(result.data)).namelist()
    assert f"support-bundle-connection-{conn.id}/runs.json" in names
    assert entries(session, connection_id=conn.id)[0].action == "support_bundle"


def test_every_action_has_a_label_and_a_handler():
    from core.accounts.audit import ACTION_LABELS
    from core.storage.models import STAFF_ACTIONS

    assert set(staff_actions.ACTIONS) == set(STAFF_ACTIONS) == set(ACTION_LABELS)
