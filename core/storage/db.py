"""Engine and sessions for SQLite (default) and PostgreSQL.

SQLite gets WAL, a busy timeout and foreign keys; `decimal_sum` is an exact SUM on both dialects,
because SQLite's own SUM would turn our exact decimal text into floats.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from core.storage import jsonexact
from core.storage.types import DecimalTextSum, ExactDecimal


def _sqlite_from_hint(self, table, text: str | None) -> str | None:
    return text


# A reach into SQLAlchemy's compiler, guarded: docs/INTERNALS.md (sqlalchemy-sqlite-table-hint).
# SQLite's `INDEXED BY name` is a table hint, but SQLAlchemy's SQLite compiler drops every table hint:
# this renders `select(...).with_hint(table, "INDEXED BY name", "sqlite")` (see core.reads.transactions.covered).
SQLiteCompiler.get_from_hint_text = _sqlite_from_hint

SQLITE_BUSY_TIMEOUT_MS = 30000
# WAL pages before a commit checkpoints them into the database file (SQLite's default: 1,000, 4 MiB). A sync
# commits each 1,000-activity page, a few MiB of rows and index pages, so by default nearly every page's commit
# copied the WAL back, rewriting the same hot index pages again and again. With 10,000 (the WAL grows to about
# 40 MiB) a 10,000-activity import took 0.92x the time, interleaved (docs/PERFORMANCE.md section 1). Durability is
# unchanged: a committed transaction is in the WAL either way.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_connect(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
    cur.close()


def normalize_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def create_db_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=jsonexact.dumps,
            json_deserializer=jsonexact.loads,
        )
        event.listen(engine, "connect", _sqlite_connect)
        return engine
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        json_serializer=jsonexact.dumps,
        json_deserializer=jsonexact.loads,
    )


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process (the default URL comes from settings)."""
    if url is None:
        from core.settings import get_settings

        url = get_settings().resolved_database_url
    url = normalize_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = create_db_engine(url)
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def begin_writing(session: Session) -> None:
    """On SQLite, begin the session's transaction as a writer (BEGIN IMMEDIATE) unless it already writes.

    A SQLite transaction that reads before it writes fails at its first write, at once and without the busy
    timeout ("database is locked"), when another connection committed since its read began: a statement still
    being read holds that snapshot (pysqlite begins a transaction only at the first write). A transaction that
    interleaves lazy reads with writes (the journal's upkeep) calls this first, so it waits for the other
    writer and reads the latest. PostgreSQL needs nothing: its writers do not conflict on a snapshot."""
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(bind) -> bool:
    return bind.dialect.name == "postgresql"


def decimal_sum(bind, column):
    """An exact SUM that yields a Decimal on both dialects (SQLite's built-in SUM is float):
    NUMERIC SUM on PostgreSQL; on SQLite the exact texts concatenated in C, summed on the way out."""
    if bind.dialect.name == "sqlite":
        # A literal separator: bound as a parameter, SQLite re-reads it per row (+60% on 200k rows).
        return sa.type_coerce(sa.func.group_concat(column, sa.literal_column("','")), DecimalTextSum())
    return sa.type_coerce(sa.func.sum(column), ExactDecimal())
