"""core.ingest.page_write: a page's counts and rewrites, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, select

from core.storage.models import BrokerageTransaction


def test_a_page_written_without_tracking_counts_new_rewritten_and_unchanged_rows_and_rewrites_only_changed(engine):
    """A run that tracks no inserts (an initial import, or its resume) writes each page without reading its
    stored rows first on PostgreSQL: the counts come from the upsert, and they agree with the lookup's."""
    from datetime import UTC, datetime, timedelta

    from core.ingest import page_write
    from core.snaptrade.client import ActivityPage
    from tests.factories import make_trader

    with Session(engine, expire_on_commit=False) as s:
        user, _, account = make_trader(s)

    def activity(i: int, amount: str) -> dict:
        return {"id": f"a-{i}", "type": "BUY", "trade_date": "2024-03-22T10:00:00Z", "units": "1", "price": "2",
                "amount": amount, "currency": {"code": "USD"}, "symbol": {"symbol": "AAPL", "id": "s1"}}  # fmt: skip

    def store(activities: list[dict], now: datetime) -> page_write.PageCounts:
        page = ActivityPage(activities, len(activities), 0, 1000)
        prepared = page_write.prepare_page(engine.dialect, user_id=user.id, account_id=account.id, page=page, run_id=None,
                                     now=now, track=False)  # fmt: skip
        with Session(engine) as s:
            counts = page_write.store_page(s, account.id, prepared)
            s.commit()
        return counts

    lookups = []
    sa.event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_: lookups.append(sql.startswith("SELECT")))

    first = datetime(2026, 11, 29, tzinfo=UTC)
    assert store([activity(1, "-2"), activity(2, "-2")], first) == page_write.PageCounts(fetched=2, new=2,
                                                                                   latest_trade_date=date(2024, 3, 22))  # fmt: skip
    again = store([activity(1, "-2"), activity(2, "-2.5"), activity(3, "-2")], first + timedelta(hours=1))
    assert (again.new, again.updated, again.unchanged) == (1, 1, 1)
    with Session(engine) as s:
        stamps = {t.snaptrade_activity_id: t.updated_at for t in s.exec(select(BrokerageTransaction))}
    assert stamps["a-1"] == first and stamps["a-2"] == stamps["a-3"] == first + timedelta(hours=1)
    if engine.dialect.name == "postgresql":  # one statement less per page: no read of the page's stored rows
        assert lookups.count(True) == 1  # the stamps just read


def test_the_lookup_of_a_pages_stored_rows_is_one_statement_whatever_the_page_size(engine):
    """The ids go as one parameter (PostgreSQL an array, SQLite a JSON array): the same SQL for every page, never
    rendered anew per page, and still a unique-index lookup; ids with quotes, backslashes or non-ASCII text match."""
    from datetime import UTC, datetime

    from core.ingest import page_write
    from core.snaptrade.client import ActivityPage
    from tests.factories import make_trader

    with Session(engine, expire_on_commit=False) as s:
        user, _, account = make_trader(s)
    odd = ['q"uote', "back\\slash", "é-1", "株-2", "\U0001f600"]
    stored = [*odd, *(f"a-{i}" for i in range(600))]
    activities = [{"id": i, "type": "BUY", "trade_date": "2024-03-22", "units": "1", "price": "2", "amount": "-2",
                   "currency": "USD"} for i in stored]  # fmt: skip
    prepared = page_write.prepare_page(engine.dialect, user_id=user.id, account_id=account.id, run_id=None,
                                       page=ActivityPage(activities, len(activities), 0, 1000),
                                       now=datetime.now(UTC), track=False)  # fmt: skip
    statements = []
    sa.event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    with Session(engine) as s:
        page_write.store_page(s, account.id, prepared)
        s.commit()
        statements.clear()
        small = [*odd, "not-stored"]
        large = [*stored, *(f"b-{i}" for i in range(400))]
        for ids in (small, large):
            found = {r[0] for r in s.execute(page_write._existing_query(engine, account.id, ids))}
            assert found == set(ids) & set(stored)
        assert len(statements) == 2 and statements[0] == statements[1]
        if engine.dialect.name == "sqlite":
            plan = s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statements[0], (account.id, "[]")).all()
            assert any("USING INDEX sqlite_autoindex_brokerage_transactions_1" in row[3] for row in plan), plan


