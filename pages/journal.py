"""Journal page: how did I trade? Round trips with realized P&L from the stored journal, one currency at a time.

Thin: every number comes from core.reads.journal (exact Decimals) and is written with core.reads.formatting;
figures are pure builders in core.reads.journal_charts.
"""

from __future__ import annotations

import calendar as cal
from datetime import date, datetime
from typing import Any

import pandas as pd
import streamlit as st

from core.reads import formatting as fmt
from core.reads import journal as jr
from core.reads import journal_charts as charts
from core.reads import periods
from core.reads import transactions as q
from core.storage.db import session_scope
from pages.components import display_timezone, fmt_time, require_user

OUTCOME_LABELS = {None: "Any outcome", "win": "Wins", "loss": "Losses", "scratch": "Scratches", "open": "Open",
                  "flagged": "Flagged (left out of the numbers)"}  # fmt: skip
DIRECTION_LABELS = {None: "Long and short", "long": "Long", "short": "Short"}
FLAG_WORDS = {"cost_unknown": "cost unknown", "transferred": "transferred out",
              "incomplete_history": "bought before the imported history", "unplaceable": "could not be placed"}  # fmt: skip


_currency_label = charts.currency_label
_money = charts.money


def _average(value: Any, currency: str | None) -> str:
    return "—" if value is None else fmt.format_average(value, currency)


def _percent(value: Any) -> str:
    return "—" if value is None else f"{fmt.format_number(round(value * 100, 1))} %"


def _ratio(value: Any) -> str:
    return "—" if value is None else fmt.format_number(round(value, 2), min_decimals=2)


# --------------------------------------------------------------------------- sections


def _tiles(tile: jr.Summary | None, currency: str | None) -> None:
    if tile is None or tile.closed_trades == 0:
        st.info(f"No closed round trips in {_currency_label(currency)} for these filters yet.")
        return
    net = tile.gross_profit + tile.gross_loss
    row1 = st.columns(4)
    row1[0].metric("Net P&L", _money(net, currency))
    row1[1].metric("Closed trades", f"{tile.closed_trades}",
                   help=f"{tile.wins} wins, {tile.losses} losses, {tile.scratches} scratches")  # fmt: skip
    row1[2].metric("Win rate", _percent(tile.win_rate))
    row1[3].metric("Profit factor", _ratio(tile.profit_factor), help="Gross profit ÷ |gross loss|")
    row2 = st.columns(4)
    row2[0].metric("Expectancy", _average(tile.expectancy, currency), help="Net P&L per closed trade")
    row2[1].metric("Average win", _average(tile.average_win, currency))
    row2[2].metric("Average loss", _average(tile.average_loss, currency))
    row2[3].metric("Max drawdown", _money(tile.max_drawdown, currency),
                   help="Largest fall of cumulative daily net P&L from its running peak")  # fmt: skip


def _calendar(session: Any, user_id: int, currency: str | None, account_id: int | None, curve: pd.DataFrame) -> None:
    st.subheader("P&L calendar")
    years = sorted({d.year for d in curve["date"]}, reverse=True) or [date.today().year]
    c1, c2, c3 = st.columns([1, 1, 2])
    span = c1.segmented_control("Show", ["Month", "Year"], default="Month", key="jr_cal_span") or "Month"
    year = int(c2.selectbox("Year", years, key="jr_cal_year"))
    month = None
    if span == "Month":
        months_with = sorted({d.month for d in curve["date"] if d.year == year}) or [1]
        month = int(c3.selectbox("Month", list(range(1, 13)), index=months_with[-1] - 1,
                                 format_func=lambda m: cal.month_name[m], key="jr_cal_month"))  # fmt: skip
    days = jr.daily_calendar(session, user_id, currency=currency, year=year, month=month, account_id=account_id)
    st.plotly_chart(charts.calendar_figure(days, currency, year, month), width="stretch", key="jr_calendar")
    if days.empty:
        st.caption("No closed trades in this period.")
    else:
        green = int((days["net_pnl"] > 0).sum())
        red = int((days["net_pnl"] < 0).sum())
        st.caption(f"{len(days)} trading day(s): {green} green, {red} red · net "
                   f"{_money(sum(days['net_pnl']), currency)}")  # fmt: skip


