"""bench.seed on PostgreSQL: the seed's VACUUM must leave the transactions table all-visible, or every
index-only scan of the heavy user reads the heap and the query benchmark measures the seed's luck."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from bench.seed import _vacuum_until_all_visible, all_visible_share
from core.storage.db import create_db_engine
from tests.conftest import new_pg_database
from tests.factories import make_trader, make_transaction


@pytest.fixture
def pg_engine(pg_server, pg_template):
    engine = create_db_engine(new_pg_database(pg_server))
    yield engine
    engine.dispose()


def _all_visible_share(engine) -> float:
    with engine.connect() as c:
        return all_visible_share(c)


def _insert_rows(engine, n: int) -> None:
    from sqlmodel import Session

    with Session(engine) as session:
        _, _, account = make_trader(session, "heavy")
        for i in range(n):
            make_transaction(session, account, amount=str(i), description="x" * 200)


def test_vacuum_waits_out_an_old_snapshot_and_leaves_the_table_all_visible(pg_engine):
    holder = pg_engine.connect().execution_options(isolation_level="REPEATABLE READ")
    holder.execute(sa.text("SELECT 1"))  # its transaction's snapshot is now older than the rows below
    _insert_rows(pg_engine, 300)

    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE brokerage_transactions"))
        assert _all_visible_share(pg_engine) < 0.5, "a plain VACUUM cannot mark rows an open snapshot may not see"

        with pytest.raises(RuntimeError, match="all-visible"):
            _vacuum_until_all_visible(c, attempts=1)

        release = threading.Timer(0.5, lambda: (holder.rollback(), holder.close()))
        release.start()
        started = time.monotonic()
        share = _vacuum_until_all_visible(c, attempts=5)
        release.join()
    assert share >= 0.99
    assert _all_visible_share(pg_engine) >= 0.99
    assert time.monotonic() - started >= 0.5  # it did wait for the snapshot to go


def test_seed_writes_a_chunk_per_statement_so_the_counts_look_like_a_syncs(pg_engine):
    """psycopg's executemany is one statement per row, each appending a count delta: the seed batches
    1,000 rows per statement, as a sync writes a page, so the heavy user's data_version reads what a
    real one would (a delta per page), and the kept counts equal the rows."""
    from sqlmodel import Session

    from bench.seed import SeedPlan, seed
    from core.reads import transactions as q
    from core.storage.models import BrokerageTransaction, UserTransactionCount

    seeded = seed(pg_engine, SeedPlan(users=2, rows_per_user=1_500, big_user_rows=4_200, chunk=5_000))
    T, C = BrokerageTransaction.__table__, UserTransactionCount.__table__
    with Session(pg_engine) as s:
        rows = dict(s.execute(sa.select(T.c.user_id, sa.func.count()).group_by(T.c.user_id)).all())
        deltas = dict(s.execute(sa.select(C.c.user_id, sa.func.count()).group_by(C.c.user_id)).all())
        assert q.data_version(s, seeded.big_user_id)[0] == rows[seeded.big_user_id] == 4_200
        assert deltas[seeded.big_user_id] == 5  # 1,000 + 1,000 + 1,000 + 1,000 + 200
        assert all(q.data_version(s, u)[0] == n for u, n in rows.items())
