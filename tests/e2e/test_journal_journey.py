"""Issue #22: the journal in a real browser against `streamlit run app.py` in sandbox mode.

a new trader signs up → connects "Sandbox US Brokerage" through the portal → the first import completes
(the sync run's journal upkeep builds round trips and reads positions) → Journal: tiles, the P&L calendar
and equity curve drawn, a round trip selected shows its fills in order → Positions: the late-history
account (Roth IRA) is flagged with each difference explained, the other account matches.

Screenshots: test-artifacts/e2e/journal-NN-*.png.
"""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ui import VIEWPORT, settle, shot, sign_up

pytestmark = pytest.mark.e2e

BROKER = "Sandbox US Brokerage"
SYNC_TIMEOUT = 60_000


def _nav(page: Page, title: str) -> None:
    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    settle(page)


def _metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True))


def test_trader_syncs_then_reads_the_journal_and_sees_the_late_history_account_flagged(live_app, new_context):
    # A trader of its own: the demo trader must reach the trader journey with no connection.
    ctx = new_context()
    page = ctx.new_page()
    sign_up(page, live_app.base_url, f"journal-{secrets.token_hex(3)}", "journal-tests-2024")

    # Connect through the portal (one click opens it in this tab; it comes back to /callback), then follow the import.
    page.get_by_role("button", name="Connect a broker").click()
    expect(page.get_by_role("heading", name="Connect an account")).to_be_visible()
    tab = page
    tab.get_by_role("button", name=BROKER, exact=True).click()
    tab.get_by_role("button", name="Connect", exact=True).click()
    expect(tab.get_by_test_id("stAlertContentSuccess")).to_contain_text(f"{BROKER} is connected")
    settle(tab)
    tab.get_by_role("link", name="Follow the import").click()
    expect(tab.get_by_role("heading", name="Sync", exact=True)).to_be_visible()
    done = tab.get_by_test_id("stAlertContentSuccess").filter(has_text=re.compile(r"Completed: .*fetched \([1-9]"))
    expect(done.first).to_be_visible(timeout=SYNC_TIMEOUT)
    expect(tab.get_by_test_id("stProgress")).to_have_count(0, timeout=SYNC_TIMEOUT)
    shot(tab, "journal-01-synced")

    # Journal: tiles, the calendar and the equity curve.
    _nav(tab, "Journal")
    expect(_metric(tab, "Net P&L")).to_be_visible()
    expect(_metric(tab, "Closed trades")).to_contain_text(re.compile(r"[1-9]"))
    expect(tab.get_by_role("heading", name="P&L calendar")).to_be_visible()
    charts = tab.get_by_test_id("stPlotlyChart")
    expect(charts).to_have_count(2)
    expect(charts.first.locator(".main-svg").first).to_be_visible()
    expect(charts.first).to_contain_text("Daily net P&L")
    expect(tab.get_by_text(re.compile(r"\d+ trading day\(s\): \d+ green, \d+ red"))).to_be_visible()
    shot(tab, "journal-02-journal")
    # On a phone the calendar's days stay readable (Plotly shrank them to 4 px before their size was fixed).
    tab.set_viewport_size({"width": 390, "height": 844})
    svg = charts.first.locator(".main-svg").first
    tab.wait_for_function("svg => svg.getBoundingClientRect().width <= 390", arg=svg.element_handle())
    sizes = charts.first.locator("text").evaluate_all(
        "ts => ts.filter(t => /^\\d/.test(t.textContent)).map(t => parseFloat(getComputedStyle(t).fontSize))"
    )
    assert sizes and min(sizes) >= 10, sizes
    tab.set_viewport_size(VIEWPORT)
    settle(tab)

    # Select the first round trip (the grid's row-selection cell) and see its fills in order.
    grid = tab.get_by_test_id("stDataFrame").last  # the round trips (the breakdown tabs' grids come first)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    tab.mouse.click(box["x"] + 14, box["y"] + 35 + 17)  # the selection checkbox of the first data row
    expect(tab.get_by_text(re.compile(r"^Fills of "))).to_be_visible(timeout=15_000)
    settle(tab)
    expect(tab.get_by_test_id("stDataFrame")).to_have_count(5)  # three breakdowns, the trips, the fills
    expect(tab.get_by_test_id("stException")).to_have_count(0)
    shot(tab, "journal-03-trip-fills")

    # Positions: the late-history account is flagged with the difference in words.
    _nav(tab, "Positions")
    expect(tab.get_by_role("heading", name=re.compile("Roth IRA"))).to_be_visible()
    warnings = tab.get_by_test_id("stAlertContentWarning").filter(has_text="the imported history does not explain")
    expect(warnings).to_have_count(1)  # only the late-history account
    expect(tab.get_by_text(re.compile("with no purchase in the imported history")).first).to_be_visible()
    expect(tab.get_by_text(re.compile(r"Broker positions read .* \((just now|\d+ \w+ ago)\)\.$")).first).to_be_visible()
    expect(tab.get_by_test_id("stAlertContentSuccess").filter(has_text="explains every position")).to_have_count(1)
    shot(tab, "journal-04-positions")
