"""Issue #24 in Chromium against `streamlit run app.py`: one click opens the portal (item 5), no number is drawn
with digits missing (item 1), the description is in view at 1400 px and the view lives in the URL (item 7),
the selection follows the transaction (item 3), and the CSV opens in Excel (item 8).

A fresh trader signs up and connects the sandbox's crypto exchange and US brokerage once for the module.
st.dataframe draws on a canvas, so its accessibility DOM holds every cell's whole text even when the canvas
cuts it; what proves the drawing is the drawing: CanvasRenderingContext2D is instrumented before the page
loads, and every cell text must lie inside the clip rectangle of the column it is drawn in.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import sqlite3
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from core.reads.export import COLUMNS
from tests.e2e.ui import VIEWPORT, settle, shot, sign_up

pytestmark = pytest.mark.e2e

PASSWORD = "view-tests-2024"
BROKERS = ("Sandbox Crypto Exchange", "Sandbox US Brokerage")

# Records each clip rectangle and each text drawn (with its alignment and measured width) on every canvas.
RECORD_DRAWING = """
(() => {
  const P = CanvasRenderingContext2D.prototype;
  const fillText = P.fillText, rect = P.rect;
  window.__drawn = [];
  P.rect = function (x, y, w, h) {
    window.__drawn.push({op: 'rect', x, y, w, h});
    return rect.call(this, x, y, w, h);
  };
  P.fillText = function (text, x, y, ...rest) {
    window.__drawn.push({op: 'text', text: String(text), x, y, align: this.textAlign,
                         width: this.measureText(String(text)).width, shift: this.getTransform().e});
    return fillText.call(this, text, x, y, ...rest);
  };
})();
"""


def _connect_in_one_click(page: Page, base: str, broker: str) -> None:
    """Issue #24 item 5: one click on "Connect a broker" opens the portal, in this tab."""
    page.goto(base + "/connections")
    settle(page)
    page.get_by_role("button", name="Connect a broker").click()
    expect(page.get_by_role("heading", name="Connect an account")).to_be_visible()  # the portal, no second click
    page.get_by_role("button", name=broker, exact=True).click()
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("heading", name="Back from your broker")).to_be_visible()
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text(f"{broker} is connected")
    settle(page)


def _imports_done(db_path, username: str) -> bool:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        statuses = [s for (s,) in db.execute(
            "SELECT r.status FROM transaction_sync_log r JOIN app_users u ON u.id = r.user_id WHERE u.username = ?",
            (username,))]  # fmt: skip
    return len(statuses) >= len(BROKERS) and all(s == "completed" for s in statuses)


@pytest.fixture(scope="module")
def viewer() -> str:
    return f"viewer-{secrets.token_hex(3)}"


