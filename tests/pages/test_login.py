"""The login gate: the form, demo logins only in sandbox mode, the database lockout, sign-up,
logout and server-side revocation (session epoch), cookie re-login, and per-role navigation."""

from __future__ import annotations

import pytest
from streamlit.runtime.context import ContextProxy
from streamlit.testing.v1 import AppTest

from core.accounts import auth, session_cookie
from core.settings import reset_settings_cache
from tests.pages.conftest import PASSWORDS


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "info", "error", "warning", "success", "caption") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def registered(at: AppTest) -> set[str]:
    """Titles of the pages the last run registered with st.navigation.

    AppTest keeps that registry privately; it is the only view of what a session can reach by URL.
    """
    return {info.get("page_name") for info in at._registered_pages.values()}


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return at.button(key="login_submit").click().run()


def with_cookie(monkeypatch, name: str, token: str) -> None:
    """Pretend the browser sent the re-login cookie with its websocket handshake."""
    monkeypatch.setattr(ContextProxy, "cookies", property(lambda self: {name: token}))


def test_signed_out_visitor_sees_the_login_form_and_demo_logins_in_sandbox_mode(dashboard):
    at = dashboard()
    assert not at.exception
    assert titles(at) == ["Tradistry Broker Sync"]
    assert at.text_input(key="login_username") and at.text_input(key="login_password").proto.type == 1  # password
    assert "Sandbox mode" in texts(at)
    demo = at.table[0].value
    assert set(demo["Username"]) == {"demo", "staff"}
    assert registered(at) == {"Log in", "Back from your broker"}


def test_production_mode_shows_no_demo_logins_and_creates_none(dashboard, db, settings_env):
    settings_env.setenv("SNAPTRADE_CLIENT_ID", "prod-client")
    settings_env.setenv("SNAPTRADE_CONSUMER_KEY", "prod-key")
    reset_settings_cache()
    at = dashboard()
    assert not at.exception
    assert "Sandbox mode" not in texts(at) and len(at.table) == 0
    assert auth.get_user(db, "demo") is None and auth.get_user(db, "staff") is None


def test_demo_login_works_from_the_form(dashboard):
    at = log_in(dashboard(), *auth.DEMO_USERS[0][:2])
    assert titles(at) == ["Connections"]


def test_login_form_signs_in_and_queues_a_one_time_code_for_the_cookie_carrying_the_epoch(dashboard, db, users):
    at = log_in(dashboard(), "Tina", PASSWORDS["tina"])
    assert not at.exception
    assert titles(at) == ["Connections"]
    assert at.session_state["auth"] == {"username": "tina", "epoch": 0}
    cmd = at.session_state["auth_cookie_cmd"]
    # The page (and so the browser's scripts) gets only a code; the server trades it for the HttpOnly cookie.
    assert cmd["op"] == "set" and set(cmd) == {"op", "code", "id"}
    grant = session_cookie.codes.redeem(cmd["code"])
    assert grant.op == "set" and auth.verify_session_token(db, grant.token).username == "tina"
    assert session_cookie.codes.redeem(cmd["code"]) is None  # once only
    assert "Operations" not in registered(at) and {"Connections", "Sync", "Back from your broker"} <= registered(at)


def test_wrong_password_is_refused_and_the_lockout_refuses_even_the_right_one(dashboard, users, settings_env):
    settings_env.setenv("LOGIN_MAX_FAILURES", "2")
    reset_settings_cache()
    at = log_in(dashboard(), "tina", "not her password")
    assert "Incorrect username or password." in [e.value for e in at.error]
    at = log_in(at, "tina", "still not it")
    assert any("locked" in e.value for e in at.error)
    at = log_in(at, "tina", PASSWORDS["tina"])
    assert any("locked until" in e.value and "Try again" in e.value for e in at.error)
    assert titles(at) == ["Tradistry Broker Sync"]


def test_logout_revokes_the_session_everywhere(dashboard, db, users):
    at = dashboard("tina")
    assert titles(at) == ["Connections"]
    other_tab = dashboard("tina")
    at.button(key="logout_button").click().run()
    assert titles(at) == ["Tradistry Broker Sync"]
    assert "You have logged out." in texts(at)
    cmd = at.session_state["auth_cookie_cmd"]
    assert cmd["op"] == "delete" and session_cookie.codes.redeem(cmd["code"]).op == "clear"
    assert auth.session_epoch(db, "tina") == 1
    other_tab.run()  # a second browser tab signed in earlier is signed out on its next run
    assert titles(other_tab) == ["Tradistry Broker Sync"]
    assert "signed out" in texts(other_tab)


