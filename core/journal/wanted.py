"""A list of wanted keys as a table to join, bound as parameters: one JSON value on SQLite, an array per column
on PostgreSQL. A VALUES list (sa.values) is part of its statement's text, so SQLAlchemy compiles that statement
anew for every list (it cannot cache it): that compiling was most of a continuation's time in Python. Bound,
the statement's text is the same whatever the list, compiled once and cached.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import Join
from sqlmodel import Session


def _plain(value: Any) -> Any:
    # A date as the ISO text both databases compare a date column with (SQLite stores it so).
    return value.isoformat() if isinstance(value, date) else value


def wanted_rows(session: Session, name: str, columns: Sequence[sa.ColumnClause], rows: Sequence[Sequence[Any]]
                ) -> Any:  # fmt: skip
    """A FROM clause named `name` with these columns (name and type, as sa.values takes them) holding these
    rows (strings, integers, dates, None): SQLite's json_each over a JSON list of lists, PostgreSQL's unnest of
    an array per column. Join it with list_first."""
    if session.get_bind().dialect.name == "postgresql":
        # One array per column: the planner counts an unnest of a bound array exactly (jsonb_to_recordset it
        # guesses at 100 rows, and then hash-joined a sequential scan of the lots).
        arrays = list(zip(*rows, strict=True)) or [()] * len(columns)
        listed = sa.func.unnest(*(sa.bindparam(f"{name}_{c.name}", list(values), type_=postgresql.ARRAY(c.type))
                                  for c, values in zip(columns, arrays, strict=True)))  # fmt: skip
        return listed.table_valued(*columns).render_derived(name=name)
    data = json.dumps([[_plain(v) for v in row] for row in rows])
    each = sa.func.json_each(sa.bindparam(f"{name}_json", data, type_=sa.Text)).table_valued("value")
    picked = (sa.type_coerce(sa.func.json_extract(each.c.value, f"$[{i}]"), c.type).label(c.name)
              for i, c in enumerate(columns))  # fmt: skip
    return sa.select(*picked).subquery(name)


class _ListFirst(Join):
    inherit_cache = True


def list_first(wanted: Any, table: Any, onclause: Any) -> Join:
    """wanted_rows joined to a table, the list read first, then the table's rows of each wanted row through
    its index: on SQLite a CROSS JOIN, which its planner keeps in that order (it costs json_each as almost
    free, so given statistics of a small table it scanned the table with the list inside); on PostgreSQL a
    LATERAL subquery (below)."""
    return _ListFirst(wanted, table, onclause)


@compiles(_ListFirst, "sqlite")
def _cross_join(join: _ListFirst, compiler: Any, **kw: Any) -> str:
    kw.pop("asfrom", None)
    left = compiler.process(join.left, asfrom=True, **kw)
    right = compiler.process(join.right, asfrom=True, **kw)
    return f"{left} CROSS JOIN {right} ON {compiler.process(join.onclause, **kw)}"


@compiles(_ListFirst, "postgresql")
def _lateral_join(join: _ListFirst, compiler: Any, **kw: Any) -> str:
    # The table's rows of each wanted row, as a subquery the planner may not pull up (OFFSET 0): a nested loop
    # over the list, each through the table's index. The join's own plan guessed the pairs' rows from their
    # whole history, not from their dates on, and hash-joined a sequential scan of the account's activities.
    kw.pop("asfrom", None)
    left = compiler.process(join.left, asfrom=True, **kw)
    table = compiler.preparer.quote(join.right.name)
    where = compiler.process(join.onclause, **kw)
    return f"{left} CROSS JOIN LATERAL (SELECT * FROM {table} WHERE {where} OFFSET 0) AS {table}"