def _breakdowns(session: Any, user_id: int, currency: str | None, account_id: int | None) -> None:
    st.subheader("Breakdowns")
    tabs = st.tabs(["By symbol", "By weekday", "By holding time"])
    for tab, by, label in zip(tabs, ("symbol", "weekday", "holding"), ("Symbol", "Weekday (of the close)", "Held"),
                              strict=True):  # fmt: skip
        with tab:
            df = jr.breakdown(session, user_id, currency=currency, by=by, account_id=account_id)
            if df.empty:
                st.caption("Nothing closed yet.")
                continue
            shown = pd.DataFrame({label: df["group"], "Trades": df["trades"], "Wins": df["wins"],
                                  "Losses": df["losses"], "Win rate": [_percent(v) for v in df["win_rate"]],
                                  "Net P&L": [_money(v, currency) for v in df["net_pnl"]]})  # fmt: skip
            st.dataframe(shown, hide_index=True, width="stretch", key=f"jr_breakdown_{by}")


def _trip_filters(account_id: int | None, currency: str | None) -> jr.TripFilter:
    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    symbol = c1.text_input("Symbol", key="jr_symbol", placeholder="e.g. AAPL").strip() or None
    today = datetime.now(display_timezone()).date()
    choices = periods.choices(None, None)
    choices.pop(periods.CUSTOM, None)
    period = c2.selectbox("Period", list(choices), format_func=choices.get, key="jr_period")
    start, end = periods.bounds(period, today)
    direction = c3.selectbox("Direction", list(DIRECTION_LABELS), format_func=DIRECTION_LABELS.get, key="jr_direction")
    outcome = c4.selectbox("Outcome", list(OUTCOME_LABELS), format_func=OUTCOME_LABELS.get, key="jr_outcome")
    return jr.TripFilter(account_id=account_id, symbol=symbol, start=start, end=end, direction=direction,
                         outcome=outcome, currency=currency)  # fmt: skip


