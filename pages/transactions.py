"""Transactions page: a trader browses, filters, sorts, totals and exports their imported history.

A thin view: every read goes through core.reads.queries with a session from core.storage.db.session_scope().
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.reads import export, periods
from core.reads import formatting as fmt
from core.reads import queries as q
from core.settings import get_settings
from core.storage.db import session_scope
from pages.components import display_timezone, require_user

CONNECTIONS_PAGE = "connections.py"
# One "Sort" choice, column and direction together: the order a trader asks for, in their words.
SORTS = {
    "trade_date:desc": "Newest first", "trade_date:asc": "Oldest first",
    "amount:desc": "Amount: largest first", "amount:asc": "Amount: smallest first",
    "symbol:asc": "Symbol: A to Z", "symbol:desc": "Symbol: Z to A",
    "type:asc": "Type: A to Z", "type:desc": "Type: Z to A",
}  # fmt: skip
TABLE_KEY = "txn_table"
PAGE_KEY = "txn_page"


@st.cache_data(ttl=300, max_entries=128, show_spinner=False)
def _cached(query: str, database: str, user_id: int, version: tuple[int, int, int], *args: Any) -> Any:
    """Memoized core.reads.queries.<query>: keyed on the database and the user's data version, so a
    sync that adds rows (or another test database) never serves stale results."""
    with session_scope() as session:
        return getattr(q, query)(session, user_id, *args)


def _database_key() -> str:
    return hashlib.sha256(get_settings().resolved_database_url.encode()).hexdigest()[:16]


def _signed_in_user() -> int:
    return require_user().user_id


def _link_to_connections(label: str) -> None:
    # The router registers the connections page; when it is not registered (or under a bare
    # AppTest of this file) page_link raises, and a plain hint is the honest fallback.
    try:
        st.page_link(CONNECTIONS_PAGE, label=label, icon=":material/link:")
    except StreamlitAPIException:
        st.markdown(f"Open **Connections** in the menu: {label.lower()}.")


def _date_range(options: q.FilterOptions) -> tuple[date | None, date | None]:
    first, last = options.first_date, options.last_date
    picked: Any = st.date_input("Trade date", value=(first, last), min_value=first, max_value=last, key="txn_dates")
    # While the user is picking, the widget holds a single date: treat it as an open range.
    if isinstance(picked, (tuple, list)):
        start = picked[0] if len(picked) > 0 else None
        end = picked[1] if len(picked) > 1 else None
        return start, end
    return picked, None


def _today() -> date:
    """Today in the trader's time zone, which is what "last 30 days" or "year to date" mean to them."""
    return datetime.now(display_timezone()).date()


def _period(options: q.FilterOptions) -> tuple[date | None, date | None]:
    # Presets cover what traders filter by (a tax year, year to date); the calendar opens only for a
    # custom range, which also keeps the date picker's scripts off the first page load.
    labels = periods.choices(options.first_date, options.last_date)
    key = st.selectbox("Period", list(labels), format_func=labels.get, key="txn_period")
    if key == periods.CUSTOM:
        return _date_range(options)
    return periods.bounds(key, _today())


def _filters(options: q.FilterOptions) -> q.TransactionFilters:
    labels = {a.id: a.label for a in options.accounts}
    with st.container(border=True):
        c1, c2, c3 = st.columns(3)
        account_ids = c1.multiselect("Accounts", list(labels), format_func=labels.get, key="txn_accounts",
                                     placeholder="All accounts")  # fmt: skip
        symbol = c2.selectbox("Symbol", ["", *options.symbols], format_func=lambda s: s or "All symbols",
                              key="txn_symbol")  # fmt: skip
        types = c3.multiselect("Types", options.types, key="txn_types", placeholder="All types")
        c4, c5, c6 = st.columns(3)
        with c4:
            date_from, date_to = _period(options)
        currencies = c5.multiselect("Currency", options.currencies, key="txn_currencies", placeholder="All currencies")
        text = c6.text_input("Description contains", key="txn_text")
    return q.TransactionFilters(
        account_ids=tuple(account_ids), symbol=symbol or None, types=tuple(types), date_from=date_from,
        date_to=date_to, currencies=tuple(currencies), text=text or None,
    )  # fmt: skip


