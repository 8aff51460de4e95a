"""Analytics page: charts of a trader's stored transactions, one currency at a time.

Aggregations run in SQL (core.reads.analytics) and are memoized per data version; figures are pure builders.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import streamlit as st

from core.reads import analytics as an
from core.reads import transactions as q
from core.settings import get_settings
from core.storage.db import session_scope
from pages.components import require_user


@st.cache_data(ttl=300, max_entries=128, show_spinner=False)
def _cached(module: str, query: str, database: str, user_id: int, version: tuple[int, int], *args: Any) -> Any:
    """Memoized core.<module>.<query>, keyed on the database and the user's data version."""
    fn = getattr(an if module == "analytics" else q, query)
    with session_scope() as session:
        return fn(session, user_id, *args)


def _signed_in_user() -> int:
    return require_user().user_id


def _filters(options: q.FilterOptions) -> tuple[q.TransactionFilters, str]:
    labels = {a.id: a.label for a in options.accounts}
    c1, c2, c3 = st.columns([3, 3, 2])
    account_ids = c1.multiselect("Accounts", list(labels), format_func=labels.get, key="an_accounts",
                                 placeholder="All accounts")  # fmt: skip
    picked: Any = c2.date_input("Trade date", value=(options.first_date, options.last_date),
                                min_value=options.first_date, max_value=options.last_date, key="an_dates")  # fmt: skip
    dates = list(picked) if isinstance(picked, (tuple, list)) else [picked]
    # Amounts in different currencies are never added: the user picks one, the most used by default.
    currency = c3.selectbox("Currency", options.currencies, index=0, key="an_currency",
                            help="Amounts are shown in one currency at a time; nothing is converted.")  # fmt: skip
    filters = q.TransactionFilters(
        account_ids=tuple(account_ids),
        date_from=dates[0] if dates else None,
        date_to=dates[1] if len(dates) > 1 else None,
    )
    return filters, currency


def _chart(fig) -> None:
    st.plotly_chart(fig, width="stretch")


def render() -> None:
    st.title("Analytics")
    user_id = _signed_in_user()
    database = hashlib.sha256(get_settings().resolved_database_url.encode()).hexdigest()[:16]
    with session_scope() as session:
        version = q.data_version(session, user_id)
    options: q.FilterOptions = _cached("queries", "filter_options", database, user_id, version)
    if options.transaction_count == 0 or not options.currencies:
        st.info("Nothing to chart yet: connect a broker and import your history first.")
        return

    filters, currency = _filters(options)

    def agg(name: str, *args: Any) -> Any:
        return _cached("analytics", name, database, user_id, version, filters, *args)

    cash_flow = agg("monthly_cash_flow", currency)
    st.subheader("Cash flow")
    _chart(an.cash_flow_figure(cash_flow, currency))
    _chart(an.cumulative_figure(an.cumulative_net_contributions(cash_flow), currency))

    st.subheader("Dividends")
    c1, c2 = st.columns(2)
    with c1:
        _chart(an.dividends_month_figure(cash_flow, currency))
    with c2:
        _chart(an.dividends_symbol_figure(agg("dividends_by_symbol", currency), currency))

    st.subheader("Fees and trading")
    # The slider sits above both charts (not inside the right column) so the two charts stay level.
    s1, _ = st.columns([1, 2])
    top_n = s1.slider("Symbols in the traded-value chart", 5, 30, 15, key="an_top_n")
    c1, c2 = st.columns(2)
    with c1:
        _chart(an.fees_figure(agg("monthly_fees", currency), currency))
    with c2:
        _chart(an.traded_value_figure(agg("traded_value_by_symbol", currency, top_n), currency))

    st.subheader("Activity calendar")
    by_day = agg("activity_by_day")
    years = sorted({d.year for d in by_day["day"]}, reverse=True) or [date.today().year]
    y1, _ = st.columns([1, 4])
    year = y1.selectbox("Year", years, key="an_year")
    st.caption("Transactions per day, all currencies (a count, not an amount).")
    _chart(an.calendar_heatmap_figure(by_day, int(year)))


render()
