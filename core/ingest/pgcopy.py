"""PostgreSQL page writes: a binary COPY of the page into a temporary table, then one INSERT … SELECT … ON CONFLICT.

psycopg's C code turns each value into its binary wire form as COPY streams the rows, so no value goes through a
Python conversion: not SQLAlchemy's bind processors, not the per-element loop with which psycopg dumps a
list into an array parameter. The stage table's columns have the table's types without their limits, and
`raw` is text: the server parses the record's JSON text into jsonb on the insert. So the real table's types still
refuse what they always refused (a string too long for its column, a number too large for NUMERIC(38, 18)), in
the one statement that writes the page, and nothing of the page is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from operator import itemgetter

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from core.storage.models import BrokerageTransaction

T = BrokerageTransaction.__table__
STAGE = "page_rows_stage"
_KEY_COLUMNS = ("user_id", "account_id", "snaptrade_activity_id", "created_at")  # what an update leaves as it was
# The table's column types as psycopg names them for a binary COPY; `raw` (JSONB) goes as its JSON text.
_COPY_TYPES = {"INTEGER": "int4", "BIGINT": "int8", "VARCHAR": "varchar", "TEXT": "text", "NUMERIC": "numeric",
               "DATE": "date", "TIMESTAMP WITH TIME ZONE": "timestamptz", "BOOLEAN": "bool", "JSONB": "text"}  # fmt: skip


class CopyPageWriter:
    """The PostgreSQL counterpart of core.ingest.binder.Binder: `bind` keeps the normalizer's values as they are, `write`
    stores a page of them with the upsert's rule (a stored row is rewritten only when its raw record changed)."""

    def __init__(self, dialect):
        self.names = [c.name for c in T.columns if c.name != "id"]
        types = [re.sub(r"[(].*?[)]", "", T.c[name].type.compile(dialect=dialect)) for name in self.names]
        self.copy_types = [_COPY_TYPES[t] for t in types]
        stage_columns = ", ".join(f"{name} {copy_type}" for name, copy_type in zip(self.names, self.copy_types))
        # One per database session, asked for with each page (IF NOT EXISTS): a flag kept on our side could outlive
        # a rolled-back transaction that created it. The insert takes the page out of it (DELETE … RETURNING), so a
        # second page in the same transaction starts empty; ON COMMIT DELETE ROWS then truncates it with the
        # commit, so its dead rows never pile up (temporary tables are not vacuumed).
        self.create_sql = f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ({stage_columns}) ON COMMIT DELETE ROWS"
        self.copy_sql = f"COPY {STAGE} ({', '.join(self.names)}) FROM STDIN (FORMAT BINARY)"
        stage = sa.table(STAGE, *(sa.column(name) for name in self.names))
        page = sa.delete(stage).returning(*stage.c).cte("page")
        picked = [sa.cast(page.c.raw, postgresql.JSONB) if n == "raw" else page.c[n] for n in self.names]
        insert = postgresql.insert(T).from_select(self.names, sa.select(*picked))
        insert = insert.on_conflict_do_update(
            index_elements=["account_id", "snaptrade_activity_id"],
            set_={name: insert.excluded[name] for name in self.names if name not in _KEY_COLUMNS},
            where=T.c.raw_hash != insert.excluded.raw_hash,
        )
        self.insert_sql = str(insert.compile(dialect=dialect))
        # Which written rows are new, without reading the table a second time: a row the upsert inserted has no
        # xmax, a row it rewrote carries the lock that ON CONFLICT DO UPDATE took on it (PostgreSQL has set it so
        # since 9.5; docs/INTERNALS.md, postgresql-upsert-xmax). A join of the page with the stored rows
        # cost every page an index probe per row; the stamps cannot tell (a row rewritten by a page stamped like
        # its creation would count as new).
        self.counting_sql = str(
            insert.returning(sa.literal_column(f"{T.name}.xmax = 0", sa.Boolean)).compile(dialect=dialect)
        )
        self._getter = itemgetter(*self.names)

    def stamp(self, now: datetime) -> datetime:
        return now

    def bind(self, row: dict) -> tuple:
        """The row's values in `names` order, as the normalizer made them (Decimal, date, str, bool)."""
        return self._getter(row)

    def write(self, conn: sa.Connection, rows: list, waiting: Callable[[], None] | None = None) -> None:
        """Stage the page and upsert it, in the caller's transaction (the caller commits); `waiting` is called
        once the rows are with the server (core.ingest.pipeline.PagePipeline.writer_waits)."""
        self._stage(conn, rows, waiting)
        conn.exec_driver_sql(self.insert_sql)

    def write_counting(self, conn: sa.Connection, params: dict[str, tuple[tuple, str]], counts,
                       waiting: Callable[[], None] | None = None) -> None:  # fmt: skip
        """Write a whole prepared page (activity id -> (bound row, raw hash)) without first reading which of
        its rows are stored: the upsert returns the rows it inserted or rewrote, the rest were unchanged.
        One statement less per page, for the pages of a run that does not track its inserts (store_page)."""
        self._stage(conn, [bound for bound, _ in params.values()], waiting)
        written = conn.exec_driver_sql(self.counting_sql).scalars().all()
        new = sum(written)
        counts.new += new
        counts.updated += len(written) - new
        counts.unchanged += len(params) - len(written)

    def _stage(self, conn: sa.Connection, rows: list, waiting: Callable[[], None] | None) -> None:
        conn.exec_driver_sql(self.create_sql)
        self.copy_rows(conn, rows)
        if waiting is not None:  # the rows are with the server
            waiting()

    def copy_rows(self, conn: sa.Connection, rows: list) -> None:
        """The COPY into the stage table, on the driver's own cursor (SQLAlchemy's events do not see it)."""
        driver = conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(self.copy_sql) as copy:
                copy.set_types(self.copy_types)
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:  # wrapped like every other statement's error (sa.exc.DataError, …)
            raise sa.exc.DBAPIError.instance(self.copy_sql, None, exc, psycopg.Error, dialect=conn.dialect) from None
