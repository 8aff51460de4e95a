"""Transactions page: a trader browses, filters, sorts, totals and exports their imported history.

A thin view: every read goes through core.reads.transactions with a session from core.storage.db.session_scope().
Filters, sort, page size and page live in the URL (`st.query_params`), so a reload, the browser's back
button and a bookmark bring the same view back; the grid itself is pages/transaction_table.py.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.reads import export, periods
from core.reads import formatting as fmt
from core.reads import transactions as q
from core.reads.formatting import payload_json
from core.settings import get_settings
from core.snaptrade.activity_types import type_label
from core.storage.db import session_scope
from pages import transaction_table as grid
from pages.components import display_timezone, require_user

CONNECTIONS_PAGE = "connections.py"
# One "Sort" choice, column and direction together: the order a trader asks for, in their words.
SORTS = {
    "trade_date:desc": "Newest first", "trade_date:asc": "Oldest first",
    "amount:desc": "Amount: largest first", "amount:asc": "Amount: smallest first",
    "symbol:asc": "Symbol: A to Z", "symbol:desc": "Symbol: Z to A",
    "type:asc": "Type: A to Z", "type:desc": "Type: Z to A",
}  # fmt: skip
PAGE_KEY = "txn_page"
URL_KEY = "txn_url"  # the query params this session wrote last: a URL that differs was typed, reloaded or gone back to
FROM_URL_KEY = "txn_from_url"
SEARCH_MAX_CHARS = 100
DEFAULT_SORT, DEFAULT_PAGE_SIZE = "trade_date:desc", 50


@st.cache_data(ttl=300, max_entries=128, show_spinner=False)
def _cached(query: str, database: str, user_id: int, version: tuple[int, int, int], *args: Any) -> Any:
    """Memoized core.reads.transactions.<query>: keyed on the database and the user's data version, so a
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
    st.session_state.setdefault("txn_dates", (first, last))
    picked: Any = st.date_input("Trade date", min_value=first, max_value=last, key="txn_dates")
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
        types = c3.multiselect("Types", options.types, format_func=type_label, key="txn_types", placeholder="All types")
        c4, c5, c6 = st.columns(3)
        with c4:
            date_from, date_to = _period(options)
        currencies = c5.multiselect("Currency", options.currencies, key="txn_currencies", placeholder="All currencies")
        text = c6.text_input("Description contains", key="txn_text", max_chars=SEARCH_MAX_CHARS,
                             help=f"Up to {SEARCH_MAX_CHARS} characters")  # fmt: skip
    return q.TransactionFilters(
        account_ids=tuple(account_ids), symbol=symbol or None, types=tuple(types), date_from=date_from,
        date_to=date_to, currencies=tuple(currencies), text=text or None,
    )  # fmt: skip


def _sorting() -> tuple[q.TransactionSort, int]:
    c1, c2 = st.columns([4, 1])
    choice = c1.selectbox("Sort", list(SORTS), format_func=SORTS.get, key="txn_sort")
    page_size = c2.selectbox("Rows per page", q.PAGE_SIZES, key="txn_page_size")
    column, direction = choice.split(":")
    return q.TransactionSort(column, direction == "desc"), int(page_size)


def _reset_page_when_changed(signature: tuple) -> None:
    # A new filter or sort makes the old page number meaningless: start again from page 1 (unless the
    # page number came with the filters, from the URL).
    if st.session_state.get("txn_signature") != signature:
        st.session_state["txn_signature"] = signature
        if not st.session_state.pop(FROM_URL_KEY, False):
            st.session_state[PAGE_KEY] = 1
    st.session_state.pop(FROM_URL_KEY, None)


# --- the view in the URL ---------------------------------------------------------------------------


def _url_params() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in st.query_params}


