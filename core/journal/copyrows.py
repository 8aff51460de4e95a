"""Writing many journal rows: insert_rows, and on PostgreSQL copy_rows, a COPY … FROM STDIN on the driver's own
cursor (psycopg's public copy API), in the connection's transaction. An executemany of the same rows
(SQLAlchemy's parameters, psycopg's pipeline of one INSERT per row) cost several times as much, in the client
and in the server.

Each value first goes through its column type's own bind processor, as SQLAlchemy would bind it (ExactNumber's
Decimal, the JSON columns' Jsonb with the engine's serializer, the UTC datetime); psycopg then writes it as it
writes a parameter's text (a Decimal's exact digits, the JSON text), which the server parses by the column's
type: the same stored values. SQLAlchemy's events do not see the COPY.
column_processors and bound_rows are that binding, shared with insert_rows's SQLite executemany.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlmodel import Session

_COPIES: dict[tuple, tuple[Any, list]] = {}


def copy_rows(connection: sa.Connection, table: sa.Table, rows: list[dict]) -> bool:
    """COPY the rows (dicts of the same keys, column names) into the table; False, writing nothing, when
    SQLAlchemy would fill in a column default they leave out (the caller inserts them itself)."""
    dialect = connection.dialect
    keys = tuple(rows[0])
    if (table.name, keys) not in _COPIES:
        if any(c.default is not None and c.key not in keys for c in table.c):
            _COPIES[(table.name, keys)] = (None, [])
        else:
            names = sql.SQL(", ").join(sql.Identifier(table.c[k].name) for k in keys)
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table.name), names)
            procs = column_processors(table, keys, dialect)
            _COPIES[(table.name, keys)] = (statement, procs)
    statement, procs = _COPIES[(table.name, keys)]
    if statement is None:
        return False
    driver = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            write = copy.write_row
            for values in bound_rows(procs, rows):
                write(values)
    except psycopg.Error as exc:  # wrapped as every other statement's error is (sa.exc.IntegrityError, …)
        text = statement.as_string(driver)
        raise sa.exc.DBAPIError.instance(text, None, exc, psycopg.Error, dialect=dialect) from None
    return True


_SQLITE_INSERTS: dict[tuple, tuple[str, list] | None] = {}


def insert_rows(session: Session, table: sa.Table, rows: list[dict], *, copy: bool = False) -> None:
    """Insert rows (dicts of the same keys). On SQLite straight through the driver's executemany, each value
    passed through its column type's own bind processor (the exact numbers' text, JSON, dates): what
    SQLAlchemy would send, without its per-row parameter building, most of a full rebuild's writing time.
    On PostgreSQL, many rows (`copy`: a build's, thousands after a rebuild, and the daily sums) through a COPY
    (copy_rows); elsewhere through SQLAlchemy."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql" and copy and copy_rows(connection, table, rows):
        return
    driver_insert = _sqlite_insert(table, tuple(rows[0]), dialect) if dialect.name == "sqlite" else None
    if driver_insert is None:
        connection.execute(sa.insert(table), rows)
        return
    sql, procs = driver_insert
    connection.exec_driver_sql(sql, list(bound_rows(procs, rows)))


def _sqlite_insert(table: sa.Table, keys: tuple[str, ...], dialect: Any) -> tuple[str, list] | None:
    """The INSERT's SQL and its columns' processors for rows of these keys, compiled once; None when SQLAlchemy
    would fill in a column default the keys leave out (not for the driver's executemany)."""
    if (table.name, keys) not in _SQLITE_INSERTS:
        compiled = sa.insert(table).compile(dialect=dialect, column_keys=list(keys))
        names = list(compiled.positiontup or ())
        found = (str(compiled), column_processors(table, names, dialect)) if set(names) == set(keys) else None
        _SQLITE_INSERTS[(table.name, keys)] = found
    return _SQLITE_INSERTS[(table.name, keys)]


def column_processors(table: sa.Table, names: Sequence[str], dialect: Any) -> list[tuple[str, Any]]:
    """(column, its type's bind processor or None) for these columns: what SQLAlchemy binds each value with."""
    return [(name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names]


def bound_rows(processors: list[tuple[str, Any]], rows: list[dict]) -> Iterator[tuple]:
    """Each row's values in the processors' column order, each passed through its processor: column by column,
    then zipped (a generator per row cost twice as much). insert_rows's SQLite path sends the same."""
    columns = [[row[k] for row in rows] if p is None else [p(row[k]) for row in rows] for k, p in processors]
    return zip(*columns, strict=True)
