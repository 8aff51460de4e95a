"""Sign-in for the dashboard: the login / sign-up page, the re-login cookie, the per-run session
check (a logged-out sign-in id or a bumped epoch ends the session), and the account sidebar: profile,
"Log out" (this browser) and "Sign out everywhere".

Why not streamlit-authenticator's `login()` widget: it checks the password before any back-off we
keep, locks permanently through an in-memory counter, and re-logs a browser in from a cookie that
carries only the username, so logout cannot revoke a copied cookie. We keep its model (HS256 JWT
cookie, read server-side from `st.context.cookies`, SameSite=Strict) but issue the token ourselves
with the user's session epoch in it (`core.accounts.auth.issue_session_token`), so a sign-out everywhere or password change
(epoch bump) kills every copy of the cookie. The cookie is set by the server, HttpOnly, never by a
script: sign-in and logout hand the page a one-time code, and a tiny inline component trades it at
`core.accounts.session_cookie.ROUTE_PATH` for the Set-Cookie (the token itself never reaches the browser's scripts).

AppTest seam: tests sign in by calling `sign_in(core.accounts.auth.authenticate(...))` semantics directly,
i.e. seeding `st.session_state["auth"] = {"username": u, "epoch": e}`; `identify()` then re-checks
it against the database exactly as for a browser.
"""

from __future__ import annotations

import logging
import secrets
import zoneinfo

import streamlit as st

from core.accounts import auth, session_cookie
from core.settings import get_settings
from core.storage.db import session_scope
from pages.components import CURRENT_USER_KEY, current_user, plain

AUTH_KEY = "auth"  # {"username", "epoch", "sid"}: the only marker of a signed-in session
NOTICE_KEY = "auth_notice"
COOKIE_CMD_KEY = "auth_cookie_cmd"
REJECTED_COOKIE_KEY = "auth_cookie_rejected"
# The one key other pages read, through pages.components (kept in sync with the user on every run).
PUBLIC_KEYS = (CURRENT_USER_KEY,)
log = logging.getLogger("tradistry.login")

# Runs in the page itself (no iframe), so its same-origin POST receives the app's first-party cookie.
# Each code is sent once (a re-render must not replay it); the answer's status is reported back.
_COOKIE_JS = """
export default function(component) {
  const { data, setStateValue } = component;
  if (!data || !data.id) return;
  const sent = (window.__tradistryCookieCodes = window.__tradistryCookieCodes || new Set());
  if (sent.has(data.id)) return;
  sent.add(data.id);
  fetch(data.url, {method: "POST", credentials: "same-origin", cache: "no-store",
                   headers: {"Content-Type": "application/json"}, body: JSON.stringify({code: data.code})})
    .then(r => setStateValue("done", r.ok ? data.id : "failed:" + data.id))
    .catch(() => setStateValue("done", "failed:" + data.id));
}
"""
_cookie_writer = st.components.v2.component("tradistry_auth_cookie", js=_COOKIE_JS)


# --- session state ---------------------------------------------------------------------------------


def _queue_cookie(op: str, token: str = "") -> None:
    """Ask the browser to trade a fresh one-time code for the cookie being set (op "set") or cleared."""
    code = session_cookie.issue_set_code(token) if op == "set" else session_cookie.issue_clear_code()
    st.session_state[COOKIE_CMD_KEY] = {"op": op, "code": code, "id": secrets.token_hex(6)}


def apply_cookie_command() -> None:
    """Mount the code exchange until the browser reports it done (a failed one is not retried: the session
    stays signed in, only a reload would ask for the password again)."""
    cmd = st.session_state.get(COOKIE_CMD_KEY)
    if not cmd:
        return
    data = {"id": cmd["id"], "code": cmd["code"], "url": session_cookie.ROUTE_PATH}
    result = _cookie_writer(key="auth_cookie_writer", data=data, default={"done": None},
                            on_done_change=lambda: None, height=1)  # fmt: skip
    done = getattr(result, "done", None) if result is not None else None
    if done in (cmd["id"], f"failed:{cmd['id']}"):
        st.session_state.pop(COOKIE_CMD_KEY, None)
        if done != cmd["id"]:
            log.warning("the browser could not exchange its %s-cookie code", cmd["op"])


