"""The router that runs on every rerun: page config, the login gate and the per-role navigation.

`app.py` serves this script through `st.App`. Pages are registered per role on each run, so a
trader's session has no operations page at all; staff pages still re-check the role themselves.

It lives inside `pages/` on purpose: with a `pages/` folder *next to* the entry script, Streamlit
falls back to folder-based navigation (MPA v1) until some session calls `st.navigation`, which would
let a first request open `pages/operations.py` directly, bypassing this gate. Page paths below are
therefore relative to this folder ("sync.py", not "sync.py").
"""

from __future__ import annotations

import streamlit as st

from pages import login

st.set_page_config(page_title="Tradistry Broker Sync", page_icon="🔄", layout="wide")

# The portal sends the browser back to /callback in a brand-new session: the page is registered
# for signed-out visitors too and asks them to log in (or re-identifies them by cookie) there.
CALLBACK = st.Page("callback.py", title="Back from your broker", icon="🔑",
                   url_path="callback", visibility="hidden")  # fmt: skip
CONNECTIONS = st.Page("connections.py", title="Connections", icon="🏦",
                      url_path="connections")  # fmt: skip
MEMBER_PAGES = {
    "Brokers": [
        CONNECTIONS,
        st.Page("sync.py", title="Sync", icon="🔄", url_path="sync"),
        CALLBACK,
    ],
    "Trades": [
        st.Page("transactions.py", title="Transactions", icon="🧾", url_path="transactions"),
        st.Page("analytics.py", title="Analytics", icon="📈", url_path="analytics"),
        st.Page("journal.py", title="Journal", icon="📓", url_path="journal"),
        st.Page("positions.py", title="Positions", icon="⚖️", url_path="positions"),
    ],
    "Account": [st.Page("my_profile.py", title="Profile", icon="🪪", url_path="profile")],
}
STAFF_PAGES = {
    "Staff": [
        st.Page("operations.py", title="Operations", icon="🛠️", url_path="operations"),
        # Opened from Operations rows (?id=N): one connection's timeline and actions, one trader's attempts.
        st.Page("connection_detail.py", title="Connection", icon="🔎", url_path="connection", visibility="hidden"),
        st.Page("user_detail.py", title="Trader", icon="👤", url_path="staff-user", visibility="hidden"),
    ],
}


def _home() -> None:
    # The default page is served at "/" only; redirecting keeps /connections a working address.
    st.switch_page(CONNECTIONS)


user = login.identify()
login.apply_cookie_command()

if user is None:
    # Every member address answers with the login form, so a bookmark or an expired cookie shows
    # "log in" instead of "page not found", and after login the rerun lands on the page asked for.
    member_urls = [p.url_path for pages in (*MEMBER_PAGES.values(), *STAFF_PAGES.values()) for p in pages]
    aliases = [st.Page(login.login_page, title="Log in", url_path=u, visibility="hidden")
               for u in member_urls if u != CALLBACK.url_path]  # fmt: skip
    login_page = st.Page(login.login_page, title="Log in", icon="🔑", url_path="login", default=True)
    page = st.navigation([login_page, CALLBACK, *aliases], position="hidden")
else:
    home = st.Page(_home, title="Home", url_path="home", default=True, visibility="hidden")
    sections = {**MEMBER_PAGES, **(STAFF_PAGES if user.role == "staff" else {})}
    sections["Brokers"] = [home, *sections["Brokers"]]
    page = st.navigation(sections)
    login.account_sidebar(user)  # after navigation: its page link needs the registered pages

page.run()
