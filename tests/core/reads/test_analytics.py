"""core.reads.analytics on SQLite and PostgreSQL: monthly buckets, exact sums, currencies kept apart,
user scoping; and the pure figure builders."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import plotly.graph_objects as go
import pytest

from core.reads import analytics as an
from core.reads.transactions import TransactionFilters as F
from core.reads.transactions import transaction_totals
from tests import factories as f


@pytest.fixture
def book(session):
    alice, _, acct = f.make_trader(session, "alice")
    other = f.make_account(session, f.make_connection(session, alice), currency="CAD")
    t = f.make_transaction
    t(session, acct, transaction_type="CONTRIBUTION", amount="1000", trade_date=date(2026, 1, 31))
    t(session, acct, transaction_type="CONTRIBUTION", amount="0.1", trade_date=date(2026, 2, 1))
    t(session, acct, transaction_type="CONTRIBUTION", amount="0.2", trade_date=date(2026, 2, 28))
    t(session, acct, transaction_type="WITHDRAWAL", amount="-250", trade_date=date(2026, 3, 15))
    t(session, acct, transaction_type="DIVIDEND", symbol="MSFT", amount="1.10", trade_date=date(2026, 1, 5))
    t(session, acct, transaction_type="REI", symbol="MSFT", amount="0.90", trade_date=date(2026, 2, 5))
    t(session, acct, transaction_type="DIVIDEND", symbol="AAPL", amount="5", trade_date=date(2026, 2, 5))
    t(session, acct, transaction_type="FEE", amount="-2.5", trade_date=date(2026, 2, 7))
    t(session, acct, transaction_type="BUY", symbol="AAPL", amount="-1000", fee="0.99", trade_date=date(2026, 2, 7))
    t(session, acct, transaction_type="SELL", symbol="AAPL", amount="400", fee="0.01", trade_date=date(2026, 3, 7))
    t(session, acct, transaction_type="BUY", symbol="VTI", amount="-50", trade_date=date(2026, 3, 7))
    # CAD in another account: never mixed into USD results.
    t(session, other, transaction_type="CONTRIBUTION", amount="777", currency="CAD", trade_date=date(2026, 1, 2))
    t(session, other, transaction_type="DIVIDEND", symbol="RY", amount="3", currency="CAD", trade_date=date(2026, 1, 2))
    # Another user's money is never visible.
    _, _, bob_acct = f.make_trader(session, "bob")
    t(session, bob_acct, transaction_type="CONTRIBUTION", amount="99999", trade_date=date(2026, 1, 31))
    return alice, acct, other


def as_dict(df: pd.DataFrame) -> dict:
    return {(r.month, r.category): r.amount for r in df.itertuples()}


def test_currencies_by_use_most_used_first(session, book):
    assert an.currencies_by_use(session, book[0].id) == ["USD", "CAD"]


def test_monthly_cash_flow_buckets_by_month_and_category_exactly(session, book):
    flow = as_dict(an.monthly_cash_flow(session, book[0].id, F(), "USD"))
    assert flow == {
        ("2026-01", "contributions"): Decimal("1000"),
        ("2026-01", "dividends"): Decimal("1.10"),
        ("2026-02", "contributions"): Decimal("0.3"),  # 0.1 + 0.2, exactly
        ("2026-02", "dividends"): Decimal("5.90"),  # REI counts as dividends (activity_types mapping)
        ("2026-02", "fees"): Decimal("-2.5"),
        ("2026-03", "withdrawals"): Decimal("-250"),
    }
    assert all(isinstance(v, Decimal) for v in flow.values())


def test_currencies_are_never_added_together(session, book):
    cad = as_dict(an.monthly_cash_flow(session, book[0].id, F(), "CAD"))
    assert cad == {("2026-01", "contributions"): Decimal("777"), ("2026-01", "dividends"): Decimal("3")}


def test_account_and_date_filters_apply(session, book):
    alice, acct, other = book
    only_feb = an.monthly_cash_flow(session, alice.id, F(date_from=date(2026, 2, 1), date_to=date(2026, 2, 28)), "USD")
    assert set(only_feb["month"]) == {"2026-02"}
    assert an.monthly_cash_flow(session, alice.id, F(account_ids=(other.id,)), "USD").empty


def test_cumulative_net_contributions(session, book):
    cum = an.cumulative_net_contributions(an.monthly_cash_flow(session, book[0].id, F(), "USD"))
    assert list(cum["month"]) == ["2026-01", "2026-02", "2026-03"]
    assert list(cum["cumulative"]) == [Decimal("1000"), Decimal("1000.3"), Decimal("750.3")]


def test_dividends_by_symbol(session, book):
    df = an.dividends_by_symbol(session, book[0].id, F(), "USD")
    assert list(zip(df["symbol"], df["amount"], strict=True)) == [("AAPL", Decimal("5")), ("MSFT", Decimal("2.00"))]


def test_a_reinvestment_purchase_does_not_take_back_the_dividend_it_spent(session, book):
    """The dividend (+8.30) has its own row; the REI row that buys shares with it (-8.30) is not income."""
    alice, acct, t = book[0], book[1], f.make_transaction
    t(session, acct, transaction_type="DIVIDEND", symbol="VTI", amount="8.30", trade_date=date(2026, 5, 5))
    t(session, acct, transaction_type="REI", symbol="VTI", amount="-8.30", quantity="0.04", price="207.50",
      trade_date=date(2026, 5, 5))  # fmt: skip
    may = as_dict(an.monthly_cash_flow(session, alice.id, F(), "USD"))
    assert may[("2026-05", "dividends")] == Decimal("8.30")
    by_symbol = an.dividends_by_symbol(session, alice.id, F(), "USD").set_index("symbol")
    assert by_symbol.loc["VTI", "amount"] == Decimal("8.30")
    assert by_symbol.loc["MSFT", "amount"] == Decimal("2.00")  # a positive REI (the dividend, reinvested) stays


def test_monthly_fees(session, book):
    df = an.monthly_fees(session, book[0].id, F(), "USD").set_index("month")
    assert df.loc["2026-02", "commissions"] == Decimal("0.99")
    assert df.loc["2026-02", "fee_transactions"] == Decimal("2.5")
    assert df.loc["2026-03", "commissions"] == Decimal("0.01")


def test_a_commission_booked_as_a_fee_row_of_its_own_is_counted_once(session, book):
    """SnapTrade's rows of one order share an external reference: the buy, and its commission as a FEE row whose
    Fee column repeats its amount. Fees over time and the Transactions tile count that 4.95 once."""
    alice, acct, t = book[0], book[1], f.make_transaction
    t(session, acct, transaction_type="FEE", amount="-4.95", fee="4.95", trade_date=date(2026, 4, 7))
    t(session, acct, transaction_type="FEE", amount="-1.00", fee="0", trade_date=date(2026, 4, 8))  # an account fee
    t(session, acct, transaction_type="BUY", symbol="AAPL", amount="-100", fee="0.50", trade_date=date(2026, 4, 9))
    april = an.monthly_fees(session, alice.id, F(), "USD").set_index("month").loc["2026-04"]
    assert (april["commissions"], april["fee_transactions"]) == (Decimal("0.50"), Decimal("5.95"))
    [usd] = transaction_totals(session, alice.id, F(date_from=date(2026, 4, 1), currencies=("USD",)))
    assert usd.fee == Decimal("6.45")


def test_traded_value_by_symbol_top_n(session, book):
    df = an.traded_value_by_symbol(session, book[0].id, F(), "USD", top_n=1)
    assert df.to_dict("records") == [
        {"symbol": "AAPL", "bought": Decimal("1000"), "sold": Decimal("400"), "total": Decimal("1400")}
    ]


def test_activity_by_day_counts_all_currencies(session, book):
    df = an.activity_by_day(session, book[0].id, F())
    counts = dict(zip(df["day"], df["count"], strict=True))
    assert counts[date(2026, 1, 2)] == 2 and counts[date(2026, 2, 7)] == 2 and sum(counts.values()) == 13


# --------------------------------------------------------------------------- figures (pure)


FLOW = pd.DataFrame(
    {
        "month": ["2026-01", "2026-01", "2026-02"],
        "category": ["contributions", "dividends", "fees"],
        "amount": [Decimal("100"), Decimal("1.5"), Decimal("-2")],
    }
)


def test_cash_flow_figure_has_one_trace_per_category_and_names_the_currency():
    fig = an.cash_flow_figure(FLOW, "USD")
    assert [t.name for t in fig.data] == ["Contributions", "Dividends", "Fees"]
    assert "USD" in fig.layout.title.text and fig.layout.barmode == "relative"
    assert list(fig.data[2].y) == [-2.0]


def test_empty_frames_give_a_labelled_empty_figure():
    fig = an.cash_flow_figure(FLOW.iloc[0:0], "EUR")
    assert isinstance(fig, go.Figure) and not fig.data
    assert fig.layout.annotations[0].text == "No data for these filters"


def test_other_builders():
    cum = an.cumulative_net_contributions(FLOW)
    assert list(an.cumulative_figure(cum, "USD").data[0].y) == [100.0]
    assert list(an.dividends_month_figure(FLOW, "USD").data[0].y) == [1.5]
    by_symbol = pd.DataFrame({"symbol": ["AAPL"], "amount": [Decimal("5")]})
    assert list(an.dividends_symbol_figure(by_symbol, "USD").data[0].x) == [5.0]
    fees = pd.DataFrame({"month": ["2026-01"], "commissions": [Decimal("1")], "fee_transactions": [Decimal("2")]})
    assert len(an.fees_figure(fees, "USD").data) == 2
    traded = pd.DataFrame(
        {"symbol": ["AAPL"], "bought": [Decimal("3")], "sold": [Decimal("4")], "total": [Decimal("7")]}
    )
    assert [t.name for t in an.traded_value_figure(traded, "USD").data] == ["Bought", "Sold"]


def test_calendar_heatmap_places_days_by_week_and_weekday():
    by_day = pd.DataFrame({"day": [date(2026, 1, 1), date(2026, 3, 2), date(2025, 5, 5)], "count": [3, 7, 1]})
    fig = an.calendar_heatmap_figure(by_day, 2026)
    heat = fig.data[0]
    assert list(heat.y) == list(an.WEEKDAYS)
    assert heat.z[3][0] == 3  # 2026-01-01 is a Thursday in the first week column
    week = (date(2026, 3, 2) - date(2025, 12, 29)).days // 7
    assert heat.z[0][week] == 7  # a Monday
    assert heat.z[0][0] is None  # 2025-12-29 belongs to another year
    assert an.calendar_heatmap_figure(by_day, 2024).layout.annotations[0].text == "No activity in 2024"


def test_calendar_colour_bar_counts_in_whole_numbers():
    few = an.calendar_heatmap_figure(pd.DataFrame({"day": [date(2026, 1, 1)], "count": [3]}), 2026).data[0]
    assert (few.zmin, few.zmax, few.colorbar.dtick, few.colorbar.tickformat) == (0, 3, 1, "d")
    many = an.calendar_heatmap_figure(pd.DataFrame({"day": [date(2026, 1, 1)], "count": [23]}), 2026).data[0]
    assert many.colorbar.dtick == 5
