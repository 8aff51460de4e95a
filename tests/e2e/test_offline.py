"""Issue #24 item 10: a session never asks anything of a host but the app's own (no icon CDN, no fonts).

Records every request Chromium makes while a trader signs in and visits each member page, and while a
signed-out visitor opens the login page.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from core.accounts.auth import DEMO_USERS
from tests.e2e.ui import log_in, settle

pytestmark = pytest.mark.e2e

CREDENTIALS = {role: (user, password) for user, password, role in DEMO_USERS}
MEMBER_PAGES = ("connections", "sync", "transactions", "analytics")


def test_a_whole_session_only_talks_to_the_app(live_app, new_context):
    app_host = urlsplit(live_app.base_url).netloc
    ctx = new_context()
    requests: list[str] = []
    ctx.on("request", lambda request: requests.append(request.url))
    page = ctx.new_page()
    page.goto(live_app.base_url)
    log_in(page, *CREDENTIALS["trader"])
    for path in MEMBER_PAGES:
        page.goto(f"{live_app.base_url}/{path}")
        settle(page)
        page.wait_for_timeout(500)  # icons and favicons are fetched after the run
    assert len(requests) > 20  # the session really loaded the app's pages and assets
    elsewhere = sorted({url for url in requests if not url.startswith(("data:", "blob:"))
                        and urlsplit(url).netloc != app_host})  # fmt: skip
    assert not elsewhere, f"requests that left the app's host: {elsewhere[:10]}"
