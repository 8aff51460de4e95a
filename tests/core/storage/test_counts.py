"""core.storage.counts and the triggers behind it (migration 0004), on SQLite and PostgreSQL: the kept count
equals count(*) after every kind of write, the revision moves with every change, rollbacks take the
deltas with them, folding keeps the sum, and reading never touches the transactions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.reads import transactions as q
from core.storage import counts
from core.storage.models import AppUser, BrokerageAccount, BrokerageTransaction, UserTransactionCount
from tests import factories as f
from tests.syncsupport import connect, make_user, sync_now

NOW = datetime.now(UTC)
T = BrokerageTransaction.__table__
C = UserTransactionCount.__table__


@pytest.fixture
def book(session):
    """alice: a USD and a CAD account with 6 rows; bob: 1 row."""
    alice, conn, usd = f.make_trader(session, "alice")
    cad = f.make_account(session, conn, account_name="TFSA", currency="CAD")
    rows = [f.make_transaction(session, usd, transaction_type="BUY", amount="-1502.50") for _ in range(5)]
    rows.append(f.make_transaction(session, cad, transaction_type="CONTRIBUTION", amount="1000", currency="CAD"))
    bob, _, bob_acct = f.make_trader(session, "bob")
    f.make_transaction(session, bob_acct, transaction_type="DIVIDEND", amount="999")
    return alice, bob, usd, cad, rows


def true_counts(session) -> dict[int, int]:
    return dict(session.execute(sa.select(T.c.user_id, sa.func.count()).group_by(T.c.user_id)).all())


def kept_counts(session) -> dict[int, int]:
    """Every user's kept count, zeros dropped (a user whose rows were all deleted keeps a 0)."""
    sums = session.execute(sa.select(C.c.user_id, sa.func.sum(C.c.delta)).group_by(C.c.user_id)).all()
    return {u: int(n) for u, n in sums if n}


def test_counts_follow_every_kind_of_write(session, book):
    """The kept count equals count(*) after bulk inserts, an update, a row moved between users, a
    multi-row delete and cascades; data_version moves at each step, even when the count does not."""
    alice, bob, usd, cad, rows = book
    assert kept_counts(session) == true_counts(session) == {alice.id: 6, bob.id: 1}
    assert q.data_version(session, alice.id)[0] == 6
    seen = {q.data_version(session, alice.id)}

    def step(expected: dict[int, int]) -> None:
        session.commit()
        assert kept_counts(session) == true_counts(session) == expected
        version = q.data_version(session, alice.id)
        assert version not in seen, "data_version did not move"
        seen.add(version)

    f.bulk_transactions(session, f.random_transactions(cad, 250, seed=3))  # one executemany
    step({alice.id: 256, bob.id: 1})
    session.execute(sa.update(T).where(T.c.id == rows[0].id).values(amount=Decimal("-1502.51")))
    step({alice.id: 256, bob.id: 1})  # same count, new revision
    session.execute(sa.update(T).where(T.c.id == rows[5].id).values(user_id=bob.id))
    step({alice.id: 255, bob.id: 2})
    session.execute(sa.delete(T).where(T.c.account_id == cad.id, T.c.transaction_type == "BUY"))
    buys = sum(1 for r in f.random_transactions(cad, 250, seed=3) if r["transaction_type"] == "BUY")
    assert buys > 0
    step({alice.id: 255 - buys, bob.id: 2})
    # Cascade: the account's rows go, the one moved to bob included.
    session.execute(sa.delete(BrokerageAccount.__table__).where(BrokerageAccount.__table__.c.id == cad.id))
    step({alice.id: 5, bob.id: 1})
    before_bob = q.data_version(session, bob.id)
    session.execute(sa.delete(AppUser.__table__).where(AppUser.__table__.c.id == alice.id))  # cascade
    session.commit()
    assert kept_counts(session) == true_counts(session) == {bob.id: 1}
    assert session.execute(sa.select(sa.func.count()).where(C.c.user_id == alice.id)).scalar() == 0
    assert q.data_version(session, alice.id) == (0, 0, 0)
    assert q.data_version(session, bob.id) == before_bob, "another user's writes left bob's version alone"


def test_counts_roll_back_with_the_rows(engine, book, session):
    alice, _, usd, _, _ = book
    before = q.data_version(session, alice.id)
    session.commit()
    with engine.connect() as c:
        c.execute(sa.insert(T), [{**f.transaction_row(usd), "created_at": NOW, "updated_at": NOW} for _ in range(3)])
        assert c.execute(sa.select(sa.func.sum(C.c.delta)).where(C.c.user_id == alice.id)).scalar() == 9
        c.rollback()
    assert q.data_version(session, alice.id) == before
    assert kept_counts(session) == true_counts(session)


def test_truncate_on_postgresql_empties_the_counts(engine, book, session):
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    alice, *_ = book
    session.commit()
    with engine.begin() as c:
        c.execute(sa.text("TRUNCATE brokerage_transactions"))
    assert kept_counts(session) == true_counts(session) == {}
    assert q.data_version(session, alice.id)[:2] == (0, 0)


def _activity(i: int, amount: str) -> dict:
    return {"id": f"page-{i}", "type": "DIVIDEND", "trade_date": "2026-03-02T00:00:00Z", "amount": amount,
            "currency": {"code": "USD"}, "symbol": {"symbol": "MSFT", "id": "s1"}, "description": "Dividend"}  # fmt: skip