def _publish(user: auth.SessionUser) -> None:
    st.session_state[CURRENT_USER_KEY] = user


def _forget(notice: str | None = None) -> None:
    for key in (AUTH_KEY, *PUBLIC_KEYS):
        st.session_state.pop(key, None)
    if notice:
        st.session_state[NOTICE_KEY] = notice


def sign_in(result: auth.AuthResult) -> None:
    """Mark this session signed in after a successful `core.accounts.auth.authenticate` and queue the cookie."""
    assert result.ok and result.username is not None and result.session_epoch is not None
    _stamp(result.username, result.session_epoch)


def _stamp(username: str, epoch: int) -> None:
    """A new sign-in of this browser: its id goes into the session and the re-login cookie."""
    login_id = auth.new_login_id()
    st.session_state[AUTH_KEY] = {"username": username, "epoch": epoch, "sid": login_id}
    _queue_cookie("set", auth.issue_session_token(username, epoch, login_id=login_id))


def client_address() -> str:
    """Who is signing in, for the per-client failure limit: the proxy's header when one is configured
    (its first address), else the connection's address ("local" for localhost)."""
    header = get_settings().login_client_ip_header
    if header:
        forwarded = st.context.headers.get(header)
        if forwarded:
            return forwarded.split(",")[0].strip()
    return st.context.ip_address or "local"


def identify() -> auth.SessionUser | None:
    """Who is signed in, re-checked against the database on every run.

    A session whose stored epoch differs from the user's current one (logout elsewhere, password
    change) or whose account was disabled is signed out. A fresh session (reload, new tab, the
    SnapTrade redirect) is re-identified from the cookie, which must carry the current epoch.
    """
    state = st.session_state.get(AUTH_KEY)
    with session_scope() as s:
        if state:
            if auth.login_revoked(state.get("sid")):
                _forget("You have logged out.")  # in another tab of this browser
                return None
            user = auth.load_session_user(s, state["username"])
            if user is not None and user.is_active and user.session_epoch == state["epoch"]:
                _publish(user)
                return user
            _forget("You were signed out: your session was ended (sign out everywhere or a password change).")
            return None
        token = st.context.cookies.get(get_settings().auth_cookie_name)
        if isinstance(token, str) and token and st.session_state.get(REJECTED_COOKIE_KEY) != token:
            user = auth.verify_session_token(s, token)
            if user is not None:
                st.session_state[AUTH_KEY] = {"username": user.username, "epoch": user.session_epoch,
                                              "sid": user.login_id}  # fmt: skip
                _publish(user)
                return user
            # Expired or revoked: remember it so we neither re-check it nor keep deleting it every run.
            st.session_state[REJECTED_COOKIE_KEY] = token
            _queue_cookie("delete")
    _forget()
    return None


def logout() -> None:
    """Log out this browser: its sign-in ends (tabs and cookie); the user's other browsers stay signed in."""
    state = st.session_state.get(AUTH_KEY)
    if state:
        auth.revoke_login(state.get("sid"))
    _forget("You have logged out.")
    _queue_cookie("delete")


def logout_everywhere() -> None:
    """Sign out everywhere: bump the epoch (revokes every session and cookie) and delete this cookie."""
    state = st.session_state.get(AUTH_KEY)
    if state:
        with session_scope() as s:
            auth.bump_session_epoch(s, state["username"])
    _forget("You have signed out everywhere: every browser signed in to this account has to log in again.")
    _queue_cookie("delete")


def stay_signed_in(username: str, epoch: int) -> None:
    """After a password change (which bumped the epoch and so ended every session), keep this one."""
    _stamp(username, epoch)


# --- the login page --------------------------------------------------------------------------------