def _sorting() -> tuple[q.TransactionSort, int]:
    c1, c2 = st.columns([4, 1])
    choice = c1.selectbox("Sort", list(SORTS), format_func=SORTS.get, key="txn_sort")
    page_size = c2.selectbox("Rows per page", q.PAGE_SIZES, index=1, key="txn_page_size")
    column, direction = choice.split(":")
    return q.TransactionSort(column, direction == "desc"), int(page_size)


def _reset_page_when_changed(signature: tuple) -> None:
    # A new filter or sort makes the old page number meaningless: start again from page 1.
    if st.session_state.get("txn_signature") != signature:
        st.session_state["txn_signature"] = signature
        st.session_state[PAGE_KEY] = 1


def _totals(totals: list[q.CurrencyTotal], total: int) -> None:
    """One metric row per currency (count, net amount, fees): amounts in different currencies are never added."""
    several = len(totals) > 1
    for t in totals:
        currency = t.currency or "no currency"
        cols = st.columns(3)
        if several:
            cols[0].metric(f"Transactions · {currency}", f"{t.count:,}")
        else:
            cols[0].metric("Transactions", f"{total:,}")
        cols[1].metric(f"Net amount · {currency}", fmt.format_money(t.amount, t.currency),
                       help="Sum of the Amount column: the cash effect of the filtered transactions, fees included")  # fmt: skip
        cols[2].metric(f"Fees · {currency}", fmt.format_money(t.fee, t.currency),
                       help="Sum of the Fee column (commissions the broker reported on these transactions)")  # fmt: skip
    if several:
        st.caption(f"**{total:,} transactions** in {len(totals)} currencies. Totals are per currency: amounts in "
                   "different currencies are never added together.")  # fmt: skip


# Widths (px) sized so Date … Currency (~890 px) fit the table at a 1400 px window; Description takes the rest.
TABLE_COLUMNS = {
    "Date": st.column_config.TextColumn("Date", width=85),
    "Account": st.column_config.TextColumn("Account", width=165, help="Account name and masked number; "
                                           "the account filter and the row details show the full label"),  # fmt: skip
    "Type": st.column_config.TextColumn("Type", width=150),
    "Symbol": st.column_config.TextColumn("Symbol", width=165, help="Ticker, or the option contract "
                                          "(underlying, expiry, strike, call/put)"),  # fmt: skip
    "Quantity": st.column_config.TextColumn("Qty", width=50, alignment="right"),
    "Price": st.column_config.TextColumn("Price", width=70, alignment="right"),
    "Amount": st.column_config.TextColumn("Amount", width=105, alignment="right",
                                          help="Net cash effect, in the row's currency"),  # fmt: skip
    "Fee": st.column_config.TextColumn("Fee", width=55, alignment="right"),
    "Currency": st.column_config.TextColumn("Ccy", width=45, help="Currency of Price, Amount and Fee"),
    "Description": st.column_config.TextColumn("Description", width="large"),
}


def _csv_download(user_id: int, filters: q.TransactionFilters, sort: q.TransactionSort) -> None:
    def build() -> str:
        # Runs only when clicked, with its own session: the page's session is closed by then.
        with session_scope() as session:
            return export.transactions_csv(session, user_id, filters, sort)

    st.download_button("Export CSV", data=build, file_name=f"transactions-{date.today().isoformat()}.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:")  # fmt: skip


def _selected_id(df) -> int | None:
    state = st.session_state.get(TABLE_KEY)
    rows = state.get("selection", {}).get("rows", []) if state else []
    if rows and rows[0] < len(df):
        return int(df.iloc[rows[0]]["id"])
    return None


