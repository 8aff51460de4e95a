"""The login gate: the form, demo logins only in sandbox mode, the sign-in back-off, sign-up,
logout and server-side revocation (session epoch), cookie re-login, and per-role navigation."""

from __future__ import annotations

import time

import pytest
from streamlit.runtime.context import ContextProxy
from streamlit.testing.v1 import AppTest

from core.accounts import auth, session_cookie
from core.settings import reset_settings_cache
from tests.pages.conftest import PASSWORDS


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "text", "info", "error", "warning", "success", "caption")
        for e in getattr(at, kind)
    ]
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
    assert at.session_state["auth"] == {"username": "tina", "epoch": 0, "sid": at.session_state["auth"]["sid"]}
    cmd = at.session_state["auth_cookie_cmd"]
    # The page (and so the browser's scripts) gets only a code; the server trades it for the HttpOnly cookie.
    assert cmd["op"] == "set" and set(cmd) == {"op", "code", "id"}
    grant = session_cookie.codes.redeem(cmd["code"])
    assert grant.op == "set" and auth.verify_session_token(db, grant.token).username == "tina"
    assert session_cookie.codes.redeem(cmd["code"]) is None  # once only
    assert "Operations" not in registered(at) and {"Connections", "Sync", "Back from your broker"} <= registered(at)


def errors(at: AppTest) -> set[str]:
    return {e.value for e in at.error}


def with_ip(monkeypatch, address: str) -> None:
    """Pretend the browser connects from `address` (st.context.ip_address is None for localhost)."""
    monkeypatch.setattr(ContextProxy, "ip_address", property(lambda self: address))


@pytest.fixture
def quick_backoff(settings_env):
    # The delay's growth is tested in tests/core/accounts/test_auth.py; pages only need it short.
    settings_env.setenv("LOGIN_DELAY_MAX_SECONDS", "0.2")
    reset_settings_cache()


def test_every_sign_in_failure_reads_the_same_and_a_stranger_cannot_lock_the_owner_out(dashboard, users,
                                                                                       quick_backoff):  # fmt: skip
    at = log_in(dashboard(), "nobody-here", "whatever it is")
    seen = errors(at)
    for _ in range(12):  # a stranger guessing tina's password, well past the attempts answered at once
        at = log_in(at, "tina", "not her password")
        seen |= errors(at)
    assert seen == {auth.INVALID_CREDENTIALS}  # slowed answers included: nothing tells a name exists
    assert titles(at) == ["Tradistry Broker Sync"]
    started = time.monotonic()
    owner = log_in(dashboard(), "tina", PASSWORDS["tina"])  # the owner, a moment later
    assert titles(owner) == ["Connections"]
    assert time.monotonic() - started < 10


def test_a_client_that_keeps_failing_is_refused_while_others_still_sign_in(dashboard, users, quick_backoff,
                                                                            settings_env, monkeypatch):  # fmt: skip
    settings_env.setenv("LOGIN_CLIENT_MAX_FAILURES", "3")
    reset_settings_cache()
    with_ip(monkeypatch, "203.0.113.7")
    at = dashboard()
    for name in ("tina", "sam", "nobody-here"):
        at = log_in(at, name, "a wrong guess")
    at = log_in(at, "tina", PASSWORDS["tina"])  # even the right password, from the guessing client
    assert titles(at) == ["Tradistry Broker Sync"] and errors(at) == {auth.INVALID_CREDENTIALS}
    with_ip(monkeypatch, "198.51.100.2")
    assert titles(log_in(dashboard(), "tina", PASSWORDS["tina"])) == ["Connections"]