def _crypto_accounts(db_path, username: str) -> str:
    """The `?account=…` query that shows only the trader's crypto-exchange accounts."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        ids = [i for (i,) in db.execute(
            "SELECT a.id FROM brokerage_accounts a JOIN brokerage_connections c ON c.id = a.connection_id"
            " JOIN app_users u ON u.id = a.user_id WHERE u.username = ? AND c.brokerage_name = ?",
            (username, BROKERS[0]))]  # fmt: skip
    assert ids, f"{username} has no {BROKERS[0]} account"
    return "?" + "&".join(f"account={i}" for i in ids)


@pytest.fixture(scope="module")
def trader(live_app, browser, viewer):
    """A trader with both sandbox brokerages imported; yields the browser storage state (its cookie)."""
    username = viewer
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    sign_up(page, live_app.base_url, username, PASSWORD)
    for broker in BROKERS:
        _connect_in_one_click(page, live_app.base_url, broker)
    deadline = time.monotonic() + 90
    while not _imports_done(live_app.data_dir / "e2e.db", username):
        assert time.monotonic() < deadline, "the first imports did not finish"
        time.sleep(0.5)
    state = ctx.storage_state()
    ctx.close()
    return state


def _open_transactions(new_context, live_app, trader, query: str = "", **context) -> Page:
    ctx = new_context(storage_state=trader, **context)
    ctx.add_init_script(RECORD_DRAWING)
    page = ctx.new_page()
    page.goto(f"{live_app.base_url}/transactions{query}")
    expect(page.get_by_role("heading", name="Transactions", exact=True)).to_be_visible()
    settle(page)
    expect(page.get_by_test_id("stDataFrame").first.locator('tr[role="row"]').nth(1)).to_be_attached()
    page.wait_for_timeout(500)  # the grid draws its canvas a moment after the run
    return page


def _grid_rows(page: Page) -> list[list[str]]:
    """Every drawn row's cells, from the grid's accessibility table (whole texts, header first)."""
    rows = page.get_by_test_id("stDataFrame").first.locator('tr[role="row"]')
    return [r.locator("th, td").all_inner_texts() for r in rows.all()]


def _cells_cut(page: Page, texts: list[str]) -> list[str]:
    """Those of `texts` drawn on the canvas beyond the clip rectangle they were drawn in (a clipped cell)."""
    return page.evaluate(
        """(texts) => {
          const cut = []; let clip = null;
          for (const e of window.__drawn) {
            if (e.op === 'rect') { clip = e; continue; }
            if (!texts.includes(e.text) || !clip) continue;
            const x = e.x + e.shift;
            const [left, right] = e.align === 'right' ? [x - e.width, x]
                                : e.align === 'center' ? [x - e.width / 2, x + e.width / 2] : [x, x + e.width];
            if (left < clip.x - 0.5 || right > clip.x + clip.w + 0.5) cut.push(`${e.text} in [${clip.x}, ${clip.x + clip.w}]`);
          }
          return cut;
        }""",
        texts,
    )


def test_a_crypto_row_is_drawn_with_every_digit(live_app, trader, viewer, new_context):
    # Only the exchange's rows: newest-first, the brokerage's rows may fill the first screen on some dates.
    page = _open_transactions(new_context, live_app, trader, _crypto_accounts(live_app.data_dir / "e2e.db", viewer))
    rows = _grid_rows(page)
    header = rows[0]
    qty = header.index("Qty")
    crypto = [r for r in rows[1:] if re.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d{6,}", r[qty] or "")]
    assert crypto, f"no row with a many-decimal quantity among {[r[qty] for r in rows[1:]]}"
    numbers = sorted({c for r in crypto for c in r[qty : qty + 4] if c})
    drawn = {e["text"] for e in page.evaluate("window.__drawn") if e["op"] == "text"}
    assert set(numbers) <= drawn, f"not drawn at all: {set(numbers) - drawn}"
    assert not _cells_cut(page, numbers), "numbers drawn with digits outside their column"
    shot(page, "24-1-crypto-rows")


def test_the_description_is_in_view_and_the_view_lives_in_the_url(live_app, trader, new_context):
    page = _open_transactions(new_context, live_app, trader)
    scroller = page.get_by_test_id("stDataFrame").first.locator(".dvn-scroller")
    width, scroll_width = scroller.evaluate("e => [e.clientWidth, e.scrollWidth]")
    assert scroll_width <= width, f"the table scrolls sideways at 1400 px ({scroll_width} > {width})"
    assert "Description" in _grid_rows(page)[0]
    shot(page, "24-7-description-in-view")

    page.get_by_role("combobox", name="Sort").click()
    page.get_by_role("option", name="Amount: smallest first", exact=True).click()
    settle(page)
    page.get_by_role("combobox", name="Types").click()
    page.keyboard.type("Dividend")
    page.get_by_role("option", name="Dividend", exact=True).click()
    page.keyboard.press("Escape")
    settle(page)
    expect(page).to_have_url(re.compile(r"type=DIVIDEND"))
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"type": ["DIVIDEND"], "sort": ["amount:asc"]}, page.url
    first_row = page.get_by_test_id("stDataFrame").first.locator('tr[role="row"]').nth(1)
    expect(first_row).to_contain_text("Dividend")
    kept = _grid_rows(page)[1:]

    page.reload()  # a new session: the widgets come back from the address
    settle(page)
    expect(first_row).to_contain_text("Dividend")
    expect(page.get_by_role("combobox", name="Sort")).to_have_value("Amount: smallest first")
    assert _grid_rows(page)[1:] == kept
    types = page.get_by_test_id("stMultiSelect").filter(has_text="Types")
    expect(types).to_contain_text("Dividend")

    page.goto(f"{live_app.base_url}/transactions?page=9999")
    settle(page)
    expect(page.get_by_text(re.compile(r"There is no page 9,999"))).to_be_visible()


def test_the_detail_stays_with_the_selected_transaction_when_the_view_changes(live_app, trader, new_context):
    page = _open_transactions(new_context, live_app, trader)
    rows = _grid_rows(page)
    kind = rows[0].index("Type")
    # A row whose type differs from a row above it: filtering by its type moves it up, keeping it on the page.
    pick = next(i for i in range(1, len(rows) - 1) if any(r[kind] != rows[i + 1][kind] for r in rows[1 : i + 1]))
    baselines = sorted({round(e["y"]) for e in page.evaluate("window.__drawn")
                        if e["op"] == "text" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", e["text"])})  # fmt: skip
    grid = page.get_by_test_id("stDataFrame").first.locator(".dvn-scroller")  # over the canvas, takes its clicks
    grid.click(position={"x": 16, "y": baselines[pick]})  # the selection box of rows[pick + 1]
    heading = page.get_by_role("heading", name=re.compile(r"^Transaction #\d+$"))
    expect(heading).to_be_visible()
    chosen = heading.inner_text()
    page.get_by_role("combobox", name="Types").click()
    page.keyboard.type(rows[pick + 1][kind])  # the list draws only its first options; typing brings this one in
    page.get_by_role("option", name=rows[pick + 1][kind], exact=True).click()
    page.keyboard.press("Escape")
    settle(page)
    expect(page.get_by_role("heading", name=chosen, exact=True)).to_be_visible()  # the same transaction
    shot(page, "24-3-selection-kept")


def test_the_csv_opens_in_excel_with_money_in_its_currencys_decimals(live_app, trader, new_context, artifacts):
    page = _open_transactions(new_context, live_app, trader)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export CSV").click()
    path = artifacts / "24-8-export.csv"
    download_info.value.save_as(path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), raw[:16]  # UTF-8 byte-order mark: Excel reads "••••" right
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == ",".join(COLUMNS)  # the one header row the README documents
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and all(re.fullmatch(r"-?\d+\.\d{2,}", r["amount"]) for r in rows if r["currency"] == "USD")
    assert any("••••" in r["account"] for r in rows)


def test_the_csv_is_named_for_the_traders_date(live_app, trader, new_context):
    """A browser 14 h ahead of UTC, or 11 h behind: at any hour one of them is on another date than the server."""
    now = datetime.now(UTC)
    zone = next(
        z for z in ("Pacific/Kiritimati", "Pacific/Pago_Pago") if now.astimezone(ZoneInfo(z)).date() != now.date()
    )
    page = _open_transactions(new_context, live_app, trader, timezone_id=zone)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export CSV").click()
    assert download_info.value.suggested_filename == f"transactions-{datetime.now(ZoneInfo(zone)).date()}.csv"