def test_the_sync_upsert_counts_new_rows_once_and_moves_the_revision_on_changes(session, book):
    """The sync's one-statement page upsert: new rows are counted, unchanged ones leave the version alone,
    a changed record (an update through ON CONFLICT) moves the revision and not the count."""
    from core.ingest.page_write import write_page
    from core.snaptrade.client import ActivityPage

    alice, _, usd, _, _ = book

    def write(amounts: list[str]):
        page = ActivityPage([_activity(i, a) for i, a in enumerate(amounts)], len(amounts), 0, 1000)
        result = write_page(session, user_id=alice.id, account=usd, page=page, run_id=None, now=NOW)
        session.commit()
        return result, q.data_version(session, alice.id)

    result, v1 = write(["1.00"] * 40)
    assert (result.new, v1[0]) == (40, 46)
    result, v2 = write(["1.00"] * 40)
    assert (result.unchanged, v2) == (40, v1)
    result, v3 = write(["1.00"] * 39 + ["2.00"])
    assert (result.updated, v3[0]) == (1, 46) and v3[1] > v2[1]
    result, v4 = write(["1.00"] * 39 + ["2.00"] + ["3.00"] * 5)
    assert (result.new, result.unchanged, v4[0]) == (5, 40, 51)
    assert kept_counts(session) == true_counts(session)


def _deltas(session, user_id: int) -> list[int]:
    return list(session.execute(sa.select(C.c.delta).where(C.c.user_id == user_id).order_by(C.c.id)).scalars())


def test_postgresql_appends_one_delta_per_statement_and_fold_keeps_the_sum(engine, session, book):
    """PostgreSQL: each write statement appends one delta per user (no row updated, so no lock shared by
    two writers); fold leaves one row with the same sum and a new revision. SQLite keeps one row per user."""
    alice, _, usd, _, _ = book
    session.commit()
    for i in range(4):  # one multi-row INSERT each (executemany would be one statement per row)
        rows = [{**r, "created_at": NOW, "updated_at": NOW} for r in f.random_transactions(usd, 10, seed=10 + i)]
        session.execute(sa.insert(T).values(rows))
        session.commit()
    deltas = _deltas(session, alice.id)
    before = counts.user_count(session, alice.id)
    assert before[0] == 46
    if engine.dialect.name == "sqlite":
        assert deltas == [46]
        assert counts.fold(session, alice.id) == 0
        assert counts.user_count(session, alice.id) == before
        return
    assert deltas[-4:] == [10, 10, 10, 10] and sum(deltas) == 46
    assert counts.fold(session, alice.id) == len(deltas)
    assert _deltas(session, alice.id) == [46]
    after = counts.user_count(session, alice.id)
    assert after[0] == 46 and after[1] > before[1]
    assert counts.fold(session, alice.id) == 0, "one row: nothing to fold"


def test_fold_leaves_uncommitted_deltas_of_a_concurrent_writer_alone(engine, session, book):
    """A sync of another connection of the same user is mid-page when the fold runs: its delta is not
    committed, so the fold neither sees nor deletes it, and once it commits the sum is exact."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time and one row per user")
    alice, _, usd, _, _ = book
    f.bulk_transactions(session, f.random_transactions(usd, 7, seed=1))
    with engine.connect() as writer:
        writer.execute(
            sa.insert(T), [{**f.transaction_row(usd), "created_at": NOW, "updated_at": NOW} for _ in range(3)]
        )
        folded = []
        t = threading.Thread(target=lambda: folded.append(counts.fold(Session(engine), alice.id)))
        t.start()
        t.join(timeout=30)
        assert folded and folded[0] >= 2, "the fold ran without waiting on the open writer"
        writer.commit()
    assert counts.user_count(session, alice.id)[0] == 16
    assert kept_counts(session) == true_counts(session)


def test_data_version_reads_the_counts_index_and_never_the_transactions(engine, session, book):
    """Many users with many deltas (per-row statements append one each on PostgreSQL): the user's
    count and revision come from their own index entries, not from their 2,006 transactions."""
    alice, _, usd, _, _ = book
    for i in range(30):
        _, _, account = f.make_trader(session, f"other{i}")
        f.bulk_transactions(session, f.random_transactions(account, 20, seed=i))
    f.bulk_transactions(session, f.random_transactions(usd, 2000, seed=5))
    counts.fold(session, alice.id)  # as after her sync run
    stmt = sa.select(sa.func.sum(C.c.delta), sa.func.max(C.c.id)).where(C.c.user_id == alice.id)
    sql = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as c:
        if engine.dialect.name == "sqlite":
            c.exec_driver_sql("ANALYZE")
            plan = " ".join(str(r[-1]) for r in c.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "USING INDEX idx_user_transaction_counts_user (user_id=?)" in plan, plan
        else:
            c.exec_driver_sql("ANALYZE user_transaction_counts")
            plan = " ".join(r[0] for r in c.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "idx_user_transaction_counts_user" in plan, plan
    statements: list[str] = []

    def listener(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        assert q.data_version(session, alice.id)[0] == 2006
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert statements and not [s for s in statements if "brokerage_transactions" in s], statements


def test_a_finished_run_folds_the_users_deltas(engine, sandbox):
    """A sync of many pages appends a delta per page on PostgreSQL; the run's end folds them to one."""
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=2500)
    runs = sync_now(engine, uid, trigger="initial")
    assert [r.status for r in runs] == ["completed"] and runs[0].pages_done > 1
    with Session(engine) as s:
        assert len(_deltas(s, uid)) == 1
        assert counts.user_count(s, uid)[0] == true_counts(s)[uid] >= 2500
