"""The trader's reads behind the Transactions and Analytics pages: filtered pages of transactions, totals,
filter choices, one transaction's detail, and the data version pages cache on.

Every function takes a Session and is scoped to one user_id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from core.reads.formatting import account_label, account_short_label, format_money, format_option, format_quantity
from core.snaptrade.activity_types import TYPE_LABELS, type_label, types_in
from core.storage.counts import user_count
from core.storage.db import decimal_sum
from core.storage.models import (
    FINAL_SYNC_STATUSES,
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    TransactionSyncLog,
)

Txn = BrokerageTransaction.__table__.c

PAGE_SIZES = (25, 50, 100, 250)
SORT_KEYS = ("trade_date", "amount", "symbol", "type")


@dataclass(frozen=True)
class TransactionFilters:
    """What a trader narrowed the list to; empty fields mean "no restriction"."""

    account_ids: tuple[int, ...] = ()
    symbol: str | None = None  # exact ticker (case-insensitive input)
    types: tuple[str, ...] = ()
    date_from: date | None = None  # inclusive
    date_to: date | None = None  # inclusive
    currencies: tuple[str, ...] = ()
    text: str | None = None  # substring of the broker's description


@dataclass(frozen=True)
class TransactionSort:
    key: str = "trade_date"  # one of SORT_KEYS
    descending: bool = True


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str | None
    count: int
    amount: Decimal
    fee: Decimal  # fees charged, each once (fee_sums)


@dataclass(frozen=True)
class AccountOption:
    id: int
    label: str
    currency: str | None = None


@dataclass(frozen=True)
class FilterOptions:
    """Choices for the filter widgets, from the user's own data."""

    has_connection: bool
    transaction_count: int
    accounts: list[AccountOption] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)  # most used first
    types: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    first_date: date | None = None
    last_date: date | None = None


def filter_conditions(
    user_id: int, filters: TransactionFilters, user_clause: sa.ColumnElement[bool] | None = None
) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses for a user's filtered transactions (user_id first: it leads every index)."""
    conds: list[sa.ColumnElement[bool]] = [Txn.user_id == user_id if user_clause is None else user_clause]
    if filters.account_ids:
        conds.append(Txn.account_id.in_(filters.account_ids))
    if filters.symbol and filters.symbol.strip():
        conds.append(Txn.symbol == filters.symbol.strip().upper())
    if filters.types:
        conds.append(Txn.transaction_type.in_(filters.types))
    if filters.date_from:
        conds.append(Txn.trade_date >= filters.date_from)
    if filters.date_to:
        conds.append(Txn.trade_date <= filters.date_to)
    if filters.currencies:
        conds.append(Txn.currency.in_(filters.currencies))
    if filters.text and filters.text.strip():
        conds.append(Txn.description.icontains(filters.text.strip(), autoescape=True))
    return conds


def _user_stats(session: Session, user_id: int, user_rows: int | None = None) -> tuple[int, int]:
    """(rows of the user, rows in the table), once per session: both come from indexes. A caller that
    already knows the user's rows (data_version's count) passes them and saves a query."""
    cache = session.info.setdefault("txn_user_stats", {})
    if user_id not in cache:
        if user_rows is None:
            user_rows = user_count(session, user_id)[0]
        # max(id) is an index lookup; deletions only make the table look bigger (biasing towards the index).
        table_rows = session.execute(sa.select(sa.func.max(Txn.id))).scalar_one() or 0
        cache[user_id] = (int(user_rows), int(table_rows))
    return cache[user_id]


def _scans_table(session: Session, user_id: int) -> bool:
    """True on SQLite when the user owns a large share of the table.

    SQLite's planner always walks the (user_id, …) index and fetches every row by id, which is
    ~10x slower than reading the table straight through once the user holds much of it
    (measured at 200k rows: a filtered count 220 ms vs 22 ms). PostgreSQL chooses well itself.
    """
    if session.get_bind().dialect.name != "sqlite":
        return False
    user_rows, table_rows = _user_stats(session, user_id)
    return table_rows > 0 and user_rows * 10 >= table_rows * 3