def _view_from_url(options: q.FilterOptions) -> tuple[dict[str, Any], list[str]]:
    """Widget values from the URL's params, each checked against what this user can pick (a hand-edited or
    stale URL is a hint, never trusted); returns them and what was dropped, in words."""
    params, dropped = _url_params(), []

    def one(name: str) -> str | None:
        values = params.get(name) or []
        return values[-1] if values else None

    def pick(name: str, allowed: list, convert=str) -> list:
        out = []
        for raw in params.get(name, []):
            try:
                value = convert(raw)
            except ValueError:
                value = None
            if value in allowed and value not in out:
                out.append(value)
            else:
                dropped.append(f"{name}={raw}")
        return out

    view: dict[str, Any] = {
        "txn_accounts": pick("account", [a.id for a in options.accounts], int),
        "txn_types": pick("type", options.types),
        "txn_currencies": pick("ccy", options.currencies),
        "txn_symbol": "",
        "txn_period": periods.ALL,
        "txn_text": (one("q") or "")[:SEARCH_MAX_CHARS],
        "txn_sort": DEFAULT_SORT,
        "txn_page_size": DEFAULT_PAGE_SIZE,
        PAGE_KEY: 1,
    }
    if len(one("q") or "") > SEARCH_MAX_CHARS:
        dropped.append(f"the search text after {SEARCH_MAX_CHARS} characters")
    checks = {  # URL name -> (widget key, allowed?, widget value)
        "symbol": ("txn_symbol", lambda v: v in options.symbols, str),
        "period": ("txn_period", lambda v: v in periods.choices(options.first_date, options.last_date), str),
        "sort": ("txn_sort", lambda v: v in SORTS, str),
        "size": ("txn_page_size", lambda v: v.isdigit() and int(v) in q.PAGE_SIZES, int),
        "page": (PAGE_KEY, lambda v: v.isdigit() and int(v) >= 1, int),
    }
    for name, (key, allowed, convert) in checks.items():
        value = one(name)
        # a statement, not a conditional expression: Streamlit's magic writes an expression's value (None) on the page
        if value is not None and allowed(value):
            view[key] = convert(value)
        elif value is not None:
            dropped.append(f"{name}={value}")
    if view["txn_period"] == periods.CUSTOM:
        dates, problem = _custom_range(one("from"), one("to"), options)
        if problem is None:
            view["txn_dates"] = dates
        else:
            view["txn_period"] = periods.ALL
            dropped.append(f"the custom date range ({problem})")
    return view, dropped


def _custom_range(start_text: str | None, end_text: str | None, options: q.FilterOptions) -> tuple[Any, str | None]:
    """The address's custom date range within the history (an open end is the history's), or why it is left out."""
    try:
        start = date.fromisoformat(start_text) if start_text else options.first_date
        end = date.fromisoformat(end_text) if end_text else options.last_date
    except (ValueError, TypeError):
        return None, "its from or to is not a YYYY-MM-DD date"
    if start > end:
        return None, "it ends before it starts"
    if start > options.last_date or end < options.first_date:
        return None, "it is outside your history"
    return (max(start, options.first_date), min(end, options.last_date)), None


def _apply_url(options: q.FilterOptions) -> None:
    """When the URL is not the one this session last wrote (a new session, a reload, back or forward, a
    bookmark), the widgets take their values from it before they are drawn."""
    if st.session_state.get(URL_KEY) == _url_params():
        return
    view, dropped = _view_from_url(options)
    for key, value in view.items():
        st.session_state[key] = value
    st.session_state[FROM_URL_KEY] = True
    if dropped:
        st.warning("Some of this address's view settings do not apply to your transactions and were left out: "
                   + ", ".join(dropped) + ".", icon=":material/link_off:")  # fmt: skip


def _write_url(filters: q.TransactionFilters, sort_key: str, page_size: int, page: int) -> None:
    """The view as query params (only what differs from the defaults), so the address bar can be shared."""
    params: dict[str, Any] = {
        "account": [str(a) for a in filters.account_ids], "type": list(filters.types),
        "ccy": list(filters.currencies), "symbol": filters.symbol or "", "q": filters.text or "",
        "period": st.session_state.get("txn_period", periods.ALL), "sort": sort_key,
        "size": str(page_size), "page": str(page),
    }  # fmt: skip
    if params["period"] == periods.CUSTOM:
        params["from"] = filters.date_from.isoformat() if filters.date_from else ""
        params["to"] = filters.date_to.isoformat() if filters.date_to else ""
    defaults = {"period": periods.ALL, "sort": DEFAULT_SORT, "size": str(DEFAULT_PAGE_SIZE), "page": "1"}
    params = {k: v for k, v in params.items() if v and v != defaults.get(k)}
    if _url_params() != {k: v if isinstance(v, list) else [v] for k, v in params.items()}:
        st.query_params.from_dict(params)
    st.session_state[URL_KEY] = _url_params()


