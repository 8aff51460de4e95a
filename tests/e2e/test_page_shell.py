"""core/page_shell.py in Chromium: the hint script names the right backend base for an address (also behind
a path prefix), and the app opened at a page address asks the server once, with no 404 probe first."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core.auth import DEMO_USERS
from core.page_shell import hint_script
from tests.e2e.ui import log_in

PROBE = "<script>document.title=String((window.__streamlit||{}).BACKEND_BASE_URL)</script>"


@pytest.mark.parametrize(
    "url, page, preset, expected",
    [
        ("http://app.test/transactions", "transactions", "", "http://app.test/"),
        ("http://app.test/transactions/?x=1", "transactions", "", "http://app.test/"),
        ("http://app.test/tradistry/transactions", "transactions", "", "http://app.test/tradistry/"),
        # The address does not end with the page the server saw (a rewriting proxy): Streamlit probes as before.
        ("http://app.test/elsewhere", "transactions", "", "undefined"),
        # A host page that embeds Streamlit and set the hook itself keeps its value.
        ("http://app.test/transactions", "transactions",
         "<script>window.__streamlit={BACKEND_BASE_URL:'https://host.test/x/'}</script>", "https://host.test/x/"),
    ],
)  # fmt: skip
def test_the_hint_names_the_address_without_its_page(new_context, url, page, preset, expected):
    ctx = new_context()
    tab = ctx.new_page()
    html = f"<!DOCTYPE html><html><head>{preset}{hint_script(page).decode()}{PROBE}</head><body></body></html>"
    tab.route("http://app.test/**", lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    tab.goto(url)
    assert tab.title() == expected


def test_a_page_address_connects_without_a_404_probe(live_app, new_context):
    """Signed in, a trader opens /transactions directly (a bookmark, a reload): the frontend's first health
    check is the server's own, and the page renders."""
    username, password = next((u, p) for u, p, role in DEMO_USERS if role == "trader")
    ctx = new_context()
    page = ctx.new_page()
    page.goto(live_app.base_url + "/")
    log_in(page, username, password)
    asked: list[tuple[str, int]] = []
    page.on("response", lambda r: asked.append((r.url, r.status)) if "/_stcore/" in r.url else None)
    page.goto(live_app.base_url + "/transactions")
    expect(page.get_by_role("heading", name="Transactions", exact=True)).to_be_visible()
    health = [(url, status) for url, status in asked if url.endswith("/_stcore/health")]
    assert health and health[0] == (live_app.base_url + "/_stcore/health", 200), asked
    assert not [u for u, _ in asked if "/transactions/_stcore/" in u], asked
    assert not ctx.page_errors
