"""AppTest of the Journal page: sign-in gate, empty state, tiles per currency (never mixed), calendar and
equity curve drawn, breakdowns, the round-trip table's filters and sort, and a selected trip's fills in order."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.journal.upkeep import upkeep_accounts
from core.reads.journal_charts import calendar_figure, equity_figure
from tests import factories as f
from tests.core.journal.builders import OPT

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "journal.py")


def trade(account, aid, kind, symbol, units, price, on, fee="0", **kw):
    return f.transaction_row(account, snaptrade_activity_id=aid, transaction_type=kind, symbol=symbol,
                             quantity=units, price=price, fee=fee, trade_date=on, security_type=kw.pop("security_type", "cs"),
                             option_ticker=kw.pop("option_ticker", None), option_action=kw.pop("option_action", None),
                             currency=kw.pop("currency", "USD"), **kw)  # fmt: skip


@pytest.fixture
def journal(db):
    """tina: a USD account (two wins incl. an option, a same-day loss, an open TSLA) and a CAD account (a loss)."""
    user, conn, usd = f.make_trader(db, "tina")
    cad = f.make_account(db, conn, currency="CAD", account_name="TFSA")
    f.bulk_transactions(db, [
        trade(usd, "a1", "BUY", "AAPL", "10", "100", date(2025, 3, 3), fee="1"),
        trade(usd, "m1", "BUY", "MSFT", "5", "200", date(2025, 3, 4)),
        trade(usd, "m2", "SELL", "MSFT", "-5", "190", date(2025, 3, 4)),  # -50
        trade(usd, "o1", "BUY", "AAPL", "1", "2", date(2025, 3, 6), security_type="option", option_ticker=OPT,
              option_action="BUY_TO_OPEN"),
        trade(usd, "o2", "SELL", "AAPL", "-1", "3", date(2025, 3, 7), security_type="option", option_ticker=OPT,
              option_action="SELL_TO_CLOSE"),  # +100
        trade(usd, "t1", "BUY", "TSLA", "40", "10", date(2025, 3, 10)),  # open
    ])  # fmt: skip
    # Its own insert: one executemany takes its columns from the first row.
    f.bulk_transactions(db, [trade(usd, "a2", "SELL", "AAPL", "-10", "110", date(2025, 3, 5), fee="1",
                                   trade_timestamp="2025-03-05T14:30:00Z")])  # +98  # fmt: skip
    f.bulk_transactions(db, [
        trade(cad, "v1", "BUY", "VAB.TO", "10", "30", date(2025, 4, 1), currency="CAD"),
        trade(cad, "v2", "SELL", "VAB.TO", "-10", "29", date(2025, 4, 1), currency="CAD"),  # -10 CAD
    ])  # fmt: skip
    upkeep_accounts(db, [usd.id, cad.id])
    return user, usd, cad


def _app(user_id: int | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.context = {"timezone": "Europe/Paris"}
    if user_id is not None:
        at.session_state["current_user"] = f.session_user(user_id, username="tina", role="trader")
    return at


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_without_user_asks_to_sign_in(db):
    at = _app().run()
    assert any("Please sign in" in i.value for i in at.info)


def test_no_trips_shows_an_empty_state(db):
    user = f.make_user(db)
    at = _app(user.id).run()
    assert not at.exception
    assert any("No round trips yet" in i.value for i in at.info)


def test_tiles_calendar_curve_and_breakdowns_one_currency_at_a_time(journal):
    user, _, _ = journal
    at = _app(user.id).run()
    assert not at.exception
    assert at.selectbox(key="jr_currency").value == "USD"
    tiles = metrics(at)
    assert tiles["Net P&L"] == "148.00 USD" and tiles["Closed trades"] == "3"
    assert tiles["Win rate"] == "66.7 %" and tiles["Profit factor"] == "3.96"
    assert tiles["Expectancy"] == "49.33 USD" and tiles["Max drawdown"] == "50.00 USD"
    assert tiles["Average win"] == "99.00 USD" and tiles["Average loss"] == "-50.00 USD"
    assert len(at.get("plotly_chart")) == 2  # the calendar and the equity curve
    assert at.selectbox(key="jr_cal_month").value == 3
    assert any("3 trading day(s): 2 green, 1 red" in c.value for c in at.caption)
    by_symbol = at.dataframe[0].value  # by symbol (a keyed dataframe without selection keeps no key in AppTest)
    assert by_symbol["Symbol"].tolist() == ["AAPL", "MSFT"]
    assert by_symbol["Net P&L"].tolist() == ["198.00 USD", "-50.00 USD"]
    trips = at.dataframe(key="jr_trips").value
    assert len(trips) == 4 and "CAD" not in " ".join(trips["Net P&L"])  # never mixed
    at.selectbox(key="jr_currency").set_value("CAD").run()
    assert not at.exception
    tiles = metrics(at)
    assert tiles["Net P&L"] == "-10.00 CAD" and tiles["Win rate"] == "0 %"
    assert at.dataframe(key="jr_trips").value["Net P&L"].tolist() == ["-10.00 CAD"]


def test_year_view_and_a_month_without_trades(journal):
    user, _, _ = journal
    at = _app(user.id).run()
    at.selectbox(key="jr_cal_month").set_value(4).run()
    assert any("No closed trades in this period" in c.value for c in at.caption)
    at.session_state["jr_cal_span"] = "Year"
    at.run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_trip_filters_and_sort(journal):
    user, _, _ = journal
    at = _app(user.id).run()
    at.selectbox(key="jr_sort").set_value("pnl").run()
    assert at.dataframe(key="jr_trips").value["Net P&L"].tolist() == ["100.00 USD", "98.00 USD", "-50.00 USD", "—"]
    at.selectbox(key="jr_outcome").set_value("loss").run()
    assert at.dataframe(key="jr_trips").value["Instrument"].tolist() == ["MSFT"]
    at.selectbox(key="jr_outcome").set_value("open").run()
    assert at.dataframe(key="jr_trips").value["Instrument"].tolist() == ["TSLA"]
    open_trip = at.dataframe(key="jr_trips").value.iloc[0]
    assert (open_trip["Closed"], open_trip["Days"], open_trip["Net P&L"]) == ("—", "—", "—")
    at.selectbox(key="jr_outcome").set_value(None).run()
    at.text_input(key="jr_symbol").input("aapl").run()
    assert len(at.dataframe(key="jr_trips").value) == 2  # the stock and the option under its underlying
    at.selectbox(key="jr_direction").set_value("short").run()
    assert any("No round trips match" in i.value for i in at.info)
    at.selectbox(key="jr_direction").set_value(None).run()
    at.selectbox(key="jr_period").set_value("y2024").run() if "y2024" in at.selectbox(key="jr_period").options else None
    assert not at.exception


def test_selecting_a_trip_shows_its_fills_in_order(journal):
    user, _, _ = journal
    at = _app(user.id)
    at.session_state["jr_sort"] = "date"
    at.session_state["jr_desc"] = False  # oldest first: AAPL (opened 3 March) is the first row
    at.run()
    assert at.dataframe(key="jr_trips").value["Instrument"].iloc[0] == "MSFT"  # closed 4 March
    at.session_state["jr_trips"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    fills = at.dataframe[-1].value  # the fills, drawn after the trips table
    assert fills["Type"].tolist() == ["BUY", "SELL"] and fills["Quantity"].tolist() == ["10", "-10"]
    assert fills["Time"].tolist()[1].startswith("2025-03-05 15:30")  # the broker's UTC time, in Paris
    assert any("Fills of AAPL" in m.value for m in at.markdown)


def test_figures_colour_by_sign_and_shade_the_drawdown(journal, db):
    from core.reads import journal as jr

    user, _, _ = journal
    days = jr.daily_calendar(db, user.id, currency="USD", year=2025, month=3)
    fig = calendar_figure(days, "USD", 2025, 3)
    z = [v for row in fig.data[0].z for v in row if v is not None]
    assert sorted(z) == [-1.0, 1.0, 1.0]
    assert any(t.endswith("<br>98.00") for row in fig.data[0].text for t in row)  # the title names the currency
    assert any("98.00 USD from" in h for row in fig.data[0].hovertext for h in row)
    year = calendar_figure(days, "USD", 2025)
    assert len(year.data[0].z) == 7
    curve = equity_figure(jr.equity_curve(db, user.id, currency="USD"), "USD")
    assert curve.data[1].fill == "tonexty" and list(curve.data[1].y) == [-50.0, 48.0, 148.0]


def test_the_router_registers_journal_and_positions_for_traders(dashboard, users):
    at = dashboard("tina", page="journal.py")
    assert not at.exception and at.title[0].value == "Journal"
    at.switch_page("positions.py").run()
    assert not at.exception and at.title[0].value == "Positions"


def test_a_long_table_is_shown_a_page_at_a_time(journal, db, monkeypatch):
    """The round-trip table reads only the page it shows: with two trips a page, four USD trips are two pages,
    newest first, and the caption counts them all."""
    from core.reads import journal as jr

    monkeypatch.setattr(jr, "TRIPS_PER_PAGE", 2)
    user, _, _ = journal
    at = _app(user.id).run()
    assert not at.exception
    first = at.dataframe(key="jr_trips").value["Instrument"].tolist()
    assert len(first) == 2 and any("4 round trip(s), 1–2 shown" in c.value for c in at.caption)
    at.number_input(key="jr_page").set_value(2).run()
    second = at.dataframe(key="jr_trips").value["Instrument"].tolist()
    assert len(second) == 2 and any("4 round trip(s), 3–4 shown" in c.value for c in at.caption)
    assert sorted(first + second) == sorted(jr.trip_table(db, user.id, jr.TripFilter(currency="USD"))["instrument"])
