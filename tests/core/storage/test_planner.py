"""core.storage.planner: ANALYZE after an import only when autovacuum's own rule says the statistics are stale."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.ingest.journal_step import READ_AFTER_IMPORT
from core.storage.models import BrokerageTransaction
from core.storage.planner import analyze_if_stale
from tests.syncsupport import connect, make_user, sync_now

T = BrokerageTransaction.__table__
COLUMNS = ("account_id", "symbol")


def reltuples(session) -> float:
    """The planner's row estimate: -1 until a first VACUUM or ANALYZE."""
    query = sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)")
    return session.execute(query, {"t": T.name}).scalar()


def test_analyzes_only_past_autovacuums_threshold_and_only_on_postgresql(engine):
    with Session(engine) as s:
        if engine.dialect.name != "postgresql":
            assert analyze_if_stale(s, T, 1_000_000, COLUMNS) is False  # SQLite: nothing to do, nothing asked
            return
        threshold = float(s.execute(sa.text("SELECT current_setting('autovacuum_analyze_threshold')")).scalar())
        assert reltuples(s) == -1  # a new database's table: never analyzed
        assert analyze_if_stale(s, T, int(threshold), COLUMNS) is False and reltuples(s) == -1
        assert analyze_if_stale(s, T, int(threshold) + 1, COLUMNS) is True
        assert reltuples(s) == 0  # analyzed: the table is empty


def test_an_initial_import_past_the_threshold_is_analyzed_before_the_journal_reads_it(engine, sandbox):
    if engine.dialect.name != "postgresql":
        pytest.skip("ANALYZE's statistics are PostgreSQL's planner's")
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=300)
    runs = sync_now(engine, uid, trigger="initial")
    assert [r.status for r in runs] == ["completed"] and runs[0].transactions_new >= 300
    with Session(engine) as s:
        stored = s.execute(sa.select(sa.func.count()).select_from(T)).scalar()
        assert reltuples(s) == stored  # ANALYZE read every row of so small a table
        query = sa.text("SELECT attname FROM pg_stats WHERE tablename = :t")
        assert set(s.execute(query, {"t": T.name}).scalars()) == set(READ_AFTER_IMPORT)  # those columns only
