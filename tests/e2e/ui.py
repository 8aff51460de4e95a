"""Small Playwright helpers for a Streamlit page: wait for a rerun to finish, sign in, pick a selectbox
option, and take a real full-page screenshot (Streamlit scrolls inside its own container, so the
viewport is stretched to the content first)."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page, expect

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
VIEWPORT = {"width": 1400, "height": 1000}
AUTH_COOKIE = Settings.model_fields["auth_cookie_name"].default  # the e2e server gets no AUTH_COOKIE_NAME
APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def settle(page: Page, timeout: float = 30_000) -> None:
    """Wait until the script run triggered by the last interaction is over and no stale element is left."""
    page.wait_for_timeout(150)  # a click's rerun request reaches the server asynchronously
    expect(page.locator(APP_IDLE)).to_have_count(1, timeout=timeout)
    expect(page.locator('[data-testid="stElementContainer"][data-stale="true"]')).to_have_count(0, timeout=timeout)


def shot(page: Page, name: str) -> Path:
    """Screenshot of the whole page (all of Streamlit's main area, not only the viewport)."""
    path = ARTIFACTS / f"{name}.png"
    height = page.evaluate(
        """() => Math.max(document.documentElement.scrollHeight,
             ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"],'
                + '[data-testid="stSidebarContent"]')].map(e => e.scrollHeight))"""
    )
    stretched = height > VIEWPORT["height"]
    if stretched:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, 6000)})
    page.wait_for_timeout(300)  # data grids draw their canvas a moment after the run (and after a resize)
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        if stretched:
            page.set_viewport_size(VIEWPORT)
    return path


def log_in(page: Page, username: str, password: str) -> None:
    """Fill the login form of the page shown (signed-out visitors see it at every member address), and
    return once the session is signed in and its re-login cookie written.

    The cookie is set by the server when a small component trades the sign-in's one-time code for it, then
    reruns the script (Playwright's context cookies include HttpOnly ones); a navigation clicked while
    that rerun is pending can be lost, so the helper waits for it like a (slower) human would."""
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Log in"))
    expect(form).to_be_visible(timeout=30_000)
    form.get_by_role("textbox", name="Username").fill(username)
    form.get_by_role("textbox", name="Password").fill(password)
    form.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible(timeout=30_000)  # members' navigation: signed in
    deadline = time.monotonic() + 30
    while not any(c["name"] == AUTH_COOKIE for c in page.context.cookies()):
        assert time.monotonic() < deadline, f"the {AUTH_COOKIE} cookie was never written after signing in"
        page.wait_for_timeout(50)
    settle(page)


def choose(page: Page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)
    expect(page.get_by_role("combobox", name=label)).to_have_value(option)


def sign_up(page: Page, base: str, username: str, password: str) -> None:
    """A new trader through the Create account tab, signed in with the re-login cookie set."""
    page.goto(base + "/")
    page.get_by_role("tab", name="Create account").click()
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Create account"))
    form.get_by_role("textbox", name="Username").fill(username)
    form.get_by_role("textbox", name="Password", exact=True).fill(password)
    form.get_by_role("textbox", name="Repeat password").fill(password)
    form.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Connections", exact=True)).to_be_visible()
    deadline = time.monotonic() + 30
    while not page.context.cookies():  # the re-login cookie, which the portal's return needs
        assert time.monotonic() < deadline, "no login cookie after signing up"
        page.wait_for_timeout(50)
    settle(page)
