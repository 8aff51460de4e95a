"""The transactions upsert, compiled once per dialect, and the fast binding of normalized rows to it.

Reaches into SQLAlchemy (the compiled SQL text's shape), guarded: docs/INTERNALS.md."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from itertools import chain
from operator import itemgetter

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.ingest.pgcopy import CopyPageWriter
from core.storage.models import BrokerageTransaction

T = BrokerageTransaction.__table__
CONTENT_COLUMNS = [
    c.name for c in T.columns if c.name not in ("id", "user_id", "account_id", "snaptrade_activity_id", "created_at")
]


def upsert_statement(dialect):
    """Insert new rows; rewrite an existing one only when its raw record changed."""
    ins = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(T)
    return ins.on_conflict_do_update(
        index_elements=["account_id", "snaptrade_activity_id"],
        set_={name: ins.excluded[name] for name in CONTENT_COLUMNS},
        where=T.c.raw_hash != ins.excluded.raw_hash,
    )


class Binder:
    """The upsert compiled once per dialect, and a row dict -> driver parameters conversion equal to
    SQLAlchemy's bind processors for the values the normalizer produces, but done with C-level
    callables: rows go to the driver's executemany without SQLAlchemy's per-row machinery."""

    def __init__(self, dialect):
        columns = [c.name for c in T.columns if c.name != "id"]
        compiled = upsert_statement(dialect).compile(dialect=dialect, column_keys=columns)
        # Reaches into SQLAlchemy (this SQL text's shape), guarded: docs/INTERNALS.md.
        self.sql = str(compiled)
        self.names = list(compiled.positiontup) if compiled.positional else columns
        processors = {name: T.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns}
        self._stamp = processors["created_at"]
        # created_at/updated_at are bound once per page by stamp(); on SQLite `raw` needs nothing: it is
        # always JSONText, which the JSON serializer (its processor there) passes through unchanged.
        done = {"created_at", "updated_at"} | ({"raw"} if dialect.name == "sqlite" else set())
        self._convert = [(i, _fast_processor(T.c[name].type, dialect, processors[name]) or processors[name])
                         for i, name in enumerate(self.names) if processors[name] is not None and name not in done]  # fmt: skip
        self._getter = itemgetter(*self.names)
        self._multi: dict[int, str] = {}

    def write(self, conn, rows: list, waiting: Callable[[], None] | None = None) -> None:
        """SQLite: multi-row VALUES statements: the rows are bound in C and inserted in one step with the
        GIL released, so the prefetch thread normalizes the next page meanwhile (`waiting`, called before the
        first: core.ingest.pipeline.PagePipeline.writer_waits; executemany would release and retake the GIL
        per row)."""
        per = max(1, SQLITE_MAX_VARIABLES // len(self.names))
        if waiting is not None:
            waiting()
        for i in range(0, len(rows), per):
            chunk = rows[i : i + per]
            conn.exec_driver_sql(self._multi_sql(len(chunk)), tuple(chain.from_iterable(chunk)))

    def _multi_sql(self, n: int) -> str:
        sql = self._multi.get(n)
        if sql is None:
            head, rest = self.sql.split(" VALUES (", 1)
            group, tail = rest.split(") ON CONFLICT", 1)
            sql = f"{head} VALUES {', '.join([f'({group})'] * n)} ON CONFLICT{tail}"
            if len(self._multi) > 8:
                self._multi.clear()
            self._multi[n] = sql
        return sql

    def stamp(self, now: datetime):
        return self._stamp(now) if self._stamp else now

    def bind(self, row: dict) -> tuple:
        """The row's driver parameters, in `names` order."""
        values = list(self._getter(row))
        for i, convert in self._convert:
            v = values[i]
            if v is not None:
                values[i] = convert(v)
        return tuple(values)


def _fast_processor(type_, dialect, slow):
    """A C-speed equal of SQLite's bind processor for the exact types the normalizer produces (Decimal
    for exact decimals, date, bool), falling back to `slow` for anything else; None when there is none."""
    from core.storage.types import ExactDecimal

    if dialect.name != "sqlite":
        return None
    if isinstance(type_, ExactDecimal):
        exact, fast = Decimal, _decimal_text
    elif isinstance(type_, sa.Date) and not isinstance(type_, sa.DateTime):
        exact, fast = date, date.isoformat
    elif isinstance(type_, sa.Boolean):
        exact, fast = bool, int
    else:
        return None
    return lambda v: fast(v) if v.__class__ is exact else slow(v)


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


# SQLite's default SQLITE_MAX_VARIABLE_NUMBER since 3.32 (Debian 12 ships 3.40).
SQLITE_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999

_binders: dict[str, Binder | CopyPageWriter] = {}


def binder_for(dialect) -> Binder | CopyPageWriter:
    binder = _binders.get(dialect.name)
    if binder is None:  # PostgreSQL: binary COPY through a stage table (core.ingest.pgcopy)
        binder = _binders[dialect.name] = CopyPageWriter(dialect) if dialect.name == "postgresql" else Binder(dialect)
    return binder