def _pg_only(engine) -> None:
    import pytest

    if engine.dialect.name != "postgresql":
        pytest.skip("the PostgreSQL page write (core.ingest.pgcopy)")


def test_the_postgresql_page_upsert_counts_new_rows_without_reading_the_table_again(engine):
    """The counting upsert tells a new row from a rewritten one by the row's xmax, not by joining the page with
    the stored rows: that join cost every page one index probe per row (or a scan of the table before ANALYZE)."""
    _pg_only(engine)
    from core.ingest.binder import binder_for

    writer = binder_for(engine.dialect)
    with engine.connect() as c:
        c.exec_driver_sql(writer.create_sql)
        plan = "\n".join(c.exec_driver_sql("EXPLAIN " + writer.counting_sql).scalars())
    assert "Insert on brokerage_transactions" in plan
    assert "Scan on brokerage_transactions" not in plan and "Scan using" not in plan, plan


def test_the_postgresql_page_upsert_counts_rows_written_earlier_in_the_same_transaction(engine):
    """xmax as the new/rewritten tell: a row inserted by an earlier page of the same transaction (a savepoint
    between them) and rewritten by the next one counts as rewritten; one inserted inside the savepoint, as new."""
    _pg_only(engine)
    from datetime import UTC, datetime

    from core.ingest import page_write
    from core.snaptrade.client import ActivityPage
    from tests.factories import make_trader

    with Session(engine, expire_on_commit=False) as s:
        user, _, account = make_trader(s)
    now = datetime(2026, 11, 29, tzinfo=UTC)

    def prepared(*amounts: tuple[int, str]) -> page_write.PreparedPage:
        activities = [{"id": f"a-{i}", "type": "BUY", "trade_date": "2024-03-22", "units": "1", "amount": amount,
                       "currency": "USD", "symbol": "AAPL"} for i, amount in amounts]  # fmt: skip
        return page_write.prepare_page(engine.dialect, user_id=user.id, account_id=account.id, run_id=None, now=now,
                                       page=ActivityPage(activities, len(activities), 0, 1000), track=False)  # fmt: skip

    with Session(engine) as s:
        first = page_write.store_page(s, account.id, prepared((1, "-2"), (2, "-2")))
        with s.begin_nested():
            second = page_write.store_page(s, account.id, prepared((1, "-3"), (2, "-2"), (3, "-1")))
        third = page_write.store_page(s, account.id, prepared((3, "-4")))
        s.commit()
    assert (first.new, first.updated, first.unchanged) == (2, 0, 0)
    assert (second.new, second.updated, second.unchanged) == (1, 1, 1)
    assert (third.new, third.updated, third.unchanged) == (0, 1, 0)


def test_a_page_write_says_when_its_rows_are_with_the_database_before_the_upsert_runs(engine):
    """store_page's `waiting` (the pipeline's cue to prepare the next page) comes once per page, after the rows
    are handed over (PostgreSQL: copied into the stage table) and before the statement that stores them."""
    from datetime import UTC, datetime

    from core.ingest import page_write
    from tests.factories import make_trader

    with Session(engine, expire_on_commit=False) as s:
        user, _, account = make_trader(s)
    activities = [{"id": f"a-{i}", "type": "BUY", "trade_date": "2024-03-22", "units": "1", "amount": "-2",
                   "currency": "USD", "symbol": "AAPL"} for i in range(5)]  # fmt: skip
    prepared = page_write.prepare_page(engine.dialect, user_id=user.id, account_id=account.id, run_id=None,
                                       page=page_write.ActivityPage(activities, 5, 0, 1000),
                                       now=datetime(2026, 11, 29, tzinfo=UTC), track=False)  # fmt: skip
    seen = []
    with Session(engine) as s:

        def waiting() -> None:
            c = s.connection()
            staged = (c.exec_driver_sql("SELECT count(*) FROM page_rows_stage").scalar_one()
                      if engine.dialect.name == "postgresql" else None)  # fmt: skip
            seen.append((staged, c.exec_driver_sql("SELECT count(*) FROM brokerage_transactions").scalar_one()))

        counts = page_write.store_page(s, account.id, prepared, waiting=waiting)
        s.commit()
    assert seen == [(5 if engine.dialect.name == "postgresql" else None, 0)] and counts.new == 5
