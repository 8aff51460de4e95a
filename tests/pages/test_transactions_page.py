"""AppTest of the Transactions page: sign-in gate, empty states, filters, totals, detail view."""

from __future__ import annotations

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
    f.make_transaction(session, account, transaction_type="BUY", symbol="AAPL", quantity="10", price="150.25",
                       amount="-1502.50", fee="1.00", trade_date=date(2026, 3, 2), description="Bought AAPL")
    f.make_transaction(session, account, transaction_type="DIVIDEND", symbol="MSFT", amount="0.1",
                       trade_date=date(2026, 3, 5), description="MSFT dividend")
    f.make_transaction(session, account, transaction_type="DIVIDEND", symbol="MSFT", amount="0.2",
                       trade_date=date(2026, 3, 6), description="MSFT dividend")
    f.make_transaction(session, account, transaction_type="CONTRIBUTION", amount="500", currency="CAD",
                       trade_date=date(2026, 1, 2), description="Deposit")
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
    roth = f.make_account(session, connection, institution_name="Sandbox US Brokerage",
                          account_name="Sandbox US Brokerage Roth IRA", account_number="****1008")
    f.make_transaction(session, roth, transaction_type="OPTIONASSIGNMENT", symbol="AAPL",
                       option_ticker="AAPL  261218C00240000", quantity="1", price="2.5", amount="-250", fee="0.65",
                       description="Assigned")
    at = _app(user.id).run()
    assert not at.exception
    grid = next(d for d in at.dataframe if "Date" in d.value.columns)
    shown = [c for c in grid.proto.column_order]
    assert shown == ["Date", "Account", "Type", "Symbol", "Quantity", "Price", "Amount", "Fee", "Currency",
                     "Description"]
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
    assert set(table["Type"]) == {"DIVIDEND"} and len(table) == 2
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