def _fill_time(value: Any) -> str:
    """The broker's timestamp (stored as written) in the viewer's zone; shown as written if it is no ISO time."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        return fmt_time(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return value


def _trips(session: Any, user_id: int, currency: str | None, account_id: int | None) -> None:
    st.subheader("Round trips")
    filters = _trip_filters(account_id, currency)
    s1, s2, s3 = st.columns([2, 2, 4])
    sort = s1.selectbox("Sort by", ["date", "pnl"], format_func={"date": "Date", "pnl": "Net P&L"}.get, key="jr_sort")
    descending = s2.selectbox("Order", [True, False], key="jr_desc",
                              format_func=lambda d: ("Newest first" if d else "Oldest first") if sort == "date"
                              else ("Largest first" if d else "Smallest first"))  # fmt: skip
    total = jr.trip_count(session, user_id, filters)
    if not total:
        st.info("No round trips match these filters.")
        return
    pages = -(-total // jr.TRIPS_PER_PAGE)
    # A page at a time: a long history's table is one indexed read of the rows shown, not of every trip.
    page = (
        int(s3.number_input("Page", min_value=1, max_value=pages, value=1, step=1, key="jr_page")) if pages > 1 else 1
    )
    first = (min(page, pages) - 1) * jr.TRIPS_PER_PAGE
    trips = jr.trip_table(
        session, user_id, filters, sort=sort, descending=descending, limit=jr.TRIPS_PER_PAGE, offset=first
    )
    shown = pd.DataFrame({
        "Account": trips["account"], "Instrument": trips["instrument"], "Side": trips["direction"].str.capitalize(),
        # an open trip's Closed and Days read "—" like its P&L (a missing value would be drawn as "None")
        "Opened": trips["opened_on"], "Closed": ["—" if pd.isna(v) else v.isoformat() for v in trips["closed_on"]],
        "Days": ["—" if pd.isna(v) else f"{int(v):,}" for v in trips["holding_days"]],
        "Quantity": [fmt.format_quantity(v) for v in trips["quantity"]],
        "Net P&L": [_money(v, currency) for v in trips["net_pnl"]],
        "Fees": [_money(v, currency) for v in trips["fees"]],
        "Outcome": trips["outcome"].str.capitalize(),
        "Flags": [", ".join(FLAG_WORDS.get(f.strip(), f.strip()) for f in v.split(",") if f.strip()) for v in trips["flags"]],
    })  # fmt: skip
    counted = f"{total} round trip(s)" + (f", {first + 1}–{first + len(trips)} shown" if pages > 1 else "")
    st.caption(f"{counted}. Select one to see its fills in order.")
    event = st.dataframe(shown, hide_index=True, width="stretch", key="jr_trips", on_select="rerun",
                         selection_mode="single-row")  # fmt: skip
    rows = list(event.selection.rows) if event is not None else []
    if not rows or rows[0] >= len(trips):
        return
    picked = trips.iloc[rows[0]]
    fills = jr.trip_fills(session, user_id, int(picked["id"]))
    st.markdown(f"**Fills of {picked['instrument']}** ({picked['direction']}, opened {picked['opened_on']}"
                + (f", closed {picked['closed_on']}" if picked["closed_on"] is not None and not pd.isna(picked["closed_on"]) else ", still open")
                + ")")  # fmt: skip
    if fills.empty:
        st.info("This round trip was rebuilt by a sync since the table was drawn: pick it again.")
        return
    st.dataframe(pd.DataFrame({
        "#": range(1, len(fills) + 1), "Date": fills["trade_date"],
        "Time": [_fill_time(t) for t in fills["trade_timestamp"]],
        "Type": [f"{t} ({o})" if o else t for t, o in zip(fills["type"], fills["option_action"], strict=True)],
        "Quantity": [fmt.format_quantity(v) for v in fills["quantity"]],
        "Price": [fmt.format_number(v, min_decimals=2) if v is not None else "" for v in fills["price"]],
        "Fee": [_money(v, c) for v, c in zip(fills["fee"], fills["currency"], strict=True)],
        "Amount": [_money(v, c) for v, c in zip(fills["amount"], fills["currency"], strict=True)],
        "Description": fills["description"],
    }), hide_index=True, width="stretch", key="jr_fills")  # fmt: skip


def render() -> None:
    st.title("Journal")
    user_id = require_user().user_id
    with session_scope() as session:
        currencies = jr.journal_currencies(session, user_id)
        if not currencies:
            st.info("No round trips yet: connect a broker and import your history, and your trades show up here.")
            return
        accounts = {a.id: a.label for a in q.filter_options(session, user_id).accounts}
        c1, c2 = st.columns([1, 3])
        currency = c1.selectbox("Currency", currencies, format_func=_currency_label, key="jr_currency",
                                help="Every number is in one currency; nothing is converted or mixed.")  # fmt: skip
        account_id = c2.selectbox("Account", [None, *accounts], key="jr_account",
                                  format_func=lambda a: "All accounts" if a is None else accounts[a])  # fmt: skip
        tiles = {t.currency: t for t in jr.summary_tiles(session, user_id, account_id=account_id)}
        _tiles(tiles.get(currency), currency)
        st.caption("Closed round trips only; flagged ones (cost unknown, transferred, bought before the imported "
                   "history, unplaceable) are listed below but left out of every number.")  # fmt: skip
        curve = jr.equity_curve(session, user_id, currency=currency, account_id=account_id)
        _calendar(session, user_id, currency, account_id, curve)
        st.subheader("Equity curve")
        if curve.empty:
            st.caption("No closed trades yet.")
        else:
            st.plotly_chart(charts.equity_figure(curve, currency), width="stretch", key="jr_equity")
        _breakdowns(session, user_id, currency, account_id)
        _trips(session, user_id, currency, account_id)


render()