def scoped_conditions(
    session: Session, user_id: int, filters: TransactionFilters, *, reads_whole_set: bool = True
) -> list[sa.ColumnElement[bool]]:
    """filter_conditions tuned for a query that reads every matching row (counts, sums, groups)."""
    if reads_whole_set and _scans_table(session, user_id):
        # `user_id + 0` still filters exactly but stops SQLite from choosing the user_id indexes.
        return filter_conditions(user_id, filters, user_clause=(Txn.user_id + 0) == user_id)
    return filter_conditions(user_id, filters)


AGGREGATES_INDEX = "idx_brokerage_transactions_user_aggregates"


def covered(session: Session, stmt):
    """A whole-set aggregation read from the covering aggregates index (on SQLite, by INDEXED BY).

    SQLite's planner costs plans for the average user (ANALYZE keeps no per-user counts), so for a
    heavy user it would walk another index and read every wide row, or avoid a sort by grouping along
    the symbol index with a row lookup each: 3-10x slower than this index's range. PostgreSQL picks
    its index-only scan itself. The filters must keep `user_id = ?` (filter_conditions does)."""
    if session.get_bind().dialect.name == "sqlite":
        return stmt.with_hint(BrokerageTransaction.__table__, f"INDEXED BY {AGGREGATES_INDEX}", "sqlite")
    return stmt


def last_final_run(user_id: int) -> sa.Select:
    """The id of the user's last completed, partial or failed run (its own partial index answers it)."""
    Run = TransactionSyncLog
    return sa.select(sa.func.max(Run.id)).where(Run.user_id == user_id, Run.status.in_(FINAL_SYNC_STATUSES))


def data_version(session: Session, user_id: int) -> tuple[int, int, int]:
    """(row count, revision, last finished run) of the user's data: changes whenever a row of theirs is
    added, changed or deleted, by any writer, and when a run ends. The cache key of pages that memoize
    totals, filter options and analytics: a few index entries, whatever the user's size (core.storage.counts)."""
    rows, revision = user_count(session, user_id)
    last_run = session.execute(last_final_run(user_id)).scalar()
    return rows, revision, int(last_run or 0)


def _money_order(session: Session, column: sa.ColumnElement) -> sa.ColumnElement:
    # ExactDecimal is text on SQLite: order by its numeric value, never sum it this way.
    if session.get_bind().dialect.name == "sqlite":
        return sa.cast(column, sa.Float)
    return column


def order_by(session: Session, sort: TransactionSort) -> list[sa.ColumnElement]:
    def direction(col: sa.ColumnElement) -> sa.ColumnElement:
        return col.desc() if sort.descending else col.asc()

    if sort.key == "trade_date":
        # Matches the (user_id, trade_date, id) index, so the page is an index range scan.
        return [direction(Txn.trade_date), direction(Txn.id)]
    column = {
        "amount": _money_order(session, Txn.amount),
        "symbol": Txn.symbol,
        # "Type: A to Z" means the words a trader reads (Dividend reinvestment is under D, not R for REI).
        "type": sa.case(TYPE_LABELS, value=Txn.transaction_type, else_=Txn.transaction_type),
    }.get(sort.key)
    if column is None:
        raise ValueError(f"unknown sort key {sort.key!r}; expected one of {SORT_KEYS}")
    # Same NULL placement on both dialects; id keeps equal keys in a stable order across pages.
    if sort.key == "symbol":
        # Within a symbol by date: the (user_id, symbol, trade_date, id) index order, so no sort.
        return [direction(column).nulls_last(), direction(Txn.trade_date), direction(Txn.id)]
    return [direction(column).nulls_last(), direction(Txn.id)]


# Money first, free text last: the columns a trader scans fit a 1400 px window, the description may scroll.
PAGE_COLUMNS = (
    "id",
    "Date",
    "Account",
    "Type",
    "Symbol",
    "Quantity",
    "Price",
    "Amount",
    "Fee",
    "Currency",
    "Description",
)


