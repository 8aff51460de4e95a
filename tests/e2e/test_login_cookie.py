"""The re-login cookie in Chromium against the live app: set by the server (HttpOnly, SameSite=Strict) in
exchange for a one-time code sent in a request body, invisible to `document.cookie`, kept across a reload,
useless when replayed, and cleared by the server on logout."""

from __future__ import annotations

import json

import pytest
import requests
from playwright.sync_api import expect

from core.accounts.auth import DEMO_USERS
from tests.e2e.ui import AUTH_COOKIE, log_in, settle

pytestmark = pytest.mark.e2e
ROUTE_PATH = "/api/session/cookie"  # core.accounts.session_cookie.ROUTE_PATH, spelled out: the browser's contract


def _auth_cookie(ctx) -> dict | None:
    return next((c for c in ctx.cookies() if c["name"] == AUTH_COOKIE), None)


def test_the_login_cookie_is_httponly_strict_survives_a_reload_and_logout_clears_it(live_app, new_context):
    username, password = next((u, p) for u, p, role in DEMO_USERS if role == "trader")
    ctx = new_context()
    page = ctx.new_page()
    exchanges = []
    page.on("request", lambda r: exchanges.append(r) if r.url.endswith(ROUTE_PATH) else None)
    page.goto(live_app.base_url + "/")
    log_in(page, username, password)

    cookie = _auth_cookie(ctx)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["secure"] is False  # served over plain http here; https adds Secure (tests/core)
    assert AUTH_COOKIE not in page.evaluate("document.cookie")

    # The code went in a POST body (no URL, so no access log or proxy keeps it) and works only once.
    (sent,) = exchanges
    code = json.loads(sent.post_data)["code"]
    assert sent.method == "POST" and code not in sent.url
    replay = requests.post(live_app.base_url + ROUTE_PATH, json={"code": code}, timeout=10)
    assert replay.status_code == 400 and "set-cookie" not in replay.headers
    assert code not in live_app.log_path.read_text(errors="replace")
    assert cookie["value"] not in live_app.log_path.read_text(errors="replace")

    # A reload is a new Streamlit session: the cookie, sent with the websocket handshake, signs it in.
    page.reload()
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
    expect(page.get_by_role("heading", name="Connections", exact=True)).to_be_visible()
    assert AUTH_COOKIE not in page.evaluate("document.cookie")

    # Logout: the server clears the cookie the same way; a reload then shows the login form.
    settle(page)
    page.get_by_test_id("stSidebar").get_by_role("button", name="Demo trader").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    for _ in range(100):
        if _auth_cookie(ctx) is None:
            break
        page.wait_for_timeout(50)
    assert _auth_cookie(ctx) is None
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert not ctx.page_errors
