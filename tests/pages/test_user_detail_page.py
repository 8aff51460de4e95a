"""AppTest of the staff trader page: connections, connect attempts (failed ones that never became a
connection included) and one timeline; flagged events re-processed from here; staff only."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core.accounts.attempts import record_callback, record_portal_link
from core.storage.models import StaffAction, WebhookEvent
from tests import factories as f

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "user_detail.py")


def page(user, user_id: int) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["current_user"] = f.session_user(user.id, username=user.username, role=user.role)
    at.query_params["id"] = str(user_id)
    return at.run()


def test_staff_see_a_traders_failed_attempt_connections_and_timeline(db, users):
    tina = users["tina"]
    conn = f.make_connection(db, tina, brokerage_name="Questrade")
    record_portal_link(db, user_id=tina.id, broker="SANDBOX_US")
    record_callback(db, user_id=tina.id, params={"status": "ERROR", "error_code": "1066"}, status="error",
                    message="The brokerage connection failed.", error_code="1066")  # fmt: skip
    at = page(users["sam"], tina.id)
    assert not at.exception and at.title[0].value == "Trader tina"
    assert "1 failed connect attempt(s)" in at.caption[0].value
    timeline = next(d.value for d in at.dataframe if "What" in d.value.columns)
    assert "Portal attempt · new connection · SANDBOX_US · Failed" in list(timeline["What"])
    assert "Connection recorded · Active" in list(timeline["What"])
    connections = next(d.value for d in at.dataframe if "Brokerage" in d.value.columns and "Open" in d.value.columns)
    assert list(connections["Open"]) == [f"connection?id={conn.id}"]


def test_a_traders_flagged_events_are_reprocessed_from_the_trader_page(db, users):
    tina = users["tina"]
    conn = f.make_connection(db, tina)
    event = f.make_webhook_event(db, tina, status="flagged", authorization_id=conn.authorization_id,
                                 payload={"webhookId": "w-u1", "eventType": "CONNECTION_ADDED",
                                          "brokerageAuthorizationId": conn.authorization_id})  # fmt: skip
    at = page(users["sam"], tina.id)
    at.button(key="user_reprocess").click().run()
    at.button(key="staff_confirm").click().run()
    assert any("1 took effect" in s.value for s in at.success)
    db.expire_all()
    assert db.get(WebhookEvent, event.id).status == "processed"
    [entry] = db.exec(select(StaffAction)).all()
    assert (entry.action, entry.user_id, entry.connection_id) == ("reprocess_webhooks", tina.id, None)


def test_a_trader_is_denied(db, users):
    at = page(users["tina"], users["tina"].id)
    assert any("Access denied" in e.value for e in at.error) and not at.title