def account_short_labels(session: Session, account_ids: Iterable[int]) -> dict[int, str]:
    """Short labels ('Roth IRA ••••1008') for the table; filters and the detail view use account_label."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = session.execute(sa.select(BrokerageAccount).where(BrokerageAccount.id.in_(ids))).scalars()
    return {a.id: account_short_label(a) for a in rows}


def _display_symbol(symbol: str | None, option_ticker: str | None) -> str:
    return format_option(option_ticker) if option_ticker else (symbol or "")


def _filtered_count(session: Session, user_id: int, filters: TransactionFilters) -> int:
    if filters == TransactionFilters():
        return _user_stats(session, user_id)[0]
    stmt = covered(session, sa.select(sa.func.count()).where(*filter_conditions(user_id, filters)))
    return int(session.execute(stmt).scalar_one())


def _page_conditions(
    session: Session, user_id: int, filters: TransactionFilters, sort: TransactionSort, total: int,
    user_rows: int | None = None,
) -> list[sa.ColumnElement[bool]]:  # fmt: skip
    if session.get_bind().dialect.name != "sqlite":
        return filter_conditions(user_id, filters)  # PostgreSQL's planner has per-value statistics
    # Walking an index in sort order stops after one page while matches are dense (≥ 1 %);
    # sparse matches or a computed sort key are cheaper to find by one pass over the table.
    user_rows = _user_stats(session, user_id, user_rows)[0]
    index_ordered = sort.key in ("trade_date", "symbol")
    dense = total * 100 >= user_rows
    return scoped_conditions(session, user_id, filters, reads_whole_set=not (index_ordered and dense))


def transactions_page(
    session: Session,
    user_id: int,
    filters: TransactionFilters,
    sort: TransactionSort = TransactionSort(),
    page: int = 1,
    page_size: int = 50,
    total: int | None = None,
    user_rows: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """One page (1-based) of the user's filtered transactions, formatted for display, and the
    filtered count. Pass `total` when the caller already knows it (e.g. from transaction_totals), and
    `user_rows`, all of the user's rows (data_version's count), which only steers SQLite's plan."""
    if total is None:
        total = _filtered_count(session, user_id, filters)
    if total == 0:
        return pd.DataFrame(columns=list(PAGE_COLUMNS)), 0
    page_size = max(1, min(int(page_size), 1000))
    offset = max(0, int(page) - 1) * page_size
    order = order_by(session, sort)
    # Find the page's ids first (from an index when one covers the filters and the sort key), then
    # read only those rows: sorting by amount no longer reads every matching row in full.
    page_ids = (
        sa.select(Txn.id)
        .where(*_page_conditions(session, user_id, filters, sort, total, user_rows))
        .order_by(*order)
        .limit(page_size)
        .offset(offset)
    )
    stmt = sa.select(
        Txn.id, Txn.trade_date, Txn.account_id, Txn.transaction_type, Txn.symbol, Txn.option_ticker,
        Txn.description, Txn.quantity, Txn.price, Txn.amount, Txn.fee, Txn.currency,
    ).where(Txn.id.in_(page_ids)).order_by(*order)  # fmt: skip
    rows = session.execute(stmt).all()
    labels = account_short_labels(session, (r.account_id for r in rows))
    records = [
        {
            "id": r.id,
            "Date": r.trade_date.isoformat(),
            "Account": labels.get(r.account_id, ""),
            "Type": type_label(r.transaction_type),
            "Symbol": _display_symbol(r.symbol, r.option_ticker),
            # Cash and fee rows (dividends, deposits, fees) move no units: their Qty and Price cells stay empty,
            # even when the broker filled a price in.
            "Quantity": format_quantity(r.quantity) if r.quantity else "",
            "Price": format_money(r.price, r.currency, code=False) if r.quantity and r.price else "",
            # The currency has its own column (or header): repeating it in every money cell only costs width.
            "Amount": format_money(r.amount, r.currency, code=False),
            "Fee": format_money(r.fee, r.currency, code=False),
            "Currency": r.currency or "",
            "Description": r.description or "",
        }
        for r in rows
    ]
    return pd.DataFrame.from_records(records, columns=list(PAGE_COLUMNS)), int(total)


def exact_sum(session: Session, column: sa.ColumnElement) -> sa.ColumnElement:
    """An exact sum that comes back as a Decimal on both dialects."""
    return decimal_sum(session.get_bind(), column)


FEE_TYPES = types_in("fees")  # FEE, REBATE


def fee_sums(session: Session) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    """The two exact sums that make the fees charged, labelled `commissions` and `charges`: the Fee column of
    every row but a fee row's, and the amounts of the fee rows (negative when charged). A fee row's own Fee
    column repeats its amount when the broker fills it (a commission booked as a row of its own, its order's
    other rows sharing its external reference), so counting both would charge it twice.
    Fees charged = commissions − charges."""
    is_fee_row = Txn.transaction_type.in_(FEE_TYPES)
    return (exact_sum(session, sa.case((~is_fee_row, Txn.fee))).label("commissions"),
            exact_sum(session, sa.case((is_fee_row, Txn.amount))).label("charges"))  # fmt: skip