def _login_form() -> None:
    with st.form("login_form", enter_to_submit=True):
        username = st.text_input("Username", key="login_username", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary", key="login_submit")
    if submitted:
        if not username or not password:
            st.error("Enter your username and password.")
            return
        with session_scope() as s:
            result = auth.authenticate(s, username, password, client=client_address())
        if result.ok:
            sign_in(result)
            st.rerun()
        st.error(result.message, icon=":material/lock:")


def _signup_form() -> None:
    with st.form("signup_form"):
        username = st.text_input("Username", key="signup_username", help="3–32 letters, digits, '.', '_' or '-'.")
        name = st.text_input("Your name (optional)", key="signup_name", max_chars=auth.NAME_MAX_CHARS,
                             help=f"How the app greets you; at most {auth.NAME_MAX_CHARS} characters.")  # fmt: skip
        email = st.text_input("E-mail (optional)", key="signup_email", max_chars=auth.EMAIL_MAX_CHARS)
        password = st.text_input("Password", type="password", key="signup_password", help="At least 8 characters.")
        confirm = st.text_input("Repeat password", type="password", key="signup_confirm")
        submitted = st.form_submit_button("Create account", type="primary", key="signup_submit")
    if submitted:
        if password != confirm:
            st.error("The two passwords differ.")
            return
        try:
            with session_scope() as s:
                auth.create_user(s, username=username, password=password, email=email, name=name)
                result = auth.authenticate(s, username, password)
        except ValueError as e:
            st.error(str(e))
            return
        sign_in(result)
        st.rerun()


def _demo_logins() -> None:
    with session_scope() as s:
        demos = auth.ensure_demo_users(s)
    if not demos:
        return
    with st.container(border=True):
        st.markdown("**Sandbox mode** — no SnapTrade credentials are configured, so the app talks to the "
                    "built-in emulator. Demo logins:")  # fmt: skip
        st.table([{"Username": u, "Password": p, "Role": r} for u, p, r in demos])


def login_page(hint: str | None = None) -> None:
    """The whole page a signed-out visitor sees (also embedded by the callback page)."""
    st.title("Tradistry Broker Sync")
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.info(notice, icon=":material/info:")
    if hint:
        st.info(hint, icon=":material/link:")
    settings = get_settings()
    if settings.allow_signup:
        tab_login, tab_signup = st.tabs(["Log in", "Create account"])
        with tab_login:
            _login_form()
        with tab_signup:
            _signup_form()
    else:
        _login_form()
    if settings.sandbox_mode:
        _demo_logins()


# --- sidebar for signed-in users ---------------------------------------------------------------------

_BROWSER_TZ = "(browser time zone)"


def _save_timezone() -> None:
    choice = st.session_state.get("tz_choice")
    user = current_user()
    if user is None:
        return
    username = user.username
    with session_scope() as s:
        auth.set_user_timezone(s, username, None if choice == _BROWSER_TZ else choice)


@st.cache_data
def _zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def account_sidebar(user: auth.SessionUser) -> None:
    # An account menu rather than open controls: the time-zone picker (~600 zones) and the logout button
    # are mounted only when opened, which keeps them off every page's first paint (BENCHMARKS.md, browser).
    with st.sidebar.popover(plain(user.display_name), icon=":material/account_circle:", width="stretch",
                            help="Your account: time zone and logging out"):  # fmt: skip
        st.text(user.display_name)  # not Markdown: a typed web address would still become a link
        st.caption(f"{user.username} · {user.role}")
        options = [_BROWSER_TZ, *_zone_names()]
        current = user.timezone if user.timezone in options else _BROWSER_TZ
        browser = f"Browser ({st.context.timezone or 'UTC'})"
        st.selectbox(
            "Show times in",
            options,
            index=options.index(current),
            key="tz_choice",
            on_change=_save_timezone,
            format_func=lambda z: browser if z == _BROWSER_TZ else z,
            help="Times are stored in UTC and shown in this time zone. Saved to your account.",
        )
        st.page_link("my_profile.py", label="Profile and password", icon=":material/badge:")
        st.button("Log out", icon=":material/logout:", on_click=logout, key="logout_button", width="stretch",
                  help="Ends this browser's session; your other browsers stay signed in")  # fmt: skip
        st.button("Sign out everywhere", icon=":material/devices:", on_click=logout_everywhere,
                  key="logout_everywhere_button", width="stretch",
                  help="Ends every session of this account, in every browser")  # fmt: skip