def test_password_change_elsewhere_signs_the_session_out(dashboard, db, users):
    at = dashboard("sam")
    auth.change_password(db, "sam", PASSWORDS["sam"], "a brand new secret")
    at.run()
    assert titles(at) == ["Tradistry Broker Sync"]


def test_a_valid_cookie_signs_a_fresh_session_in_and_a_revoked_one_does_not(dashboard, db, users, monkeypatch):
    from core.settings import get_settings

    token = auth.issue_session_token("tina", auth.session_epoch(db, "tina"))
    with_cookie(monkeypatch, get_settings().auth_cookie_name, token)
    at = dashboard()
    assert titles(at) == ["Connections"]
    auth.bump_session_epoch(db, "tina")  # logout from another browser
    fresh = dashboard()
    assert titles(fresh) == ["Tradistry Broker Sync"]
    cmd = fresh.session_state["auth_cookie_cmd"]
    assert cmd["op"] == "delete" and session_cookie.codes.redeem(cmd["code"]).op == "clear"


def test_signup_creates_a_trader_and_signs_in(dashboard, db):
    at = dashboard()
    at.text_input(key="signup_username").input("newbie")
    at.text_input(key="signup_password").input("long enough pw")
    at.text_input(key="signup_confirm").input("long enough pw")
    at.button(key="signup_submit").click().run()
    assert titles(at) == ["Connections"]
    assert auth.get_user(db, "newbie").role == "trader"


def test_signup_errors_are_shown_and_signup_can_be_disabled(dashboard, settings_env):
    at = dashboard()
    at.text_input(key="signup_username").input("x")
    at.text_input(key="signup_password").input("long enough pw")
    at.text_input(key="signup_confirm").input("long enough pw")
    at.button(key="signup_submit").click().run()
    assert any("3 to 32 characters" in e.value for e in at.error)
    settings_env.setenv("ALLOW_SIGNUP", "false")
    reset_settings_cache()
    at = dashboard()
    assert len(at.tabs) == 0
    with pytest.raises(KeyError):
        at.text_input(key="signup_username")


def test_staff_navigation_adds_operations_and_keeps_trader_pages(dashboard, users):
    at = dashboard("sam")
    assert {"Connections", "Sync", "Transactions", "Analytics", "Operations"} <= registered(at)
    trader = dashboard("tina")
    assert {"Connections", "Sync", "Transactions", "Analytics"} <= registered(trader)
    assert "Operations" not in registered(trader)


def test_a_privileged_page_refuses_a_trader_who_reaches_it_by_url(dashboard, users, tmp_path):
    # Navigation already hides operations from traders; this checks the second lock every staff
    # page uses (`require_role`), as if the page were reached anyway.
    def guarded():
        import streamlit as st

        from pages.components import require_role

        require_role("staff")
        st.title("Staff only")

    for username, allowed in (("tina", False), ("sam", True)):
        at = dashboard(username)
        user = at.session_state["current_user"]
        page = AppTest.from_function(guarded)
        page.session_state["current_user"] = user
        page.run()
        assert (titles(page) == ["Staff only"]) is allowed
        if not allowed:
            assert "Access denied" in page.error[0].value


def test_account_controls_sit_in_a_menu_named_for_the_user(dashboard, users):
    """The time-zone picker and logout live in the sidebar's account popover (closed until clicked), so
    they are not mounted on every page's first paint."""
    at = dashboard("tina")
    (menu,) = [b for b in at.sidebar.children.values() if getattr(b, "type", None) == "popover"]
    assert menu.proto.popover.label == "Tina Trader"
    assert not menu.proto.popover.open
    keys = {getattr(w, "key", None) for w in menu.children.values()}
    assert {"tz_choice", "logout_button"} <= keys


def test_timezone_setting_is_saved_to_the_account(dashboard, db, users):
    at = dashboard("tina")
    at.selectbox(key="tz_choice").set_value("Asia/Tokyo").run()
    db.expire_all()
    assert auth.load_session_user(db, "tina").timezone == "Asia/Tokyo"
    assert at.session_state["current_user"].timezone == "Asia/Tokyo"


def test_a_trader_cannot_switch_to_operations_but_staff_can(dashboard, users):
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        dashboard("tina").switch_page("operations.py")
    assert titles(dashboard("sam", page="operations.py")) == ["Operations"]