def transaction_totals(session: Session, user_id: int, filters: TransactionFilters) -> list[CurrencyTotal]:
    """Count, net amount and fees charged (core.reads.transactions.fee_sums) of the filtered set, one entry per
    currency."""
    stmt = covered(
        session,
        (
            sa.select(
                Txn.currency,
                sa.func.count().label("n"),
                exact_sum(session, Txn.amount).label("amount"),
                *fee_sums(session),
            )
            .where(*filter_conditions(user_id, filters))
            .group_by(Txn.currency)
        ),
    )
    totals = [
        CurrencyTotal(
            r.currency,
            int(r.n),
            r.amount if r.amount is not None else Decimal(0),
            (r.commissions or Decimal(0)) - (r.charges or Decimal(0)),
        )  # fmt: skip
        for r in session.execute(stmt).all()
    ]
    return sorted(totals, key=lambda t: (-t.count, t.currency or ""))


def transaction_detail(session: Session, user_id: int, txn_id: int) -> dict[str, Any] | None:
    """Every stored field of one of the user's transactions, raw payload included; None if not theirs."""
    txn = session.execute(
        sa.select(BrokerageTransaction).where(
            BrokerageTransaction.id == txn_id, BrokerageTransaction.user_id == user_id
        )
    ).scalar_one_or_none()
    if txn is None:
        return None
    detail = txn.model_dump()
    account = session.get(BrokerageAccount, txn.account_id)
    detail["account"] = account_label(account) if account else ""
    detail["option"] = format_option(txn.option_ticker)
    return detail


def user_accounts(session: Session, user_id: int) -> list[AccountOption]:
    rows = session.execute(
        sa.select(BrokerageAccount).where(BrokerageAccount.user_id == user_id).order_by(BrokerageAccount.id)
    ).scalars()
    return [AccountOption(a.id, account_label(a), a.currency) for a in rows]


def user_has_connection(session: Session, user_id: int) -> bool:
    stmt = sa.select(BrokerageConnection.id).where(BrokerageConnection.user_id == user_id).limit(1)
    return session.execute(stmt).first() is not None


def trade_date_bounds(user_id: int) -> sa.Select:
    """(first, last) trade date of the user's rows, each read off one end of the (user_id, trade_date) index.

    Two scalar subqueries, not min() and max() in one select: SQLite takes the index shortcut only for a
    lone min() or max(), and with both it scans the user's whole range (25 ms instead of 1 ms for
    200,000 rows, paid on every uncached Transactions visit)."""
    first, last = (sa.select(agg(Txn.trade_date)).where(Txn.user_id == user_id).scalar_subquery()
                   for agg in (sa.func.min, sa.func.max))  # fmt: skip
    return sa.select(first, last)


def filter_options(session: Session, user_id: int) -> FilterOptions:
    """Accounts, currencies (most used first), types, symbols and date bounds of the user's data."""
    # One grouped pass gives both currencies and types and how often each is used.
    combos = session.execute(covered(session,
        sa.select(Txn.currency, Txn.transaction_type, sa.func.count().label("n"))
        .where(*filter_conditions(user_id, TransactionFilters()))
        .group_by(Txn.currency, Txn.transaction_type)
    )).all()  # fmt: skip
    by_currency: Counter[str] = Counter()
    types: set[str] = set()
    for r in combos:
        if r.currency:
            by_currency[r.currency] += r.n
        types.add(r.transaction_type)
    symbols = session.execute(
        sa.select(Txn.symbol).where(Txn.user_id == user_id, Txn.symbol.is_not(None)).distinct().order_by(Txn.symbol)
    ).scalars()
    bounds = session.execute(trade_date_bounds(user_id)).one()
    return FilterOptions(
        has_connection=user_has_connection(session, user_id),
        transaction_count=sum(r.n for r in combos),
        accounts=user_accounts(session, user_id),
        currencies=[c for c, _ in sorted(by_currency.items(), key=lambda kv: (-kv[1], kv[0]))],
        types=sorted(types),
        symbols=list(symbols),
        first_date=bounds[0],
        last_date=bounds[1],
    )