def _detail(detail: dict[str, Any], tz_name: str | None) -> None:
    currency = detail.get("currency")
    st.subheader(f"Transaction #{detail['id']}")
    fields = {
        "Trade date": detail["trade_date"].isoformat(),
        "Settlement date": detail["settlement_date"].isoformat() if detail.get("settlement_date") else "",
        "Account": detail["account"],
        "Type": f"{detail['transaction_type']} (broker: {detail.get('raw_type') or '—'})",
        "Symbol": detail["option"] or detail.get("symbol") or "",
        "Security": detail.get("security_name") or "",
        "Option action": detail.get("option_action") or "",
        "Quantity": fmt.format_quantity(detail.get("quantity")),
        "Price": fmt.format_number(detail.get("price"), min_decimals=2),
        "Amount": fmt.format_money(detail.get("amount"), currency),
        "Fee": fmt.format_money(detail.get("fee"), currency),
        "FX rate": fmt.format_number(detail.get("fx_rate")),
        "Description": detail.get("description") or "",
        "Order reference": detail.get("external_reference_id") or "",
        "SnapTrade activity id": detail["snaptrade_activity_id"],
        "Imported": fmt.format_timestamp(detail.get("created_at"), tz_name),
        "Last updated": fmt.format_timestamp(detail.get("updated_at"), tz_name),
    }
    st.dataframe([{"Field": k, "Value": v} for k, v in fields.items() if v], hide_index=True)
    st.markdown("**Raw SnapTrade payload**")
    st.json(q.payload_json(detail.get("raw")), expanded=True)


def render() -> None:
    st.title("Transactions")
    user_id = _signed_in_user()
    tz_name = display_timezone().key
    with session_scope() as session:
        version = q.data_version(session, user_id)
    database = _database_key()
    options: q.FilterOptions = _cached("filter_options", database, user_id, version)
    if options.transaction_count == 0:
        if not options.has_connection:
            st.info("No connection yet: connect a broker to import your transaction history.")
            _link_to_connections("Connect a broker")
        else:
            st.info("Your broker is connected but no transactions are imported yet. The first sync may still be running.")
            _link_to_connections("See your connections")
        return

    filters = _filters(options)
    sort, page_size = _sorting()
    _reset_page_when_changed((filters, sort, page_size))
    # Totals read the whole filtered set (exact sums): memoized, so paging and sorting stay cheap.
    totals: list[q.CurrencyTotal] = _cached("transaction_totals", database, user_id, version, filters)
    total = sum(t.count for t in totals)
    last_page = max(1, -(-total // page_size))
    page = min(max(1, int(st.session_state.get(PAGE_KEY, 1))), last_page)
    st.session_state[PAGE_KEY] = page
    with session_scope() as session:
        df, total = q.transactions_page(session, user_id, filters, sort, page, page_size, total=total,
                                        user_rows=version[0])  # fmt: skip

    if total == 0:
        st.info("No transactions match these filters. Clear a filter or widen the date range.")
        return
    _totals(totals, total)
    first_row = (page - 1) * page_size + 1
    st.caption(f"Rows {first_row:,}–{first_row + len(df) - 1:,} of {total:,}")
    st.dataframe(df, key=TABLE_KEY, on_select="rerun", selection_mode="single-row", hide_index=True,
                 column_order=[c for c in TABLE_COLUMNS if c in df.columns], column_config=TABLE_COLUMNS)  # fmt: skip
    c1, c2 = st.columns([1, 3])
    c1.number_input(f"Page (of {last_page:,})", min_value=1, max_value=last_page, step=1, key=PAGE_KEY)
    with c2:
        _csv_download(user_id, filters, sort)

    txn_id = _selected_id(df)
    if txn_id is None:
        st.caption("Select a row to see its details and the raw SnapTrade payload.")
        return
    with session_scope() as session:
        detail = q.transaction_detail(session, user_id, txn_id)
    if detail is not None:
        _detail(detail, tz_name)


render()
