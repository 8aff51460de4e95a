"""Callback page: the portal's redirect lands in a new session; the page re-identifies the user,
treats the query params as hints, says what happened, clears the params and links onwards."""

from __future__ import annotations

from sqlmodel import select

from core.accounts.connections import create_portal_link, get_snaptrade_identity, reconcile_connections
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


# --- issue #24, items 2 and 5 --------------------------------------------------------------------------


def _shown(at) -> str:
    kinds = ("markdown", "info", "error", "warning", "success", "caption")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def _link_labels(at) -> list[str]:
    return [link.proto.label for link in at.get("page_link")]


def _connected_tina(db, users, sandbox) -> tuple[str, dict]:
    tina = users["tina"]
    create_portal_link(db, user_id=tina.id)
    authorization_id = sandbox.create_connection(get_snaptrade_identity(db, tina.id).snaptrade_user_id)
    return authorization_id, {"status": "SUCCESS", "connection_id": authorization_id}


def _finish_runs(db) -> None:
    for run in db.exec(select(TransactionSyncLog).where(TransactionSyncLog.status == "queued")):
        run.status = "completed"
        db.add(run)
    db.commit()


def test_a_replayed_callback_for_a_known_connection_queues_nothing(dashboard, db, users, sandbox):
    _, query = _connected_tina(db, users, sandbox)
    first = dashboard("tina", query=query, page="callback.py")
    assert "the first import has been queued" in first.success[0].value
    _finish_runs(db)  # the first import ran; later callbacks find a connection 20 minutes old
    for _ in range(6):
        replay = dashboard("tina", query=query, page="callback.py")  # each one a new browser session
        assert not replay.exception
        text = _shown(replay)
        assert "already connected" in text and "queued" not in text, text
        assert "Follow the import" not in _link_labels(replay)
        assert replay.session_state["sync_watch"] == []
    runs = db.exec(select(TransactionSyncLog)).all()
    assert [r.trigger for r in runs] == ["initial"]


def _broken_after_its_import(dashboard, db, users, sandbox) -> tuple[str, dict, BrokerageConnection]:
    """tina's connection, imported, then disabled at the broker and recorded as needing a reconnect."""
    authorization_id, query = _connected_tina(db, users, sandbox)
    dashboard("tina", query=query, page="callback.py")
    _finish_runs(db)
    sandbox.disable_connection(authorization_id)
    reconcile_connections(db, user_id=users["tina"].id)
    conn = db.exec(select(BrokerageConnection)).one()
    assert conn.status == "needs_reconnect"
    return authorization_id, query, conn


def test_a_reconnect_of_a_broken_connection_gets_one_sync_once(dashboard, db, users, sandbox):
    authorization_id, query, _ = _broken_after_its_import(dashboard, db, users, sandbox)
    sandbox.fix_connection(authorization_id)  # what the portal does when the trader reconnects

    at = dashboard("tina", query=query, page="callback.py")
    assert not at.exception
    message = at.success[0].value
    assert "reconnected" in message and "first import" not in message and "a sync has been queued" in message
    assert "Follow the sync" in _link_labels(at)
    assert "import(s)" not in _shown(at)
    assert len(db.exec(select(TransactionSyncLog)).all()) == 2
    _finish_runs(db)
    replay = dashboard("tina", query=query, page="callback.py")
    assert "queued" not in _shown(replay)
    assert len(db.exec(select(TransactionSyncLog)).all()) == 2


def test_a_reconnect_that_snaptrades_webhook_recorded_first_still_reads_as_a_reconnect(dashboard, db, users, sandbox):
    authorization_id, query, conn = _broken_after_its_import(dashboard, db, users, sandbox)
    create_portal_link(db, user_id=users["tina"].id, reconnect_connection_id=conn.id)  # the card's Reconnect
    sandbox.fix_connection(authorization_id)
    reconcile_connections(db, user_id=users["tina"].id)  # the fix recorded before the browser is back
    db.refresh(conn)
    assert conn.status == "active"

    at = dashboard("tina", query=query, page="callback.py")
    assert [m.value for m in at.success] == [
        f"{conn.brokerage_name} is reconnected; a sync has been queued to fetch what it missed."
    ]
    assert "Follow the sync" in _link_labels(at)
    assert len(db.exec(select(TransactionSyncLog)).all()) == 2
    _finish_runs(db)
    replay = dashboard("tina", query=query, page="callback.py")  # the pass is over: a replay changes nothing
    assert "already connected" in _shown(replay) and len(db.exec(select(TransactionSyncLog)).all()) == 2


def test_a_cancelled_or_failed_connect_offers_try_again_and_no_import_to_follow(dashboard, users, sandbox):
    for query in ({"status": "ABANDONED"}, {"status": "ERROR", "error_code": "1066"}):
        at = dashboard("tina", query=query, page="callback.py")
        assert not at.exception
        assert [b.label for b in at.button if b.key == "callback_try_again"] == ["Try again"]
        assert "Follow the import" not in _link_labels(at)
        at.button(key="callback_try_again").click().run()  # straight to a fresh portal, no second click
        assert not at.exception
        assert at.session_state["portal_link"]["url"].startswith(sandbox.base_url)
        assert "Opening SnapTrade's portal" in _shown(at)
