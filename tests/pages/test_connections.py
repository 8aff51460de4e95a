"""Connections page: empty state, a fresh portal link per click, cards in words (active, needs
reconnect, error), masked account numbers, the auto-sync schedule and disconnect with confirmation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from core.storage.models import BrokerageConnection, BrokerageTransaction, utcnow
from tests.factories import make_account, make_connection, make_transaction


def shown(at) -> str:
    kinds = ("markdown", "info", "error", "warning", "success", "caption", "subheader")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def test_a_trader_without_connections_sees_the_empty_state(dashboard, users):
    at = dashboard("tina")
    assert not at.exception
    assert "No connection yet" in shown(at)
    assert at.button(key="connect_new").label == "Connect a broker"


def test_connect_a_broker_opens_a_fresh_portal_link_in_one_click(dashboard, users, sandbox):
    at = dashboard("tina")
    assert "portal_link" not in at.session_state  # no link until asked: portal links expire after 5 minutes
    at.button(key="connect_new").click().run()
    assert not at.exception
    link = at.session_state["portal_link"]
    assert link["url"].startswith(sandbox.base_url) and link["for"] is None
    assert not at.get("link_button")  # no second button to press: the rerun opens the portal itself
    assert f"[open it here]({link['url']})" in shown(at)


def test_cards_describe_each_connection_in_words(dashboard, db, users):
    tina = users["tina"]
    active = make_connection(db, tina, brokerage_name="Alpaca", last_sync_at=utcnow() - timedelta(hours=3),
                             next_sync_at=utcnow() + timedelta(hours=21))  # fmt: skip
    make_account(db, active, account_number="12345678", total_value=Decimal("10500.25"), currency="USD")
    make_connection(db, tina, brokerage_name="Questrade", status="needs_reconnect",
                    status_reason="Authentication expired", disabled_at=utcnow() - timedelta(days=2))  # fmt: skip
    make_connection(db, tina, brokerage_name="Wealthsimple", status="error", error_message="SnapTrade is down")
    at = dashboard("tina")
    text = shown(at)
    assert not at.exception
    assert {"Alpaca", "Questrade", "Wealthsimple"} <= {s.value for s in at.subheader}
    assert "Needs reconnect since" in text and "Authentication expired" in text
    assert "Error:** SnapTrade is down" in text
    accounts = at.dataframe[0].value
    assert list(accounts["Number"]) == ["••••5678"] and "10,500.25 USD" in list(accounts["Value"])
    assert "3 h ago" in text and "in 21 h" in text
    reconnect = [b for b in at.button if b.label == "Reconnect"]
    assert len(reconnect) == 1


def test_auto_sync_toggle_saves_the_schedule(dashboard, db, users):
    conn = make_connection(db, users["tina"])
    at = dashboard("tina")
    at.toggle(key=f"auto_{conn.id}").set_value(False).run()
    db.expire_all()
    saved = db.get(BrokerageConnection, conn.id)
    assert saved.auto_sync_enabled is False and saved.next_sync_at is None
    at.toggle(key=f"auto_{conn.id}").set_value(True).run()
    at.selectbox(key=f"freq_{conn.id}").set_value(6 * 60).run()
    db.expire_all()
    saved = db.get(BrokerageConnection, conn.id)
    assert saved.auto_sync_enabled and saved.sync_frequency_minutes == 360 and saved.next_sync_at is not None


def test_disconnect_asks_for_confirmation_and_can_delete_history(dashboard, db, users):
    conn = make_connection(db, users["tina"], brokerage_name="Alpaca")
    account = make_account(db, conn)
    make_transaction(db, account)
    at = dashboard("tina")
    at.button(key=f"disconnect_{conn.id}").click().run()
    assert db.get(BrokerageConnection, conn.id).status == "active"  # nothing happens before confirming
    at.radio(key=f"keep_{conn.id}").set_value("Delete").run()
    at.button(key=f"confirm_disconnect_{conn.id}").click().run()
    assert not at.exception
    db.expire_all()
    assert db.get(BrokerageConnection, conn.id).status == "disconnected"
    assert db.query(BrokerageTransaction).count() == 0
    assert "No connection yet" in shown(at)
    assert "Disconnected (1)" in [e.label for e in at.expander]


def test_a_broken_connection_leads_with_reconnect_and_pauses_its_schedule(dashboard, db, users):
    broken = make_connection(db, users["tina"], brokerage_name="Questrade", status="needs_reconnect",
                             status_reason="SnapTrade reported the connection as broken",
                             disabled_at=utcnow() - timedelta(days=2),
                             next_sync_at=utcnow() + timedelta(hours=21))  # fmt: skip
    make_account(db, broken, institution_name="Questrade", account_name="Questrade TFSA", account_number="****5148")
    at = dashboard("tina")
    text = shown(at)
    assert not at.exception
    warning = at.warning[0].value
    assert (
        warning.startswith("**Needs reconnect since ")
        and "Reason: SnapTrade reported the connection as broken." in warning
    )
    assert "Next sync: **paused until reconnected**" in text and "in 21 h" not in text
    assert at.button(key=f"reconnect_{broken.id}").label == "Reconnect"
    # The call to action comes before the accounts table and the schedule.
    order = [getattr(e, "key", None) or type(e).__name__ for e in at.main]
    assert order.index(f"reconnect_{broken.id}") < order.index("Dataframe") < order.index(f"auto_{broken.id}")
    accounts = at.dataframe[0].value
    assert (accounts["Account"].iloc[0], accounts["Number"].iloc[0]) == ("TFSA", "••••5148")


def _registered_with_a_connection(db, sandbox, user) -> tuple[str, BrokerageConnection]:
    from core.accounts.connections import ensure_snaptrade_user, reconcile_connections

    identity = ensure_snaptrade_user(db, user.id)
    sandbox.create_connection(identity.snaptrade_user_id, broker="SANDBOX_US", history_size=5)
    reconcile_connections(db, user_id=user.id)
    return identity.snaptrade_user_id, db.query(BrokerageConnection).one()


def test_a_refused_secret_leads_the_page_and_reset_brings_the_connections_back(dashboard, db, users, sandbox):
    from core.accounts.connections import SECRET_REFUSED_REASON, mark_secret_refused

    st_user, conn = _registered_with_a_connection(db, sandbox, users["tina"])
    mark_secret_refused(db, users["tina"].id)  # SnapTrade refused it once; the stored secret still works
    at = dashboard("tina")
    assert not at.exception
    assert at.error[0].value.startswith("**SnapTrade access needs attention since ")
    assert SECRET_REFUSED_REASON in at.error[0].value
    assert at.button(key="connect_new").disabled  # Connect could only be refused again
    old = sandbox.user_secret(st_user)
    at.button(key="secret_reset").click().run()
    assert not at.exception
    assert "The SnapTrade secret was reset and stored" in at.success[0].value
    assert not any("needs attention" in e.value for e in at.error) and not at.button(key="connect_new").disabled
    db.expire_all()
    assert db.get(BrokerageConnection, conn.id).status == "active"
    for secret in (old, sandbox.user_secret(st_user)):
        assert secret not in shown(at)


def test_when_snaptrade_refuses_the_reset_the_trader_can_register_again(dashboard, db, users, sandbox):
    from core.accounts.connections import mark_secret_refused

    st_user, conn = _registered_with_a_connection(db, sandbox, users["tina"])
    sandbox.invalidate_user_secret(st_user)
    mark_secret_refused(db, users["tina"].id)
    at = dashboard("tina")
    at.button(key="secret_reset").click().run()
    assert "SnapTrade refused to reset" in at.error[0].value  # the outcome, then the panel still asking
    at.button(key="secret_register").click().run()
    assert "closes every connection" in at.warning[0].value
    at.button(key="secret_register_confirm").click().run()
    assert not at.exception
    assert "Registered with SnapTrade again" in at.success[0].value
    db.expire_all()
    assert db.get(BrokerageConnection, conn.id).status == "disconnected"
    assert not at.button(key="connect_new").disabled
