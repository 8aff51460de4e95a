"""Callback page: the portal's redirect lands in a new session; the page re-identifies the user,
treats the query params as hints, says what happened, clears the params and links onwards."""

from __future__ import annotations

from sqlmodel import select

from core.accounts.connections import create_portal_link, get_snaptrade_identity
from core.storage.models import BrokerageConnection, TransactionSyncLog
from tests.pages.conftest import PASSWORDS


def test_a_signed_out_visitor_is_asked_to_log_in_and_then_sees_the_outcome(dashboard, users, sandbox):
    at = dashboard(query={"status": "ABANDONED"}, page="callback.py")
    assert any("Log in to finish connecting" in i.value for i in at.info)
    at.text_input(key="login_username").input("tina")
    at.text_input(key="login_password").input(PASSWORDS["tina"])
    at.button(key="login_submit").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Back from your broker"]
    assert "nothing was connected" in at.warning[0].value
    assert dict(at.query_params) == {}


def test_an_error_redirect_explains_the_code(dashboard, users, sandbox):
    at = dashboard("tina", query={"status": "ERROR", "status_code": "400", "error_code": "1066"}, page="callback.py")
    assert "rejected the login" in at.error[0].value and "1066" in at.error[0].value
    assert dict(at.query_params) == {}


def test_success_reads_connections_from_snaptrade_and_queues_the_first_import(dashboard, db, users, sandbox):
    tina = users["tina"]
    create_portal_link(db, user_id=tina.id)  # registers tina at SnapTrade, as clicking "Connect a broker" does
    authorization_id = sandbox.create_connection(get_snaptrade_identity(db, tina.id).snaptrade_user_id)
    at = dashboard("tina", query={"status": "SUCCESS", "connection_id": authorization_id}, page="callback.py")
    assert not at.exception
    assert "is connected; the first import has been queued" in at.success[0].value
    assert dict(at.query_params) == {}
    conn = db.exec(select(BrokerageConnection)).one()
    assert conn.authorization_id == authorization_id and conn.user_id == tina.id
    run = db.exec(select(TransactionSyncLog)).one()
    assert run.trigger == "initial"
    assert at.session_state["sync_watch"] == [run.id]  # the Sync page summarises this import
    at.run()  # a rerun (the params are gone) keeps the message and does not repeat the callback
    assert "is connected" in at.success[0].value
    assert len(db.exec(select(TransactionSyncLog)).all()) == 1


def test_opening_the_page_without_params_says_there_is_nothing_to_finish(dashboard, users):
    at = dashboard("tina", page="callback.py")
    assert "Nothing to finish here" in at.info[0].value
