"""Reading a pair's stored activities for the engine: the columns it needs, through the index of the pair's kind,
all of them or from a date on; and the pairs the broker reports short."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from core.journal.wanted import list_first, wanted_rows
from core.storage.models import (
    JOURNAL_READ_WHERE,
    NAMELESS_WHERE,
    BrokerageAccount,
    BrokeragePosition,
    BrokerageTransaction,
)
from core.storage.models.imports import JOURNAL_READ_COLUMNS

log = logging.getLogger("tradistry.journal")

T = BrokerageTransaction.__table__
CHUNK = 500  # keys per IN list
ARRAY_CHUNK = 20_000  # keys per array parameter (PostgreSQL: key_in)
# Only rows fill_from_row may turn into something (cash rows never do), named as the journal's partial indexes
# name them (core.storage.models.imports.journal_indexes), so each read can use its index.
READ_TYPES = sa.text(JOURNAL_READ_WHERE)


def pair_key(row: Row) -> str:
    """The pair a stored row belongs to: its instrument, or "" when it names none (migration 0006's rule).
    fills.row_instrument spelled out for a Row (every attribute present): called for every row read."""
    option = row.option_ticker
    return (option if option is not None or row.security_type == "option" else row.symbol) or ""


_COLUMNS = tuple(T.c[name] for name in JOURNAL_READ_COLUMNS)  # an index of its pair's kind holds them all
# Every read of the journal's rows starts here: the same on both databases since option_mini is a column.
BASE_QUERY = sa.select(*_COLUMNS).where(READ_TYPES)


@dataclass(slots=True)
class Row:
    """The columns fill_from_row reads, and of `raw` only what decides an option's multiplier."""

    snaptrade_activity_id: str
    transaction_type: str
    symbol: str | None
    security_type: str | None
    option_ticker: str | None
    option_action: str | None
    quantity: Any
    price: Any
    fee: Any
    currency: str | None
    trade_date: Any
    trade_timestamp: str | None
    raw_type: str | None
    raw: dict | None


# The stored option_mini (core.ingest.normalize) back as raw's value; "other" stays unusual (an unknown multiplier).
_MINI = {"true": True, "false": False, "null": None, None: None}


def to_row(record: Any) -> Row:
    *values, mini = record
    raw = {"option_symbol": {"is_mini_option": _MINI.get(mini, mini)}} if mini is not None else None
    return Row(*values, raw=raw)


def fetch_rows(session: Session, query: Any) -> list[Row]:
    """The Rows of a BASE_QUERY. On SQLite straight from the driver's cursor, the numbers and dates parsed as
    their column types would (ExactDecimal's text, ISO dates): SQLAlchemy's per-row result processing was
    most of a full rebuild's reading time. On PostgreSQL from the driver's cursor too, its values as they come
    (psycopg loads NUMERIC as Decimal and DATE as date, as ExactDecimal and Date return them): SQLAlchemy
    iterated the result a fetchone per row and passed each number through ExactDecimal's processor."""
    connection = session.connection()
    name = connection.dialect.name
    if name not in ("sqlite", "postgresql"):
        return [to_row(record) for record in connection.execute(query)]
    # SQLAlchemy binds the parameters (and its events see the statement); the rows come from the driver's cursor.
    result = connection.execute(query)
    records = result.cursor.fetchall()
    result.close()
    mini_of = _MINI.get
    if name == "postgresql":
        # psycopg's own loaders give what the column types would: Decimal for NUMERIC, date for DATE.
        return [
            Row(a, kind, symbol, sec, option, action, q, p, f, currency, d, stamp, raw_type,
                {"option_symbol": {"is_mini_option": mini_of(mini, mini)}} if mini is not None else None)
            for a, kind, symbol, sec, option, action, q, p, f, currency, d, stamp, raw_type, mini in records
        ]  # fmt: skip
    exact, day = Decimal, date.fromisoformat
    return [
        Row(a, kind, symbol, sec, option, action, None if q is None else exact(str(q)),
            None if p is None else exact(str(p)), None if f is None else exact(str(f)), currency,
            day(d) if d is not None else None, stamp, raw_type,
            {"option_symbol": {"is_mini_option": mini_of(mini, mini)}} if mini is not None else None)
        for a, kind, symbol, sec, option, action, q, p, f, currency, d, stamp, raw_type, mini in records
    ]  # fmt: skip


def read_rows(session: Session, account: BrokerageAccount, keys: Iterable[str]) -> list[Row]:
    """The account's rows of these pairs, whatever their type, each pair through an index of its own kind:
    (account_id, symbol, …) of non-option rows, (account_id, option_ticker, …), and the partial index of the
    rows naming no instrument for the "" pair; none reads the account's other rows or the user's others."""
    keys = set(keys)
    base = BASE_QUERY
    dialect = session.get_bind().dialect.name
    found: dict[str, Row] = {}
    named = sorted(k for k in keys if k)
    for chunk in key_chunks(named, dialect):
        by_symbol = base.where(T.c.account_id == account.id, key_in(T.c.symbol, chunk, dialect),
                               T.c.option_ticker.is_(None))  # fmt: skip
        by_option = base.where(T.c.account_id == account.id, key_in(T.c.option_ticker, chunk, dialect))
        for query in (by_symbol, by_option):
            found.update((row.snaptrade_activity_id, row) for row in fetch_rows(session, query))
    if "" in keys:
        # The index's own WHERE, spelled as it is, so both databases know the partial index covers it.
        nameless = base.where(T.c.account_id == account.id, sa.text(NAMELESS_WHERE))
        found.update((row.snaptrade_activity_id, row) for row in fetch_rows(session, nameless))
    return [r for r in found.values() if pair_key(r) in keys]


_WANTED_SINCE = (sa.column("key", sa.String), sa.column("since", sa.Date))


def read_rows_since(session: Session, account: BrokerageAccount, since: Mapping[str, date]) -> dict[str, list[Row]]:
    """Each named pair's rows from its date on: one statement per kind of pair and chunk, joining the wanted
    (pair, date) list to (account_id, symbol | option_ticker, trade_date), so a continuation never reads a
    pair's older rows and costs two statements, not two per pair."""
    out: dict[str, list[Row]] = {key: [] for key in since}
    base = BASE_QUERY
    for chunk in chunks(sorted(since.items())):
        wanted = wanted_rows(session, "wanted", _WANTED_SINCE, chunk)
        # The types in the join's condition too: PostgreSQL's LATERAL subquery must imply the index's WHERE.
        by_symbol = base.select_from(list_first(wanted, T, sa.and_(
            T.c.account_id == account.id, T.c.symbol == wanted.c.key, T.c.option_ticker.is_(None),
            T.c.trade_date >= wanted.c.since, READ_TYPES)))  # fmt: skip
        by_option = base.select_from(list_first(wanted, T, sa.and_(
            T.c.account_id == account.id, T.c.option_ticker == wanted.c.key, T.c.trade_date >= wanted.c.since,
            READ_TYPES)))  # fmt: skip
        for query in (by_symbol, by_option):
            for row in fetch_rows(session, query):
                if (key := pair_key(row)) in out:
                    out[key].append(row)
    return out


def broker_shorts(session: Session, account: BrokerageAccount) -> frozenset[tuple[str, str]]:
    """(account, instrument) pairs the broker last reported short: their sells from flat are real shorts."""
    P = BrokeragePosition.__table__.c
    query = sa.select(P.instrument, P.units).where(P.account_id == account.id)
    return frozenset((account.snaptrade_account_id, i) for i, units in session.execute(query) if units < 0)


def key_in(column: Any, keys: Sequence[str], dialect: str) -> Any:
    """`column IN keys` for a chunk of string keys. On PostgreSQL `column = ANY(:keys)`, the chunk bound as one
    array (of unbounded VARCHAR: a key longer than the column is not cut to match): the statement's text stays
    short and the same from chunk to chunk, where an IN list of 500 placeholders had psycopg parse the long
    text afresh at every execution (statements that long are not cached) and the server plan 500 parameters.
    The same index search either way."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(keys), type_=postgresql.ARRAY(sa.String())))
    return column.in_(keys)


def key_chunks(keys: Sequence[str], dialect: str) -> Iterator[Sequence[str]]:
    """Chunks of keys for key_in: CHUNK keys each, or on PostgreSQL ARRAY_CHUNK (one array parameter
    whatever its length), so the first upkeep after an import's thousands of pairs cost a statement per
    table, not one per table and 500 pairs."""
    return chunks(keys, ARRAY_CHUNK if dialect == "postgresql" else CHUNK)


def chunks(keys: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(keys), size):
        yield keys[i : i + size]
