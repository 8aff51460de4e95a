"""Issue #23: a staff member in a real browser finds a failing connection on Operations, opens it, reads its
timeline, retries, and sees the retry complete and the failure marked "superseded".

Setup, as an operator would (`python -m core …` against the live app) with the emulator's webhooks off, so
the app learns of the broker's state only through its own syncs: trader erin connects; a first sync
completes; the broker login then lapses and a second sync fails ("needs to be reconnected"); the login is
fixed at the broker, which the app has not seen yet. The staff retry's own reconcile finds it fixed.
Afterwards the connection is deleted at the emulator (webhooks on again), so other e2e tests see no trace.

Screenshots: test-artifacts/e2e/S*-*.png.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from core.accounts.auth import DEMO_USERS
from tests.e2e.ui import log_in, settle, shot

pytestmark = pytest.mark.e2e

CREDENTIALS = {role: (user, password) for user, password, role in DEMO_USERS}
TRADER, TRADER_PASSWORD = "erin-e2e", "erin-trades-2024"
BROKER = "Sandbox US Brokerage"


def _cli(live_app, *args: str, stdin: str | None = None) -> str:
    result = live_app.cli(*args, stdin=stdin)
    return result.stdout + result.stderr


def _failing_connection(live_app) -> tuple[str, int, int]:
    """erin's connection with a completed run and then a failed one; returns (authorization id, failed run, completed run)."""
    out = _cli(live_app, "users", "add", TRADER, "--role", "trader", "--password-stdin", stdin=TRADER_PASSWORD + "\n")
    assert "created trader" in out, out
    known = set(live_app.sandbox_get("users"))
    connect = live_app.cli("connect", TRADER)  # registers erin at SnapTrade (the portal link itself is not used)
    assert connect.returncode == 0, connect.stderr
    [snaptrade_user] = set(live_app.sandbox_get("users")) - known
    auth_id = live_app.sandbox_post("create_connection", user_id=snaptrade_user, broker="SANDBOX_US")
    first = live_app.cli("sync", TRADER)
    assert first.returncode == 0, first.stdout + first.stderr
    completed = int(re.search(r"run (\d+): completed", first.stdout).group(1))
    live_app.sandbox_post("disable_connection", auth_id=auth_id, reason="Brokerage login expired (staff e2e)")
    second = live_app.cli("sync", TRADER)
    failed = int(re.search(r"run (\d+): failed", second.stdout).group(1))
    assert "needs to be reconnected" in second.stdout, second.stdout
    live_app.sandbox_post("fix_connection", auth_id=auth_id)  # fixed at the broker; the app has not looked yet
    return auth_id, failed, completed


def _grid_row(page: Page, text: str):
    return page.get_by_test_id("stDataFrame").locator('tr[role="row"]').filter(has_text=text)


def _tab(page: Page, label: re.Pattern) -> None:
    page.get_by_role("tab", name=label).click()
    settle(page)


def test_staff_open_the_failing_connection_retry_and_see_the_failure_superseded(live_app, new_context):
    webhook_url = live_app.base_url + "/api/webhooks/snaptrade"
    live_app.sandbox_post("set_webhook_url", url=None)
    auth_id = None
    try:
        auth_id, failed, completed = _failing_connection(live_app)

        # 1. Staff signs in and finds the failed run on Operations.
        staff, staff_password = CREDENTIALS["staff"]
        page = new_context().new_page()
        page.goto(live_app.base_url + "/")
        log_in(page, staff, staff_password)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Operations", exact=True).click()
        expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible()
        settle(page)
        runs_tab = page.get_by_role("tab", name=re.compile(r"^Runs \(\d+\)$"))
        runs_before = int(re.search(r"\d+", runs_tab.inner_text()).group())
        _tab(page, re.compile(r"^Runs \(\d+\)$"))
        expect(_grid_row(page, TRADER).filter(has_text="Failed")).to_have_count(1)
        box = page.get_by_role("combobox", name="Run")
        box.click()
        page.get_by_role("option", name=re.compile(rf"^#{failed} · Failed · {TRADER}$")).click()
        settle(page)
        shot(page, "S1-operations-failed-run")

        # 2. It opens the connection: one timeline, newest first.
        page.get_by_role("link", name=re.compile(r"Open connection #\d+: timeline and actions")).last.click()
        heading = page.get_by_role("heading", name=re.compile(rf"^Connection #\d+ · {BROKER}$"))
        expect(heading).to_be_visible()
        settle(page)
        expect(_grid_row(page, f"Sync run #{failed} · Sync now · Failed")).to_have_count(1)
        # The CLI's sync may have joined the run the app's scheduler queued for the new connection first: that
        # run is labelled Scheduled. Either way it is the completed run the CLI reported.
        first_run = re.compile(rf"Sync run #{completed} · (Sync now|Scheduled) · Completed")
        expect(_grid_row(page, first_run)).to_have_count(1)
        expect(_grid_row(page, "State · Active → Needs reconnect")).to_have_count(1)
        expect(page.get_by_text("the brokerage login expired or was revoked").first).to_be_visible()  # the "Why"
        shot(page, "S2-connection-timeline")

        # 3. Retry, confirmed.
        page.get_by_role("button", name="Retry sync").click()
        settle(page)
        expect(
            page.get_by_text(re.compile(rf"Retry the sync of {BROKER} of {TRADER}\? Run #{failed} failed"))
        ).to_be_visible()
        page.get_by_role("button", name="Confirm").click()
        settle(page)
        done = page.get_by_test_id("stAlertContentSuccess").filter(has_text=f"Retry of run #{failed} queued as run #")
        expect(done).to_be_visible()
        retry = int(re.search(r"queued as run #(\d+)", done.inner_text()).group(1))
        shot(page, "S3-retry-queued")

        # 4. The worker runs it; the failure now reads "superseded".
        superseded = _grid_row(page, f"Sync run #{failed} · Sync now · Failed · superseded by #{retry}")
        deadline = time.monotonic() + 60
        while superseded.count() == 0:
            assert time.monotonic() < deadline, "the retry did not complete within 60 s"
            page.get_by_role("button", name="Refresh").click()
            settle(page)
        expect(
            _grid_row(page, re.compile(rf"Sync run #{retry} · Sync now, asked by {staff} · Completed"))
        ).to_have_count(1)
        expect(_grid_row(page, "State · Needs reconnect → Active")).to_have_count(1)
        expect(_grid_row(page, f"Staff · Retry sync by {staff} · Done")).to_have_count(1)
        expect(page.get_by_test_id("stMetric").filter(has_text="Runs needing a person")).to_contain_text("0")
        shot(page, "S4-retry-completed-failure-superseded")

        # 5. Back on Operations the failure no longer asks for a person.
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Operations", exact=True).click()
        expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible()
        settle(page)
        expect(page.get_by_role("tab", name=f"Runs ({runs_before - 1})")).to_be_visible()
        _tab(page, re.compile(r"^Audit trail$"))
        expect(_grid_row(page, "Retry sync").filter(has_text=staff)).to_have_count(1)
        shot(page, "S5-operations-after-retry")
        assert not page.context.page_errors, page.context.page_errors
    finally:
        live_app.sandbox_post("set_webhook_url", url=webhook_url)
        if auth_id is not None:  # leave no active connection behind for the other e2e tests
            live_app.sandbox_post("delete_connection", auth_id=auth_id)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                d["payload"]["eventType"] == "CONNECTION_DELETED" and d["delivered"]
                for d in live_app.sandbox_get("webhook_deliveries")
            ):
                time.sleep(0.25)
