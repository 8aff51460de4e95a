"""The Profile page in Chromium: a display name is shown as typed, whatever Markdown it looks like."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.ui import settle, sign_up

pytestmark = pytest.mark.e2e
NAME = "Eve_Smith_ [help](https://evil.example) **x** :red[y] <b>b</b> #1"


def test_a_display_name_that_looks_like_markdown_is_shown_as_typed(live_app, new_context):
    page = new_context().new_page()
    sign_up(page, live_app.base_url, "markdown-eve", "a long enough password 1")
    page.goto(live_app.base_url + "/profile")
    page.get_by_role("textbox", name="Display name").fill(NAME)
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Profile saved.")).to_be_visible()
    settle(page)

    menu = page.get_by_test_id("stSidebar").get_by_role("button", name=NAME, exact=True)  # the menu's label
    expect(menu).to_be_visible()
    menu.click()
    body = page.get_by_test_id("stPopoverBody")
    expect(body.get_by_test_id("stText")).to_have_text(NAME)
    expect(body.get_by_test_id("stCaptionContainer")).to_have_text("markdown-eve · trader")
    assert page.locator('a[href*="evil.example"]').count() == 0
    assert body.locator("strong, b, em, [class*=Colored]").count() == 0
