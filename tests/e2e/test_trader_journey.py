"""Issue #5: the whole trader journey in a real browser against `streamlit run app.py` in sandbox mode.

demo trader signs in → connects "Sandbox US Brokerage" through the SnapTrade portal (one click, same tab) → back on
/callback, connected → Sync page: "Sync now" (full re-import) with a live progress bar until the completed
summary, whose count matches the emulator's ground truth → Transactions: the count matches, filter by a
symbol, export CSV and check its rows → the emulator disables the connection (CONNECTION_BROKEN webhook) →
demo staff, in a fresh browser, sees it on Operations → the trader typing /operations gets nothing of it.

Screenshots of every step: test-artifacts/e2e/NN-*.png.
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from core.accounts.auth import DEMO_USERS
from tests.e2e.ui import ARTIFACTS, choose, log_in, settle, shot

pytestmark = pytest.mark.e2e

BROKER = "Sandbox US Brokerage"
BROKER_SLUG = "SANDBOX_US"
SYNC_TIMEOUT = 60_000
# Each emulator request is slowed during the watched sync, so its phases stay on screen for a few polls
# of the page (st.fragment(run_every="1s")); without it a 900-row import ends within one poll.
SYNC_LATENCY_MS = 300

CREDENTIALS = {role: (user, password) for user, password, role in DEMO_USERS}

# Records every progress bar the page shows (text and value), however briefly.
WATCH_PROGRESS = """() => {
  window.__progress = [];
  const record = () => document.querySelectorAll('[data-testid="stProgress"]').forEach(el => {
    const bar = el.querySelector('[role="progressbar"]');
    const entry = {text: el.innerText.trim(), value: bar ? Number(bar.getAttribute('aria-valuenow')) : null};
    const last = window.__progress[window.__progress.length - 1];
    if (!last || last.text !== entry.text || last.value !== entry.value) window.__progress.push(entry);
  });
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
  record();
}"""


def _symbol(activity: dict[str, Any]) -> str | None:
    """The ticker an activity belongs to as SnapTrade serves it (an option's is its underlying's)."""
    option = activity.get("option_symbol")
    if isinstance(option, dict):
        underlying = option.get("underlying_symbol")
        return underlying.get("symbol") if isinstance(underlying, dict) else underlying
    symbol = activity.get("symbol")
    return symbol.get("symbol") if isinstance(symbol, dict) else symbol


def _metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True))


def _nav(page: Page, title: str) -> None:
    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    settle(page)


def _wait_for_failing_connection(live_app, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = live_app.health()
        if health["connections"]["failing"] >= 1 or time.monotonic() > deadline:
            return health
        time.sleep(0.25)


def _broken_deliveries(live_app, timeout: float = 10.0) -> list[dict]:
    """The emulator's CONNECTION_BROKEN deliveries once the last was attempted: it records the app's answer after
    the response returns, and the app marks the connection failing before it answers (a failure seen once)."""
    deadline = time.monotonic() + timeout
    while True:
        deliveries = [d for d in live_app.sandbox_get("webhook_deliveries")
                      if d["payload"]["eventType"] == "CONNECTION_BROKEN"]  # fmt: skip
        if deliveries and deliveries[-1]["attempts"] or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.1)


def test_trader_connects_syncs_filters_exports_and_staff_sees_the_broken_connection(live_app, new_context):
    base = live_app.base_url
    trader, trader_password = CREDENTIALS["trader"]
    staff, staff_password = CREDENTIALS["staff"]

    # 1. Sign in as the demo trader (the login page lists the demo logins in sandbox mode).
    trader_ctx = new_context()
    page = trader_ctx.new_page()
    page.goto(base + "/")
    demo_table = page.get_by_test_id("stTable")
    expect(demo_table).to_contain_text(trader_password)
    expect(demo_table).to_contain_text(staff)
    shot(page, "01-login")
    log_in(page, trader, trader_password)
    expect(page.get_by_role("heading", name="Connections", exact=True)).to_be_visible()
    settle(page)
    expect(page.get_by_text("No connection yet.")).to_be_visible()
    shot(page, "02-connections-empty")

    # 2. Connect a broker: one click opens the SnapTrade portal in this tab.
    visited: list[str] = []
    page.on("framenavigated", lambda frame: visited.append(frame.url) if frame == page.main_frame else None)
    page.get_by_role("button", name="Connect a broker").click()
    portal = page
    expect(portal.get_by_role("heading", name="Connect an account")).to_be_visible()
    assert portal.url.startswith(f"{live_app.sandbox_url}/__portal__/"), portal.url
    shot(portal, "04-portal-brokerages")
    portal.get_by_role("button", name=BROKER, exact=True).click()
    expect(portal.get_by_role("heading", name=BROKER)).to_be_visible()
    shot(portal, "05-portal-connect")
    portal.get_by_role("button", name="Connect", exact=True).click()

    # 3. Back on the app's /callback: the user is recognised by cookie and the connection confirmed.
    tab = page  # the portal sent this tab back to the app
    expect(tab.get_by_role("heading", name="Back from your broker")).to_be_visible()
    success = tab.get_by_test_id("stAlertContentSuccess")
    expect(success).to_contain_text(f"{BROKER} is connected")
    callbacks = [u for u in visited if u.startswith(f"{base}/callback?")]
    assert callbacks, f"the portal never redirected to {base}/callback?…; visited: {visited}"
    query = parse_qs(urlsplit(callbacks[0]).query)
    assert query["status"] == ["SUCCESS"], callbacks[0]
    connection_id = query["connection_id"][0]
    settle(tab)
    shot(tab, "06-callback-connected")

    sandbox_user = next(u for u in live_app.sandbox_get("users")
                        if any(c["id"] == connection_id for c in live_app.sandbox_get("connections", user_id=u)))  # fmt: skip
    connection = next(c for c in live_app.sandbox_get("connections", user_id=sandbox_user) if c["id"] == connection_id)
    assert connection["broker"] == BROKER_SLUG and not connection["disabled"]
    truth = [a for rows in live_app.sandbox_get("ground_truth", user_id=sandbox_user).values() for a in rows]
    assert truth, "the emulator serves no history for the new connection"

    # 4. Sync page: the first import (queued by the callback) finishes with every row of the emulator.
    tab.get_by_role("link", name="Follow the import").click()
    expect(tab.get_by_role("heading", name="Sync", exact=True)).to_be_visible()
    summaries = tab.get_by_test_id("stAlertContentSuccess").filter(has_text="Completed:")
    first_import = summaries.filter(has_text=re.compile(r"fetched \([1-9][\d,]* new"))
    expect(first_import.first).to_be_visible(timeout=SYNC_TIMEOUT)
    expect(tab.get_by_test_id("stProgress")).to_have_count(0, timeout=SYNC_TIMEOUT)  # nothing else running
    settle(tab)
    expect(summaries).to_have_count(1)
    expect(summaries).to_contain_text(f"Completed: {len(truth):,} transactions fetched ({len(truth):,} new, 0 updated, "
                                      "0 unchanged, 0 skipped)")  # fmt: skip
    shot(tab, "07-sync-first-import")

    # 5. "Sync now" (whole history): watch the progress bar until the completed summary.
    tab.get_by_text("Re-read the whole history").click()
    settle(tab)
    expect(tab.get_by_role("switch", name="Re-read the whole history")).to_be_checked()
    live_app.sandbox_post("set_faults", latency_ms=SYNC_LATENCY_MS)
    try:
        tab.evaluate(WATCH_PROGRESS)
        tab.get_by_role("button", name="Sync now").click()
        expect(tab.get_by_text("Sync queued for 1 connection")).to_be_visible()
        bars = tab.get_by_test_id("stProgress")
        expect(bars.first).to_be_visible()
        reimported = summaries.filter(has_text=re.compile(r"\(0 new, 0 updated, [1-9][\d,]* unchanged"))
        running_bar = bars.filter(has_not_text="Waiting for the worker")
        expect(running_bar.or_(reimported).first).to_be_visible(timeout=SYNC_TIMEOUT)
        shot(tab, "08-sync-progress")  # normally mid-sync; the bars seen are asserted below
        expect(bars).to_have_count(0, timeout=SYNC_TIMEOUT)
    finally:
        live_app.sandbox_post("set_faults")  # no arguments: every fault off
    settle(tab)
    # Only the new run is summarised now, and it re-read exactly the emulator's rows.
    expect(summaries).to_have_count(1)
    expect(summaries).to_contain_text(f"Completed: {len(truth):,} transactions fetched (0 new, 0 updated, "
                                      f"{len(truth):,} unchanged, 0 skipped)")  # fmt: skip
    seen = tab.evaluate("window.__progress")
    assert seen, "no progress bar was ever shown for the sync"
    running = [p["text"] for p in seen if not p["text"].startswith("Waiting")]
    assert running, f"the progress bar never showed a running phase: {seen}"
    shot(tab, "09-sync-completed")

    # 6. Transactions: the count shown is the emulator's.
    _nav(tab, "Transactions")
    expect(_metric(tab, "Transactions")).to_contain_text(f"{len(truth):,}")
    expect(_metric(tab, "Fees · USD")).to_contain_text("USD")  # fees beside the net amount
    grid = tab.get_by_test_id("stDataFrame").first
    first_row = grid.locator('tr[role="row"]').nth(1)
    expect(first_row).to_contain_text(re.compile(r"••••\d{4}"))  # short account label, masked as on Connections
    expect(first_row).not_to_contain_text(f"{BROKER} · ")
    shot(tab, "10-transactions")

    by_symbol = Counter(s for s in map(_symbol, truth) if s)
    box = tab.get_by_role("combobox", name="Symbol")
    box.click()
    offered = tab.get_by_role("option").all_inner_texts()
    box.press("Escape")
    assert set(offered) - {"All symbols"} == set(by_symbol), offered
    symbol, expected = by_symbol.most_common(1)[0]
    choose(tab, "Symbol", symbol)
    expect(_metric(tab, "Transactions")).to_contain_text(f"{expected:,}")
    expect(tab.get_by_text(re.compile(rf"^Rows 1–\d+ of {expected:,}$"))).to_be_visible()
    shot(tab, "11-transactions-filtered")

    # 7. Export CSV: the filtered rows, all of that symbol.
    with tab.expect_download() as download_info:
        tab.get_by_role("button", name="Export CSV").click()
    download = download_info.value
    assert re.fullmatch(r"transactions-\d{4}-\d{2}-\d{2}\.csv", download.suggested_filename), (
        download.suggested_filename
    )
    exported = ARTIFACTS / f"export-{symbol}.csv"
    download.save_as(exported)
    with open(exported, newline="", encoding="utf-8-sig") as f:  # the byte-order mark Excel needs
        rows = list(csv.DictReader(f))
    assert len(rows) == expected, f"CSV has {len(rows)} rows, the page shows {expected}"
    assert {r["symbol"] for r in rows} == {symbol}
    assert len({r["id"] for r in rows}) == len(rows), "duplicate rows in the export"

    # 7b. Analytics charts the synced history (every chart drawn, no error box).
    _nav(tab, "Analytics")
    expect(tab.get_by_test_id("stPlotlyChart")).to_have_count(7)
    expect(tab.get_by_test_id("stException")).to_have_count(0)
    shot(tab, "11b-analytics")

    # 8. The emulator disables the connection; its CONNECTION_BROKEN webhook tells the app.
    # (Counted against the app's other traders: earlier browser tests may have left connections active.)
    active_before = live_app.health()["connections"]["active"]
    assert active_before >= 1
    live_app.sandbox_post("disable_connection", auth_id=connection_id, reason="Brokerage login expired (e2e)")
    health = _wait_for_failing_connection(live_app)
    deliveries = _broken_deliveries(live_app)
    assert deliveries and deliveries[-1]["last_status"] == 200, deliveries
    assert health["connections"] == {"active": active_before - 1, "failing": 1}, health
    _nav(tab, "Connections")
    expect(tab.get_by_text("Needs reconnect since")).to_be_visible()
    expect(tab.get_by_role("button", name="Reconnect")).to_be_visible()
    expect(tab.get_by_text("paused until reconnected")).to_be_visible()  # no misleading next-sync time
    shot(tab, "12-trader-needs-reconnect")

    # 9. Staff, in a fresh browser context, sees the connection on the Operations page.
    staff_ctx = new_context()
    staff_page = staff_ctx.new_page()
    staff_page.goto(base + "/")
    log_in(staff_page, staff, staff_password)
    expect(staff_page.get_by_role("heading", name="Connections", exact=True)).to_be_visible()
    _nav(staff_page, "Operations")
    expect(staff_page.get_by_role("tab", name="Connections (1)")).to_be_visible()
    expect(_metric(staff_page, "Need attention")).to_contain_text("1")
    row = staff_page.get_by_test_id("stDataFrame").first.locator('tr[role="row"]').filter(has_text=trader)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(BROKER)
    expect(row).to_contain_text("Needs reconnect")
    expect(row).not_to_contain_text("None")  # a missing value is an empty cell
    shot(staff_page, "13-staff-operations")

    # 10. The trader typing /operations gets nothing of it.
    page.goto(base + "/operations")
    # Streamlit may say "Page not found" or route straight to the trader's default page; either way the
    # app must settle on something that is not Operations.
    settled = (page.get_by_text("Page not found").or_(page.get_by_text("Access denied"))
               .or_(page.get_by_role("heading", name="Connections")))  # fmt: skip
    expect(settled.first).to_be_visible()
    settle(page)
    shot(page, "14-trader-types-operations")
    main = page.get_by_test_id("stMain")
    expect(page.get_by_role("heading", name="Operations")).to_have_count(0)
    expect(main.get_by_text("Need attention")).to_have_count(0)
    expect(main.get_by_role("tab", name=re.compile(r"^Connections \("))).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="Operations")).to_have_count(0)

    errors = trader_ctx.page_errors + staff_ctx.page_errors
    assert not errors, f"JavaScript errors in the app's pages: {errors}"
