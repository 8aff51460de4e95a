"""AppTest of the staff connection page: staff-only, the header and accounts, a timeline of every kind with
filters and links, run details, and each action: asked, confirmed, done once, shown in the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core.accounts.attempts import record_portal_link
from core.accounts.connections import reconcile_connections
from core.storage.models import (
    BrokerageConnection,
    StaffAction,
    SyncIssue,
    SyncRunRequest,
    TransactionSyncLog,
    WebhookEvent,
)
from tests import factories as f
from tests.syncsupport import connect

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "connection_detail.py")
T0 = datetime.now(UTC) - timedelta(hours=3)


def page(user, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["current_user"] = f.session_user(user.id, username=user.username, role=user.role,
                                                      timezone="Europe/Paris")  # fmt: skip
    for key, value in (query or {}).items():
        at.query_params[key] = str(value)
    return at.run()


def frame(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.fixture
def story(db, users):
    """tina's Alpaca connection: recorded, a failed run a later run completed, a failing run since, broken now;
    an issue, a processed and a flagged webhook, a reconnect attempt."""
    tina = users["tina"]
    conn = f.make_connection(db, tina, brokerage_name="Alpaca")
    account = f.make_account(db, conn)
    old = f.make_run(db, tina, conn, status="failed", queued_at=T0, error_message="SnapTrade answered 503",
                     error_details={"error": {"code": "3002", "request_id": "req-503"}})  # fmt: skip
    done = f.make_run(db, tina, conn, status="completed", queued_at=T0 + timedelta(minutes=10), transactions_fetched=7)
    failing = f.make_run(db, tina, conn, status="failed", queued_at=T0 + timedelta(hours=1),
                         error_message="This connection needs to be reconnected", checkpoint={"accounts": {}})  # fmt: skip
    db.add(SyncRunRequest(run_id=failing.id, seq=1, at=T0, operation="list connections", method="GET",
                          path="/authorizations", status=200, duration_ms=12.5, attempt=1, request_id="req-abc"))  # fmt: skip
    db.commit()
    db.execute(sa.update(BrokerageConnection).where(BrokerageConnection.id == conn.id)
               .values(status="needs_reconnect", status_reason="Login expired"))  # fmt: skip
    db.commit()
    issue = f.make_issue(db, tina, account, run_id=failing.id, reason="missing trade_date")
    f.make_webhook_event(
        db, tina, authorization_id=conn.authorization_id, status="processed", event_type="CONNECTION_BROKEN"
    )
    flagged = f.make_webhook_event(db, tina, authorization_id=conn.authorization_id, status="flagged",
                                   payload={"webhookId": "w-fl", "eventType": "ACCOUNT_TRANSACTIONS_UPDATED",
                                            "brokerageAuthorizationId": conn.authorization_id})  # fmt: skip
    record_portal_link(db, user_id=tina.id, reconnect_connection_id=conn.id)
    return {"conn": conn, "old": old, "done": done, "failing": failing, "issue": issue, "flagged": flagged}


def test_a_trader_is_denied_and_sees_nothing_of_it(users, story):
    at = page(users["tina"], {"id": story["conn"].id})
    assert any("Access denied" in e.value for e in at.error)
    assert not at.title and not at.dataframe and not at.button


def test_staff_read_the_header_accounts_and_a_timeline_of_every_kind(users, story):
    at = page(users["sam"], {"id": story["conn"].id})
    assert not at.exception
    assert at.title[0].value == f"Connection #{story['conn'].id} · Alpaca"
    assert any("Login expired" in m.value for m in at.markdown)
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Runs needing a person"] == "1" and tiles["Auto-sync"] == "daily"
    timeline = frame(at, "What")
    what = " | ".join(timeline["What"])
    for expected in (f"Sync run #{story['old'].id} · Sync now · Failed · superseded by #{story['done'].id}",
                     f"Sync run #{story['failing'].id} · Sync now · Failed", "Webhook CONNECTION_BROKEN · Processed",
                     "Webhook ACCOUNT_TRANSACTIONS_UPDATED · Flagged", f"Sync issue #{story['issue'].id}",
                     "State · Active → Needs reconnect", "Connection recorded · Active",
                     "Portal attempt · reconnect · No result yet"):  # fmt: skip
        assert expected in what, expected
    links = set(timeline["Link"].dropna())
    assert f"connection?id={story['conn'].id}&run={story['old'].id}" in links
    assert f"connection?id={story['conn'].id}&issue={story['issue'].id}" in links
    accounts = frame(at, "SnapTrade initial sync done")
    assert list(accounts["Account"]) == ["Individual ••••1234"]

    at.multiselect(key="conn_kinds").set_value(["run"]).run()
    assert set(frame(at, "What")["Kind"]) == {"Sync run"} and len(frame(at, "What")) == 3


def test_a_run_link_opens_that_runs_details_with_its_requests(users, story):
    at = page(users["sam"], {"id": story["conn"].id, "run": story["failing"].id})
    assert at.selectbox(key="conn_run").value == story["failing"].id
    assert any(f"**Run #{story['failing'].id}**" in m.value for m in at.markdown)
    requests = frame(at, "request_id")
    assert list(requests["request_id"]) == ["req-abc"] and list(requests["path"]) == ["/authorizations"]


def test_a_run_link_to_a_run_of_another_connection_says_so(users, story):
    at = page(users["sam"], {"id": story["conn"].id, "run": 999})
    assert [w.value for w in at.warning] == [
        "Run #999 is not a run of this connection; showing its latest run instead."
    ]
    assert at.selectbox(key="conn_run").value == max(story[k].id for k in ("old", "done", "failing"))


def test_an_unknown_connection_says_so(users):
    at = page(users["sam"], {"id": 4242})
    assert any("#4242 does not exist" in e.value for e in at.error)


ACTIONS = [
    # button key, audit action, words in the outcome shown
    ("conn_retry", "retry_sync", "Retry of run #{failing} queued as run #"),
    ("conn_full", "full_resync", "Full re-import queued as run #"),
    ("conn_reprocess", "reprocess_webhooks", "Re-processed 1 flagged event(s): 1 took effect"),
    ("conn_autosync", "disable_auto_sync", "Auto-sync is off"),
    ("conn_bundle", "support_bundle", "Support bundle prepared"),
]


@pytest.mark.parametrize(("key", "action", "said"), ACTIONS, ids=[a[1] for a in ACTIONS])
def test_each_action_is_asked_then_done_once_and_audited(db, users, story, key, action, said):
    at = page(users["sam"], {"id": story["conn"].id})
    at.button(key=key).click().run()
    assert at.warning, "a confirmation is asked first"
    assert db.exec(select(StaffAction)).all() == []  # nothing done before Confirm
    at.button(key="staff_confirm").click().run()
    assert not at.exception
    shown = " ".join(m.value for m in [*at.success, *at.info])
    assert said.format(failing=story["failing"].id) in shown, shown
    db.expire_all()
    [entry] = db.exec(select(StaffAction)).all()
    assert (entry.action, entry.actor_username, entry.connection_id, entry.outcome) == (
        action,
        "sam",
        story["conn"].id,
        "done",
    )
    assert f"audit entry #{entry.id}" in shown
    assert not any(
        b.key == "staff_confirm" for b in at.button
    )  # the confirmation is gone: a second click acts on nothing
    audit = frame(at, "What happened")
    assert list(audit["Staff"]) == ["sam"] and entry.message in list(audit["What happened"])
    assert any(t.startswith("Staff · ") and "by sam" in t for t in frame(at, "What")["What"])
    if action == "support_bundle":
        assert at.get("download_button"), "the prepared bundle is offered for download"


def test_retry_queues_one_run_that_resumes_the_failing_one(db, users, story):
    at = page(users["sam"], {"id": story["conn"].id})
    at.button(key="conn_retry").click().run()
    assert any(f"Run #{story['failing'].id}" in w.value for w in at.warning)
    assert any("The connection needs reconnecting: the run fails again unless its login" in w.value for w in at.warning)
    at.button(key="staff_confirm").click().run()
    db.expire_all()
    queued = db.exec(select(TransactionSyncLog).where(TransactionSyncLog.status == "queued")).all()
    assert len(queued) == 1 and queued[0].error_details["retry_of"] == story["failing"].id
    assert "retry queued as #" in " ".join(frame(at, "What")["What"])


def test_once_auto_sync_is_off_staff_are_offered_to_turn_it_back_on(db, users, story):
    at = page(users["sam"], {"id": story["conn"].id})
    at.button(key="conn_autosync").click().run()
    at.button(key="staff_confirm").click().run()
    assert not any(b.key == "conn_autosync" for b in at.button)
    at.button(key="conn_autosync_on").click().run()
    assert any(w.value == "Schedule syncs of Alpaca of tina again (daily)?" for w in at.warning)
    at.button(key="staff_confirm").click().run()
    assert any(s.value.startswith("Enable auto-sync: Auto-sync is on again") for s in at.success)
    db.expire_all()
    assert db.get(BrokerageConnection, story["conn"].id).auto_sync_enabled
    assert at.button(key="conn_autosync").disabled is False


def test_resolving_an_issue_needs_a_note(db, users, story):
    at = page(users["sam"], {"id": story["conn"].id, "issue": story["issue"].id})
    at.button(key="conn_resolve").click().run()
    at.button(key="staff_confirm").click().run()  # no note
    assert any("Write a note" in e.value for e in at.error)
    assert db.get(SyncIssue, story["issue"].id, populate_existing=True).resolved_at is None
    at.button(key="conn_resolve").click().run()
    at.text_input(key="staff_action_note").input("re-imported by the broker").run()
    at.button(key="staff_confirm").click().run()
    stored = db.get(SyncIssue, story["issue"].id, populate_existing=True)
    assert (stored.resolved_by, stored.resolution_note) == ("sam", "re-imported by the broker")
    assert [e.outcome for e in db.exec(select(StaffAction).order_by(StaffAction.id))] == ["failed", "done"]


def test_cancel_does_nothing(db, users, story):
    at = page(users["sam"], {"id": story["conn"].id})
    at.button(key="conn_autosync").click().run()
    at.button(key="staff_cancel").click().run()
    assert not at.warning and db.exec(select(StaffAction)).all() == []
    assert db.get(BrokerageConnection, story["conn"].id, populate_existing=True).auto_sync_enabled


def test_reconcile_and_the_reconnect_link_go_to_snaptrade(db, users, sandbox):
    auth_id = connect(db, sandbox, users["tina"].id)
    reconcile_connections(db, user_id=users["tina"].id)
    conn = db.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == auth_id)).one()
    sandbox.disable_connection(auth_id, reason="Login expired")
    at = page(users["sam"], {"id": conn.id})
    at.button(key="conn_reconcile").click().run()
    at.button(key="staff_confirm").click().run()
    entry = db.exec(select(StaffAction)).one()
    said = f"Reconcile with SnapTrade: Status Active → Needs reconnect. (audit entry #{entry.id})"
    assert said in [s.value for s in at.success]
    assert at.title[0].value.startswith(f"Connection #{conn.id}")

    at.button(key="conn_link").click().run()
    assert any("only you will see it" in w.value for w in at.warning)
    at.button(key="staff_confirm").click().run()
    [code] = at.code
    assert code.value.startswith(f"{sandbox.base_url}/__portal__/")
    assert any("Expires" in c.value for c in at.caption)
    db.expire_all()
    stored = db.exec(select(StaffAction).order_by(StaffAction.id)).all()
    assert [e.action for e in stored] == ["reconcile", "reconnect_link"]
    assert all(code.value not in (e.message or "") + str(e.details) for e in stored)  # the link is never stored

    another_session = page(users["sam"], {"id": conn.id})  # the link lives in the asking session only
    assert not another_session.code and not another_session.exception
    assert db.exec(select(WebhookEvent)).all() == []


def test_the_router_registers_the_staff_pages_for_staff_only(dashboard, users, story):
    for staff_page in ("connection_detail.py", "user_detail.py"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            dashboard("tina").switch_page(staff_page)
    at = dashboard("sam", page="connection_detail.py", query={"id": story["conn"].id})
    assert not at.exception and at.title[0].value == f"Connection #{story['conn'].id} · Alpaca"
    # Through the router, links are real page links (same tab, same session), with the id as a query parameter.
    [user_link] = [p for p in at.get("page_link") if "Trader tina" in p.proto.label]
    assert (user_link.proto.page, user_link.proto.query_string) == ("staff-user", f"id={users['tina'].id}")