def test_log_out_ends_this_browser_only_and_sign_out_everywhere_ends_all(dashboard, db, users):
    at = log_in(dashboard(), "tina", PASSWORDS["tina"])
    token = session_cookie.codes.redeem(at.session_state["auth_cookie_cmd"]["code"]).token
    same_browser = dashboard()  # another tab of this browser: the same sign-in
    same_browser.session_state["auth"] = dict(at.session_state["auth"])
    same_browser.run()
    other_browser = dashboard("tina")
    at.button(key="logout_button").click().run()
    assert titles(at) == ["Tradistry Broker Sync"]
    assert "You have logged out." in texts(at)
    cmd = at.session_state["auth_cookie_cmd"]
    assert cmd["op"] == "delete" and session_cookie.codes.redeem(cmd["code"]).op == "clear"
    assert auth.verify_session_token(db, token) is None  # a copy of this browser's cookie is dead too
    same_browser.run()
    assert titles(same_browser) == ["Tradistry Broker Sync"]
    other_browser.run()
    assert titles(other_browser) == ["Connections"]  # still signed in elsewhere
    assert auth.session_epoch(db, "tina") == 0

    at = log_in(at, "tina", PASSWORDS["tina"])
    at.button(key="logout_everywhere_button").click().run()
    assert titles(at) == ["Tradistry Broker Sync"] and "signed out everywhere" in texts(at)
    assert auth.session_epoch(db, "tina") == 1
    other_browser.run()
    assert titles(other_browser) == ["Tradistry Broker Sync"]
    assert "signed out" in texts(other_browser)


def test_changing_the_password_on_the_profile_page_ends_every_other_session_but_this_one(dashboard, db, users):
    other_browser = dashboard("tina")
    at = dashboard("tina", page="my_profile.py")
    assert titles(at) == ["Profile"]
    at.text_input(key="pw_current").input(PASSWORDS["tina"])
    at.text_input(key="pw_new").input("a brand new secret")
    at.text_input(key="pw_repeat").input("a brand new secret")
    at.button(key="pw_submit").click().run()
    assert not at.exception
    assert titles(at) == ["Profile"] and "Every other session of this account was signed out" in texts(at)
    at.run()
    assert titles(at) == ["Profile"]  # this session carries the new epoch
    other_browser.run()
    assert titles(other_browser) == ["Tradistry Broker Sync"]
    db.expire_all()
    assert auth.authenticate(db, "tina", "a brand new secret").ok


def test_the_profile_keeps_free_text_within_its_limits_and_says_so(dashboard, db, users):
    at = dashboard("tina", page="my_profile.py")
    name, email = at.text_input(key="profile_name"), at.text_input(key="profile_email")
    # The browser stops typing at the limit (with a counter); the help says what the limit is.
    assert (name.proto.max_chars, email.proto.max_chars) == (auth.NAME_MAX_CHARS, auth.EMAIL_MAX_CHARS)
    assert f"at most {auth.NAME_MAX_CHARS} characters" in name.proto.help
    name.input("  Tina   T. ")
    email.input("tina@example.com")
    at.button(key="profile_save").click().run()
    assert not at.exception and "Profile saved." in texts(at)
    db.expire_all()
    assert (auth.get_user(db, "tina").name, auth.get_user(db, "tina").email) == ("Tina T.", "tina@example.com")
    assert "Tina T." in texts(at)  # the account menu shows the new name
    at.text_input(key="profile_email").input("not an address")
    at.button(key="profile_save").click().run()
    assert "That e-mail address does not look valid." in errors(at)


def test_the_profile_says_when_there_is_nothing_to_save_and_asks_for_empty_passwords(dashboard, db, users):
    at = dashboard("tina", page="my_profile.py")
    at.text_input(key="profile_name").input("Tina")
    at.button(key="profile_save").click().run()
    assert "Profile saved." in texts(at)
    at.text_input(key="profile_name").input(" Tina ")  # the same name once trimmed: nothing changes
    at.button(key="profile_save").click().run()
    assert [i.value for i in at.info] == ["Nothing to save: the display name and e-mail are as they were."]
    assert "Profile saved." not in texts(at)
    at.button(key="pw_submit").click().run()  # every password field empty
    assert errors(at) == {"Enter your current password and a new one."}
    assert auth.session_epoch(db, "tina") == 0


def test_signup_limits_the_free_text_fields(dashboard):
    at = dashboard()
    limits = {key: at.text_input(key=key).proto for key in ("signup_name", "signup_email")}
    assert limits["signup_name"].max_chars == auth.NAME_MAX_CHARS
    assert limits["signup_email"].max_chars == auth.EMAIL_MAX_CHARS
    assert f"at most {auth.NAME_MAX_CHARS} characters" in limits["signup_name"].help


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
