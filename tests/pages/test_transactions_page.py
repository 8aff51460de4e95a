"""AppTest of the Transactions page: sign-in gate, empty states, filters, totals, detail view."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from streamlit.testing.v1 import AppTest

from tests import factories as f

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "transactions.py")


def _app(user_id: int | None = None, tz: str | None = "Europe/Paris") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    if user_id is not None:
        at.session_state["current_user"] = f.session_user(user_id, username="alice", role="trader", timezone=tz)
    return at


def _table(at: AppTest):
    return next(d.value for d in at.dataframe if "Date" in d.value.columns)


def _texts(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.info, *at.markdown, *at.caption] if isinstance(e.value, str))


@pytest.fixture
def trader(session):
    user, connection, account = f.make_trader(session, "alice")
    f.make_transaction(
        session,
        account,
        transaction_type="BUY",
        symbol="AAPL",
        quantity="10",
        price="150.25",
        amount="-1502.50",
        fee="1.00",
        trade_date=date(2026, 3, 2),
        description="Bought AAPL",
    )
    f.make_transaction(
        session,
        account,
        transaction_type="DIVIDEND",
        symbol="MSFT",
        amount="0.1",
        trade_date=date(2026, 3, 5),
        description="MSFT dividend",
    )
    f.make_transaction(
        session,
        account,
        transaction_type="DIVIDEND",
        symbol="MSFT",
        amount="0.2",
        trade_date=date(2026, 3, 6),
        description="MSFT dividend",
    )
    f.make_transaction(
        session,
        account,
        transaction_type="CONTRIBUTION",
        amount="500",
        currency="CAD",
        trade_date=date(2026, 1, 2),
        description="Deposit",
    )
    return user


def test_without_user_asks_to_sign_in(engine):
    at = _app().run()
    assert not at.exception
    assert any("Please sign in" in i.value for i in at.info)
    assert not at.dataframe


def test_no_connection_points_to_connect_a_broker(session):
    user = f.make_user(session, "newbie")
    at = _app(user.id).run()
    assert not at.exception
    assert any("No connection yet" in i.value for i in at.info)
    assert "connect a broker" in _texts(at).lower()


def test_lists_newest_first_with_formatted_money_and_per_currency_totals(trader):
    at = _app(trader.id).run()
    assert not at.exception
    table = _table(at)
    assert list(table["Date"]) == ["2026-03-06", "2026-03-05", "2026-03-02", "2026-01-02"]
    money = list(zip(table["Amount"], table["Fee"], table["Currency"], strict=True))
    assert ("-1,502.50", "1.00", "USD") in money  # the currency has its own column
    assert ("500.00", "", "CAD") in money
    # One metric row per currency: count, net amount and fees; never one sum across currencies.
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Transactions · USD"] == "3" and metrics["Transactions · CAD"] == "1"
    assert metrics["Net amount · USD"] == "-1,502.20 USD"  # exact: -1502.50 + 0.1 + 0.2
    assert metrics["Fees · USD"] == "1.00 USD"
    assert metrics["Net amount · CAD"] == "500.00 CAD" and metrics["Fees · CAD"] == "0.00 CAD"
    assert "4 transactions** in 2 currencies" in _texts(at)


def test_money_columns_come_before_the_description_and_accounts_are_short(session):
    user, connection, _ = f.make_trader(session, "carla")
    roth = f.make_account(
        session,
        connection,
        institution_name="Sandbox US Brokerage",
        account_name="Sandbox US Brokerage Roth IRA",
        account_number="****1008",
    )
    f.make_transaction(
        session,
        roth,
        transaction_type="OPTIONASSIGNMENT",
        symbol="AAPL",
        option_ticker="AAPL  261218C00240000",
        quantity="1",
        price="2.5",
        amount="-250",
        fee="0.65",
        description="Assigned",
    )
    at = _app(user.id).run()
    assert not at.exception
    grid = next(d for d in at.dataframe if "Date" in d.value.columns)
    shown = [c for c in grid.proto.column_order]
    # One currency on the page: it is named in the Amount header instead of taking a column.
    assert shown == ["Date", "Account", "Type", "Symbol", "Quantity", "Price", "Amount", "Fee", "Description"]
    assert json.loads(grid.proto.columns)["Amount"]["label"] == "Amount (USD)"
    row = grid.value.iloc[0]
    assert row["Account"] == "Roth IRA ••••1008"  # no repeated brokerage, masked like on Connections
    assert (row["Symbol"], row["Amount"], row["Fee"]) == ("AAPL 2026-12-18 240 C", "-250.00", "0.65")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Transactions"] == "1" and metrics["Fees · USD"] == "0.65 USD"
    # The full label stays available in the account filter and the detail view.
    accounts = at.multiselect(key="txn_accounts")
    assert "Sandbox US Brokerage · Roth IRA · ••••1008" in accounts.options
    at.session_state["txn_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    fields = dict(zip(at.dataframe[-1].value["Field"], at.dataframe[-1].value["Value"], strict=True))
    assert fields["Account"] == "Sandbox US Brokerage · Roth IRA · ••••1008"


def test_type_filter_narrows_the_list(trader):
    at = _app(trader.id).run()
    at.multiselect(key="txn_types").set_value(["DIVIDEND"]).run()
    table = _table(at)
    assert set(table["Type"]) == {"Dividend"} and len(table) == 2
    assert {m.label: m.value for m in at.metric}["Net amount · USD"] == "0.30 USD"


def test_filters_that_match_nothing_say_so(trader):
    at = _app(trader.id).run()
    at.text_input(key="txn_text").input("no such text").run()
    assert any("No transactions match these filters" in i.value for i in at.info)
    assert not [d for d in at.dataframe if "Date" in d.value.columns]


def test_selecting_a_row_shows_detail_and_raw_payload(trader):
    at = _app(trader.id).run()
    at.session_state["txn_table"] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert any(h.value.startswith("Transaction #") for h in at.subheader)
    assert at.json and '"type":"BUY"' in at.json[0].value


def test_period_presets_filter_by_trade_date_without_a_calendar(session):
    user, _, account = f.make_trader(session, "pia")
    today = datetime.now(ZoneInfo("Pacific/Auckland")).date()  # the trader's zone, ahead of UTC
    for day, amount in ((today, "1"), (today - timedelta(days=29), "2"), (today - timedelta(days=30), "4"),
                        (date(2023, 7, 1), "8")):  # fmt: skip
        f.make_transaction(session, account, transaction_type="DIVIDEND", symbol="VTI", amount=amount, trade_date=day)
    at = _app(user.id, tz="Pacific/Auckland").run()
    assert not at.exception
    period = at.selectbox(key="txn_period")
    assert period.value == "all" and len(_table(at)) == 4
    assert not at.date_input  # the calendar's scripts are loaded only for a custom range
    assert period.options[:5] == ["All time", "Last 30 days", "Last 90 days", "Year to date", "Last 12 months"]
    assert period.options[-1] == "Custom range…" and {str(today.year), "2023"} <= set(period.options)

    period.set_value("30d").run()
    assert sorted(_table(at)["Amount"]) == ["1.00", "2.00"]  # 30 days with both ends included, in Auckland
    at.selectbox(key="txn_period").set_value("y2023").run()
    assert list(_table(at)["Amount"]) == ["8.00"]
    assert {m.label: m.value for m in at.metric}["Net amount · USD"] == "8.00 USD"


def test_custom_period_opens_the_date_range_picker(trader):
    at = _app(trader.id).run()
    at.selectbox(key="txn_period").set_value("custom").run()
    assert not at.exception
    dates = at.date_input(key="txn_dates")
    assert dates.value == (date(2026, 1, 2), date(2026, 3, 6))  # the whole history until narrowed
    dates.set_value((date(2026, 3, 3), date(2026, 3, 6))).run()
    assert list(_table(at)["Date"]) == ["2026-03-06", "2026-03-05"]


def test_sort_by_amount_ascending(trader):
    at = _app(trader.id).run()
    sort = at.selectbox(key="txn_sort")
    assert sort.label == "Sort" and sort.value == "trade_date:desc"  # newest first until asked otherwise
    assert sort.options[:4] == ["Newest first", "Oldest first", "Amount: largest first", "Amount: smallest first"]
    sort.set_value("amount:asc").run()
    assert not at.exception
    assert list(_table(at)["Amount"]) == ["-1,502.50", "0.10", "0.20", "500.00"]
    at.selectbox(key="txn_sort").set_value("amount:desc").run()
    assert list(_table(at)["Amount"]) == ["500.00", "0.20", "0.10", "-1,502.50"]


def test_paging_through_a_long_history(session):
    user, _, account = f.make_trader(session, "paul")
    for i in range(30):
        f.make_transaction(session, account, transaction_type="DIVIDEND", symbol="VTI", amount=str(i + 1),
                           trade_date=date(2026, 1, 1) + timedelta(days=i))  # fmt: skip
    at = _app(user.id).run()
    at.selectbox(key="txn_page_size").set_value(25).run()
    assert len(_table(at)) == 25 and "Rows 1–25 of 30" in _texts(at)
    at.number_input(key="txn_page").set_value(2).run()
    assert not at.exception
    assert list(_table(at)["Amount"]) == ["5.00", "4.00", "3.00", "2.00", "1.00"]  # newest first: the oldest five
    assert "Rows 26–30 of 30" in _texts(at)
    at.selectbox(key="txn_sort").set_value("trade_date:asc").run()  # a new sort starts again from page 1
    assert at.number_input(key="txn_page").value == 1


# --- issue #24, items 1, 3 and 7 -----------------------------------------------------------------------


def _detail_id(at: AppTest) -> int | None:
    heads = [h.value for h in at.subheader if h.value.startswith("Transaction #")]
    return int(heads[0].removeprefix("Transaction #")) if heads else None


def _selected_rows(at: AppTest) -> list[int]:
    return list(at.session_state["txn_table"]["selection"]["rows"])


def _widths(at: AppTest) -> dict[str, int]:
    grid = next(d for d in at.dataframe if "Date" in d.value.columns)
    config = json.loads(grid.proto.columns)
    return {c: config[c]["width"] for c in grid.proto.column_order}


def test_the_detail_follows_the_selected_transaction_not_its_row_position(trader):
    at = _app(trader.id).run()
    at.session_state["txn_table"] = {"selection": {"rows": [2], "columns": [], "cells": []}}  # the AAPL buy
    at.run()
    bought = _detail_id(at)
    assert bought is not None and '"type":"BUY"' in at.json[0].value
    at.selectbox(key="txn_sort").set_value("amount:asc").run()  # the buy is now the first row
    assert _detail_id(at) == bought and _selected_rows(at) == [0]
    at.multiselect(key="txn_types").set_value(["DIVIDEND"]).run()  # the buy leaves the view
    assert _detail_id(at) is None and _selected_rows(at) == []
    at.multiselect(key="txn_types").set_value([]).run()  # and does not come back selected
    assert _detail_id(at) is None and _selected_rows(at) == []


def test_types_read_as_words_and_the_detail_keeps_snaptrades_type(session):
    user, _, account = f.make_trader(session, "tomas")
    f.make_transaction(session, account, transaction_type="OPTIONASSIGNMENT", raw_type="OPTIONASSIGNMENT",
                       symbol="AAPL", quantity="1", price="2.5", amount="-250")  # fmt: skip
    f.make_transaction(session, account, transaction_type="EXTERNAL_ASSET_TRANSFER_IN",
                       raw_type="EXTERNAL_ASSET_TRANSFER_IN", symbol="VTI", quantity="3", price="0", amount="0")  # fmt: skip
    at = _app(user.id).run()
    assert set(_table(at)["Type"]) == {"Option assignment", "Transfer in from another institution"}
    types = at.multiselect(key="txn_types")
    assert set(types.options) == {"Option assignment", "Transfer in from another institution"}  # labels shown
    row = list(_table(at)["Type"]).index("Option assignment")
    at.session_state["txn_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    fields = dict(zip(at.dataframe[-1].value["Field"], at.dataframe[-1].value["Value"], strict=True))
    assert fields["Type"] == "Option assignment (SnapTrade: OPTIONASSIGNMENT)"


def test_fee_and_cash_rows_leave_quantity_and_price_empty(session):
    user, _, account = f.make_trader(session, "fiona")
    f.make_transaction(session, account, transaction_type="FEE", quantity="0", price="2.50", amount="-2.50",
                       trade_date=date(2026, 3, 3))  # some brokers put the fee in the price  # fmt: skip
    f.make_transaction(session, account, transaction_type="DIVIDEND", symbol="MSFT", quantity="0", price="0",
                       amount="12.34", trade_date=date(2026, 3, 2))  # fmt: skip
    table = _table(_app(user.id).run())
    assert list(table["Quantity"]) == ["", ""] and list(table["Price"]) == ["", ""]
    assert list(table["Amount"]) == ["-2.50", "12.34"]


def test_numbers_get_the_width_they_need_and_the_description_fits_at_1400_px(session):
    user, _, account = f.make_trader(session, "dora")
    f.make_transaction(session, account, transaction_type="BUY", symbol="DOGE", quantity="79.14982855",
                       price="0.1395", amount="-11.04", description="Bought DOGE")  # fmt: skip
    f.make_transaction(session, account, transaction_type="DIVIDEND", symbol="VTI", amount="1234567.89",
                       description="Vanguard Total Stock Market ETF dividend")  # fmt: skip
    at = _app(user.id).run()
    widths = _widths(at)
    table = _table(at)
    from pages.transaction_table import GRID_PX, ROW_MARKER_PX, fit_px

    assert widths["Quantity"] >= fit_px(table["Quantity"], "Qty") > fit_px(["982855"], "Qty")
    assert widths["Amount"] >= fit_px(["1,234,567.89"], "Amount (USD)")
    assert ROW_MARKER_PX + sum(widths.values()) <= GRID_PX  # no horizontal scroll: the description is in view
    assert widths["Description"] >= 160


def test_a_long_crypto_quantity_narrows_the_wrapped_texts_instead_of_pushing_the_description_out(session):
    # Seen in Chromium: "-18,374.73997028" beside option symbols and long account names left the description
    # 6 px short of its minimum, and the table scrolled sideways.
    user, connection, account = f.make_trader(session, "erin")
    margin = f.make_account(session, connection, account_name="Individual Margin", account_number="****1481")
    f.make_transaction(session, account, transaction_type="SELL", symbol="BTC", quantity="-18374.73997028",
                       price="1.234567", amount="757.03", description="Sold BTC")  # fmt: skip
    f.make_transaction(session, margin, transaction_type="SELL", symbol="AMZN", quantity="-1", price="7.52",
                       amount="751.35", fee="0.65", option_ticker="AMZN  261231C00140000", option_underlying="AMZN",
                       option_right="CALL", option_strike="140", option_expiration=date(2026, 12, 31),
                       description="Sold 1 AMZN Dec 31 2026 140.00 Call @ 7.52")  # fmt: skip
    f.make_transaction(session, margin, transaction_type="REI", symbol="VTI", quantity="0.123", amount="-30.00",
                       description="Dividend reinvestment")  # fmt: skip
    at = _app(user.id).run()
    widths = _widths(at)
    from pages.transaction_table import GRID_PX, ROW_MARKER_PX, WRAPPED_CAPS, fit_px

    assert widths["Quantity"] >= fit_px(["-18,374.73997028"], "Qty")
    assert ROW_MARKER_PX + sum(widths.values()) <= GRID_PX  # still no horizontal scroll
    assert widths["Description"] >= 160
    assert any(widths[c] < cap for c, cap in WRAPPED_CAPS.items())  # the room came from the wrapped texts
    assert widths["Account"] >= fit_px(["Individual"], "Account")  # never narrower than a word it wraps


def test_filters_sort_and_page_live_in_the_url(session):
    user, _, account = f.make_trader(session, "ursula")
    for i in range(30):
        f.make_transaction(session, account, transaction_type="DIVIDEND" if i % 2 else "BUY", symbol="VTI",
                           amount=str(i + 1), trade_date=date(2026, 1, 1) + timedelta(days=i))  # fmt: skip
    at = _app(user.id)
    for key, value in {"type": "DIVIDEND", "sort": "amount:asc", "size": "25"}.items():
        at.query_params[key] = value
    at.run()  # a reload or a bookmark of that address
    assert at.multiselect(key="txn_types").value == ["DIVIDEND"]
    assert at.selectbox(key="txn_sort").value == "amount:asc"
    assert list(_table(at)["Amount"])[:3] == ["2.00", "4.00", "6.00"]
    at.selectbox(key="txn_page_size").set_value(25).run()
    at.multiselect(key="txn_types").set_value([]).run()
    at.number_input(key="txn_page").set_value(2).run()
    assert dict(at.query_params) == {"sort": "amount:asc", "size": "25", "page": "2"}
    assert list(_table(at)["Amount"]) == ["26.00", "27.00", "28.00", "29.00", "30.00"]


def test_a_page_number_past_the_end_gets_a_message(session):
    user, _, account = f.make_trader(session, "pete")
    for i in range(3):
        f.make_transaction(session, account, transaction_type="DIVIDEND", symbol="VTI", amount=str(i + 1))
    at = _app(user.id)
    at.query_params["page"] = "999"
    at.run()
    assert not at.exception
    assert any("There is no page 999" in w.value and "Showing page 1" in w.value for w in at.warning)
    assert len(_table(at)) == 3
    assert [m.value for m in at.markdown if "None" in m.value] == []  # no stray value written by Streamlit's magic


def test_an_address_with_a_reversed_or_foreign_custom_range_says_why_it_is_left_out(session):
    user, _, account = f.make_trader(session, "rita")
    for day in (date(2025, 1, 10), date(2025, 6, 10)):
        f.make_transaction(session, account, transaction_type="DIVIDEND", symbol="VTI", amount="1", trade_date=day)
    for (start, end), why in ((("2025-05-01", "2025-01-01"), "it ends before it starts"),
                              (("2030-01-01", "2030-02-01"), "it is outside your history"),
                              (("2025-13-45", ""), "its from or to is not a YYYY-MM-DD date")):  # fmt: skip
        at = _app(user.id)
        for key, value in {"period": "custom", "from": start, "to": end}.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception
        assert [w.value for w in at.warning if "custom date range" in w.value] == [
            f"Some of this address's view settings do not apply to your transactions and were left out: "
            f"the custom date range ({why})."
        ]
        assert at.selectbox(key="txn_period").value == "all" and len(_table(at)) == 2
    at = _app(user.id)
    for key, value in {"period": "custom", "from": "2025-05-01", "to": "2030-01-01"}.items():
        at.query_params[key] = value
    at.run()  # a range that overlaps the history is kept, clipped to it
    assert not at.warning and at.date_input(key="txn_dates").value == (date(2025, 5, 1), date(2025, 6, 10))
    assert len(_table(at)) == 1
