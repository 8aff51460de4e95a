"""core.journal.wanted: a bound list of wanted keys joined list-first to a table, on both databases."""

from __future__ import annotations

import warnings
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session

from core.journal.wanted import list_first, wanted_rows

META = sa.MetaData()
T = sa.Table("wanted_probe", META, sa.Column("k", sa.String(8)), sa.Column("d", sa.Date), sa.Column("v", sa.Integer))
COLUMNS = [sa.column("key", sa.String), sa.column("since", sa.Date)]


def test_the_list_joins_each_entry_to_its_rows_with_one_statement_text_and_no_cartesian_warning(engine):
    """Each wanted (key, since) finds its key's rows from that date on, an empty list finds none, and the
    statement's text does not depend on the list (SQLAlchemy caches it); SQLAlchemy's FROM linter, on by
    default, sees the join (a warning would fail here)."""
    META.create_all(engine)
    try:
        with Session(engine) as s:
            s.execute(T.insert(), [{"k": k, "d": date(2024, 1, d), "v": 10 * d + i}
                                   for i, k in enumerate("AB") for d in (1, 2, 3)])  # fmt: skip
            texts = set()
            for wanted_list, expected in (
                ([("A", date(2024, 1, 2))], [20, 30]),
                ([("A", date(2024, 1, 3)), ("B", date(2024, 1, 1))], [11, 21, 30, 31]),
                ([], []),
            ):
                wanted = wanted_rows(s, "wanted", COLUMNS, wanted_list)
                join = list_first(wanted, T, sa.and_(T.c.k == wanted.c.key, T.c.d >= wanted.c.since))
                query = sa.select(T.c.v).select_from(join)
                texts.add(str(query.compile(dialect=engine.dialect)))
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    assert sorted(s.execute(query).scalars()) == expected
            assert len(texts) == 1
            kind = "CROSS JOIN LATERAL" if engine.dialect.name == "postgresql" else "CROSS JOIN wanted_probe ON"
            assert kind in texts.pop()
    finally:
        META.drop_all(engine)