def _init_widgets() -> None:
    """Widget defaults set once in session state, so no widget also takes a default argument."""
    for key, value in (("txn_sort", DEFAULT_SORT), ("txn_page_size", DEFAULT_PAGE_SIZE), ("txn_period", periods.ALL)):
        st.session_state.setdefault(key, value)


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
                       help="Fees charged, each once: the Fee column of trades and other rows (commissions) plus "
                            "the amounts of Fee rows (a commission the broker books as a row of its own counts once)")  # fmt: skip
    if several:
        st.caption(f"**{total:,} transactions** in {len(totals)} currencies. Totals are per currency: amounts in "
                   "different currencies are never added together.")  # fmt: skip


def _csv_download(user_id: int, filters: q.TransactionFilters, sort: q.TransactionSort) -> None:
    def build() -> str:
        # Runs only when clicked, with its own session: the page's session is closed by then.
        with session_scope() as session:
            return export.transactions_csv(session, user_id, filters, sort)

    st.download_button("Export CSV", data=build, file_name=f"transactions-{_today().isoformat()}.csv",
                       mime="text/csv", on_click="ignore", icon=":material/download:")  # fmt: skip


def _detail(detail: dict[str, Any], tz_name: str | None) -> None:
    currency = detail.get("currency")
    st.subheader(f"Transaction #{detail['id']}")
    fields = {
        "Trade date": detail["trade_date"].isoformat(),
        "Settlement date": detail["settlement_date"].isoformat() if detail.get("settlement_date") else "",
        "Account": detail["account"],
        "Type": f"{type_label(detail['transaction_type'])} (SnapTrade: {detail.get('raw_type') or detail['transaction_type']})",
        "Symbol": detail["option"] or detail.get("symbol") or "",
        "Security": detail.get("security_name") or "",
        "Option action": detail.get("option_action") or "",
        # A cash or fee row moves no units: no quantity or price, as in the table.
        "Quantity": fmt.format_quantity(detail.get("quantity")) if detail.get("quantity") else "",
        "Price": fmt.format_money(detail.get("price"), currency, code=False) if detail.get("quantity") else "",
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
    st.json(payload_json(detail.get("raw")), expanded=True)


def _page_in_range(total: int, page_size: int) -> tuple[int, int]:
    """(page, last page); a page number past the end (an old bookmark, a hand-edited address) says so."""
    last_page = max(1, -(-total // page_size))
    asked = st.session_state.get(PAGE_KEY, 1)
    page = min(max(1, int(asked)), last_page)
    if asked != page:
        st.warning(f"There is no page {asked:,}: these filters give {last_page:,} page{'s' if last_page != 1 else ''} "
                   f"of {page_size} rows. Showing page {page:,}.", icon=":material/info:")  # fmt: skip
    st.session_state[PAGE_KEY] = page
    return page, last_page


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
            st.info(
                "Your broker is connected but no transactions are imported yet. The first sync may still be running."
            )
            _link_to_connections("See your connections")
        return

    _init_widgets()
    _apply_url(options)
    filters = _filters(options)
    sort, page_size = _sorting()
    _reset_page_when_changed((filters, sort, page_size))
    # Totals read the whole filtered set (exact sums): memoized, so paging and sorting stay cheap.
    totals: list[q.CurrencyTotal] = _cached("transaction_totals", database, user_id, version, filters)
    total = sum(t.count for t in totals)
    page, last_page = _page_in_range(total, page_size)
    _write_url(filters, st.session_state["txn_sort"], page_size, page)
    with session_scope() as session:
        df, total = q.transactions_page(session, user_id, filters, sort, page, page_size, total=total,
                                        user_rows=version[0])  # fmt: skip

    if total == 0:
        grid.forget_selection()
        st.info("No transactions match these filters. Clear a filter or widen the date range.")
        return
    _totals(totals, total)
    first_row = (page - 1) * page_size + 1
    st.caption(f"Rows {first_row:,}–{first_row + len(df) - 1:,} of {total:,}")
    txn_id = grid.keep_selection([int(i) for i in df["id"]])
    currencies = set(df["Currency"])
    only_currency = currencies.pop() if len(currencies) == 1 else None  # then named in the Amount header
    grid.draw(df, only_currency or None)
    c1, c2 = st.columns([1, 3])
    c1.number_input(f"Page (of {last_page:,})", min_value=1, max_value=last_page, step=1, key=PAGE_KEY)
    with c2:
        _csv_download(user_id, filters, sort)

    if txn_id is None:
        st.caption("Select a row to see its details and the raw SnapTrade payload.")
        return
    with session_scope() as session:
        detail = q.transaction_detail(session, user_id, txn_id)
    if detail is not None:
        _detail(detail, tz_name)


render()
