"""core.journal.upkeep and core.journal.store: the stored journal kept current incrementally (only the dirty
(account, instrument) pairs, marked by migration 0006's triggers), equal to a rebuild from scratch and to the
engine run over every stored activity, whatever writes the rows and whatever crashes; on both databases."""

from __future__ import annotations

import importlib
import random
import re
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.journal import upkeep
from core.journal.fills import POSITION_TYPES, row_instrument
from core.journal.rows import pair_key
from core.journal.upkeep import rebuild_user, upkeep_accounts
from core.storage.models import BrokerageAccount, BrokerageTransaction, JournalRoundTrip, utcnow
from tests import factories as f
from tests.core.journal.builders import (
    OPT,
    assert_journal_is_current,
    dirty_count,
    journal_insert_parameter_sets,
    snapshot,
)
from tests.gccount import young_collections
from tests.syncsupport import connect, make_user, sync_now

PUT = "MSFT  270115P00300000"


def insert(session, rows: list[dict]) -> None:
    """factories.bulk_transactions for rows of different shapes (one executemany needs the same keys)."""
    keys = set().union(*rows)
    f.bulk_transactions(session, [{k: row.get(k) for k in keys} for row in rows])


def marks(session, account_id: int) -> set[str]:
    return set(session.execute(sa.text("SELECT pair_key FROM journal_dirty_pairs WHERE account_id = :a"),
                               {"a": account_id}).scalars())  # fmt: skip


# --------------------------------------------------------------------------- the triggers' rule


def test_the_migration_knows_the_engines_position_types():
    migration = importlib.import_module("migrations.versions.0006_journal_tables")
    assert set(migration.POSITION_TYPES) == POSITION_TYPES


def test_triggers_mark_the_pair_of_every_row_the_engine_would_read_by_the_same_rule(engine):
    """The SQL spelling of the instrument (0006) agrees with fills.row_instrument on every shape of row, and a
    row that can never matter to the journal (a fee without a symbol) marks nothing."""
    shapes = [
        dict(transaction_type="BUY", symbol="AAPL", security_type="cs"),
        dict(transaction_type="DIVIDEND", symbol="KO"),
        dict(transaction_type="SELL", symbol="AAPL", security_type="option", option_ticker=OPT),
        dict(transaction_type="OPTIONEXPIRATION", symbol="MSFT", option_ticker=PUT),  # no security type
        dict(transaction_type="BUY", symbol="AAPL", security_type="option"),  # an option without a ticker
        dict(transaction_type="OPTIONASSIGNMENT", symbol="TSLA"),  # no contract: unplaceable, stays with TSLA
        dict(transaction_type="BUY", symbol=None),  # a trade naming nothing: the "" pair
        dict(transaction_type="STOCK_MERGER", symbol="XYZ"),
        dict(transaction_type="FEE", symbol=None),
        dict(transaction_type="CONTRIBUTION", symbol=None),
    ]
    with Session(engine, expire_on_commit=False) as s:
        _, _, acct = f.make_trader(s)
        rows = [f.transaction_row(acct, **shape) for shape in shapes]
        insert(s, rows)
        stored = s.exec(select(BrokerageTransaction)).all()
        expected = {pair_key(r) for r in stored if row_instrument(r) or r.transaction_type in POSITION_TYPES}
        assert expected == {"AAPL", "KO", OPT, PUT, "", "TSLA", "XYZ"}
        assert marks(s, acct.id) == expected


def test_updates_mark_the_old_and_the_new_pair_and_deletes_the_old(engine):
    with Session(engine, expire_on_commit=False) as s:
        _, _, acct = f.make_trader(s)
        f.bulk_transactions(s, [f.transaction_row(acct, snaptrade_activity_id="a", symbol="AAPL", quantity="1",
                                                  price="10")])  # fmt: skip
        upkeep_accounts(s, [acct.id])
        assert marks(s, acct.id) == set()
        s.execute(sa.update(BrokerageTransaction).where(BrokerageTransaction.snaptrade_activity_id == "a")
                  .values(symbol="MSFT"))  # fmt: skip
        s.commit()
        assert marks(s, acct.id) == {"AAPL", "MSFT"}
        upkeep_accounts(s, [acct.id])
        assert [t.instrument for t in s.exec(select(JournalRoundTrip))] == ["MSFT"]
        s.execute(sa.delete(BrokerageTransaction))
        s.commit()
        assert marks(s, acct.id) == {"MSFT"}
        upkeep_accounts(s, [acct.id])
        assert s.exec(select(JournalRoundTrip)).all() == []


def test_deleting_a_user_or_an_account_with_a_journal_deletes_it_all(engine):
    """The triggers write no mark for an account being deleted (its rows go by cascade)."""
    with Session(engine, expire_on_commit=False) as s:
        user, conn, acct = f.make_trader(s)
        other = f.make_account(s, conn)
        for a in (acct, other):
            f.bulk_transactions(s, [f.transaction_row(a, symbol="AAPL", quantity="2", price="5")])
        upkeep_accounts(s, [acct.id, other.id])
        assert len(s.exec(select(JournalRoundTrip)).all()) == 2
        s.execute(sa.delete(BrokerageAccount).where(BrokerageAccount.id == other.id))
        s.commit()
        assert len(s.exec(select(JournalRoundTrip)).all()) == 1
        s.execute(sa.text("DELETE FROM app_users WHERE id = :u"), {"u": user.id})
        s.commit()
        for table in ("journal_round_trips", "journal_positions", "journal_open_lots", "journal_dirty_pairs"):
            assert s.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0


# --------------------------------------------------------------------------- incremental equals full


def random_row(rng: random.Random, account: BrokerageAccount, serial: int) -> dict:
    kind = rng.choice(["BUY", "BUY", "SELL", "SELL", "SPLIT", "STOCK_DIVIDEND", "EXTERNAL_ASSET_TRANSFER_IN",
                       "OPTIONEXPIRATION", "DIVIDEND", "FEE", "STOCK_MERGER", "REI"])  # fmt: skip
    option = rng.random() < 0.3 and kind in ("BUY", "SELL", "OPTIONEXPIRATION")
    symbol = rng.choice(["AAPL", "MSFT", "BTC", None]) if not option else "AAPL"
    row = dict(
        snaptrade_activity_id=f"{account.id}-{serial}", transaction_type=kind, symbol=symbol,
        security_type="crypto" if symbol == "BTC" else ("option" if option else "cs"),
        quantity=Decimal(rng.randint(-30, 30)) / rng.choice([1, 1, 4]), price=Decimal(rng.randint(0, 5000)) / 100,
        fee=Decimal(rng.randint(0, 300)) / 100, currency=rng.choice(["USD", "USD", "CAD"]),
        trade_date=date(2025, 1, 1) + timedelta(days=rng.randint(0, 40)),
        trade_timestamp=rng.choice([None, f"2025-01-0{rng.randint(1, 9)}T1{rng.randint(0, 9)}:00:00Z"]),
    )  # fmt: skip
    if option:
        mini = rng.choice([None, False, True, "odd"])
        row.update(option_ticker=rng.choice([OPT, PUT]), option_action=rng.choice([None, "BUY_TO_OPEN", "SELL_TO_CLOSE"]),
                   raw={"option_symbol": {"is_mini_option": mini}} if mini is not None else {"option_symbol": {}})  # fmt: skip
    return f.transaction_row(account, **row)


def test_random_writes_of_every_kind_then_upkeep_equal_the_engine_and_a_full_rebuild(engine):
    """Inserts, updates that move rows between instruments and types, deletes; upkeep now and then: the stored
    journal always equals the engine over every row, and a rebuild from scratch changes nothing."""
    rng = random.Random(20261205)
    with Session(engine, expire_on_commit=False) as s:
        user, conn, acct = f.make_trader(s)
        accounts = [acct, f.make_account(s, conn)]
        serial = 0
        for _ in range(14):
            batch = []
            for _ in range(rng.randint(1, 25)):
                serial += 1
                batch.append(random_row(rng, rng.choice(accounts), serial))
            insert(s, batch)
            ids = s.execute(sa.select(BrokerageTransaction.id)).scalars().all()
            for victim in rng.sample(ids, min(len(ids), rng.randint(0, 4))):
                change = rng.choice([{"symbol": rng.choice(["AAPL", "MSFT", None])}, {"quantity": Decimal(rng.randint(1, 9))},
                                     {"transaction_type": rng.choice(["BUY", "SELL", "DIVIDEND"])}, {"option_ticker": None},
                                     {"snaptrade_activity_id": f"re-{victim}"}])  # fmt: skip
                s.execute(sa.update(BrokerageTransaction).where(BrokerageTransaction.id == victim).values(**change))
            for victim in rng.sample(ids, min(len(ids), rng.randint(0, 2))):
                s.execute(sa.delete(BrokerageTransaction).where(BrokerageTransaction.id == victim))
            s.commit()
            if rng.random() < 0.6:
                upkeep_accounts(s, [a.id for a in accounts])
                assert_journal_is_current(s, user.id)
        upkeep_accounts(s, [a.id for a in accounts])
        assert_journal_is_current(s, user.id)
        assert s.exec(select(JournalRoundTrip)).all(), "the random history should make round trips"
        incremental = snapshot(s, user.id)
        rebuild_user(s, user.id)
        assert snapshot(s, user.id) == incremental


def test_incremental_upkeep_after_many_random_syncs_equals_a_full_rebuild(engine, sandbox, monkeypatch):
    """Syncs of new days, backdated activities, re-keyed ids and full re-reads, in random order: after each
    run only the pairs its activities touched were updated, and the journal equals the engine over all rows.
    New days continue their pairs from the stored state; re-keys (and backdated rows) rebuild theirs: both
    paths are taken."""
    rebuilt: list[tuple[int, frozenset | None]] = []
    continued: dict[str, int] = defaultdict(int)
    fell_back: dict[str, int] = defaultdict(int)
    op = "initial"
    real = upkeep.rebuild_pairs

    def spy(session, account, keys):
        rebuilt.append((account.id, None if keys is None else frozenset(keys)))
        counts = real(session, account, keys)
        continued[op] += counts.continued
        fell_back[op] += counts.pairs - counts.continued
        return counts

    monkeypatch.setattr(upkeep, "rebuild_pairs", spy)
    rng = random.Random(7)
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=700)
        connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=300)
    sync_now(engine, uid, trigger="initial")
    with Session(engine) as s:
        assert_journal_is_current(s, uid)
        account_ids = s.exec(select(BrokerageAccount.snaptrade_account_id)).all()
    for step, op in enumerate(rng.sample(["day", "backdated", "rekey", "full"] * 3, 12)):
        if op == "day":
            sandbox.advance_day(rng.randint(1, 3))
        elif op == "backdated":
            sandbox.add_backdated(rng.choice(account_ids), count=rng.randint(1, 6), days_back=rng.randint(1, 6))
        elif op == "rekey":
            sandbox.rekey(rng.choice(account_ids), count=2)
        started, rebuilt[:] = utcnow(), []
        runs = sync_now(engine, uid, trigger="scheduled", full=op in ("full", "rekey"))
        assert all(r.status == "completed" for r in runs), op
        with Session(engine) as s:
            assert_journal_is_current(s, uid)
            written = s.exec(select(BrokerageTransaction).where(BrokerageTransaction.updated_at >= started)).all()
            touched = {(r.account_id, pair_key(r)) for r in written
                       if row_instrument(r) or r.transaction_type in POSITION_TYPES}  # fmt: skip
            assert {(a, k) for a, keys in rebuilt for k in keys} == touched, f"step {step} ({op})"
    assert continued["day"] > 0, "a new day's activities should continue their pairs"
    assert fell_back["rekey"] > 0, "a re-key merges rows: their pairs are rebuilt"
    with Session(engine) as s:
        incremental = snapshot(s, uid)
        rebuild_user(s, uid)
        assert snapshot(s, uid) == incremental


# --------------------------------------------------------------------------- crashes


def test_a_failed_upkeep_leaves_the_old_journal_whole_and_the_next_run_rebuilds_it(engine, sandbox, monkeypatch):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=800)
    sync_now(engine, uid, trigger="initial")
    with Session(engine) as s:
        before = snapshot(s, uid)
        account_ids = s.exec(select(BrokerageAccount.snaptrade_account_id)).all()
    sandbox.advance_day()
    for account_id in account_ids:
        # 30, not a few: a backdated row is a buy one time in five (sandbox.scenarios.LATE_KINDS), and when no new
        # row moved a position the rebuilt journal rightly equals `before`, which the last check below refuses
        sandbox.add_backdated(account_id, count=30, days_back=3)
    calls = []
    real = upkeep.rebuild_pairs

    def crash_after_rebuilding(session, account, keys):
        calls.append(account.id)
        real(session, account, keys)  # its deletes and inserts are done, not committed
        raise RuntimeError("killed mid-rebuild")

    monkeypatch.setattr(upkeep, "rebuild_pairs", crash_after_rebuilding)
    [run] = sync_now(engine, uid, trigger="scheduled")
    assert run.status == "completed" and run.transactions_new >= 8, (
        "the activities are stored whatever the journal does"
    )
    with Session(engine) as s:
        assert calls, "the new activities should have dirtied some pairs"
        assert snapshot(s, uid) == before, "half a rebuild became visible"
        assert dirty_count(s, uid) > 0
    monkeypatch.setattr(upkeep, "rebuild_pairs", real)
    sandbox.reset_request_log()
    [again] = sync_now(engine, uid, trigger="scheduled")  # nothing new at SnapTrade: only the marks are left
    assert again.status == "completed" and again.transactions_fetched == 0
    assert again.api_requests <= 2  # the run's own requests (sync_now's reconcile before it is not the run's)
    with Session(engine) as s:
        assert_journal_is_current(s, uid)
        assert snapshot(s, uid) != before


def test_a_run_stopped_between_pages_then_resumed_rebuilds_what_both_attempts_wrote(engine, sandbox):
    from core.accounts.connections import reconcile_connections
    from core.ingest.sync import execute_run
    from core.jobs import queue as jobs
    from core.storage.models import BrokerageConnection

    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=3500)
        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection)).one()
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="initial")
        jobs.claim_run(s, run.id, "w")

    def a_page_is_stored() -> bool:
        # Stop once the first page is committed. Not after the n-th call: the pipeline also asks whenever a
        # page takes more than 0.2 s, so on a busy machine a call count could stop the run before any page.
        with engine.connect() as c:
            return c.execute(sa.text("SELECT count(*) FROM brokerage_transactions")).scalar() > 0

    stopped = execute_run(run.id, engine=engine, should_stop=a_page_is_stored)
    assert stopped.status == "queued"
    with Session(engine) as s:
        assert dirty_count(s, uid) > 0 and s.exec(select(JournalRoundTrip)).all() == []
        jobs.claim_run(s, run.id, "w")
    done = execute_run(run.id, engine=engine)
    assert done.status == "completed"
    with Session(engine) as s:
        assert_journal_is_current(s, uid)


def test_disconnecting_with_history_deleted_empties_that_journal_in_the_same_commit(engine, sandbox):
    from core.accounts.connections import disconnect_connection
    from core.storage.models import BrokerageConnection

    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=400)
        connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=300)
    sync_now(engine, uid)
    with Session(engine, expire_on_commit=False) as s:
        gone = s.exec(select(BrokerageConnection).order_by(BrokerageConnection.id)).first()
        gone_accounts = set(s.exec(select(BrokerageAccount.id).where(BrokerageAccount.connection_id == gone.id)))
        disconnect_connection(s, user_id=uid, connection_id=gone.id, keep_history=False)
    with Session(engine) as s:
        left = {t.account_id for t in s.exec(select(JournalRoundTrip))}
        assert left and not left & gone_accounts
        assert_journal_is_current(s, uid)


@pytest.mark.parametrize("users", [1])
def test_journal_rebuild_from_scratch_restores_a_damaged_journal(engine, users):
    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        f.bulk_transactions(s, [f.transaction_row(acct, symbol="AAPL", quantity="3", price="10", trade_date=date(2025, 1, 2)),
                                f.transaction_row(acct, transaction_type="SELL", symbol="AAPL", quantity="-3", price="12",
                                                  trade_date=date(2025, 1, 3))])  # fmt: skip
        upkeep_accounts(s, [acct.id])
        good = snapshot(s, user.id)
        s.execute(sa.update(JournalRoundTrip).values(net_pnl=Decimal("999")))
        s.execute(sa.text("DELETE FROM journal_dirty_pairs"))
        s.commit()
        assert snapshot(s, user.id) != good
        result = rebuild_user(s, user.id)
        assert (result.accounts, result.activities) == (1, 2)
        assert snapshot(s, user.id) == good
        (trip,) = s.exec(select(JournalRoundTrip)).all()
        assert (trip.gross_pnl, trip.net_pnl, trip.activity_ids) == (
            Decimal(6),
            Decimal(6),
            [r for r in trip.activity_ids],
        )


# --------------------------------------------------------------------------- what upkeep costs


def captured(engine, work, keep) -> list[tuple[str, tuple]]:
    """The statements `work()` runs that `keep(statement)` picks, with their parameters."""
    seen: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if keep(statement):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        work()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return seen


def table_reads(engine, work, table: str = "brokerage_transactions") -> list[tuple[str, tuple]]:
    """The SELECTs on `table` that `work()` runs, with their parameters."""
    return captured(engine, work, lambda statement: statement.lstrip().upper().startswith(("SELECT", "WITH"))
                    and re.search(rf"\b(FROM|JOIN) {table}\b", statement) is not None)  # fmt: skip


def test_upkeep_after_one_page_reads_only_the_dirty_pairs_rows_through_an_index(engine):
    """Cost, not time: after a page touching one stock, one option contract and a trade naming nothing, every
    read of activities is an index search on this account and that instrument (the rows naming nothing have a
    partial index of their own), which holds every column read: no row is looked up in the table. Neither the account's other rows, the user's other
    account holding the same symbol, nor the stock's option rows (or the options' stock rows) are visited."""
    if engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; the index and the query are the same on PostgreSQL")
    with Session(engine, expire_on_commit=False) as s:
        user, conn, acct = f.make_trader(s)
        other = f.make_account(s, conn)
        day = date(2024, 1, 1)
        history = []
        for i in range(600):  # a long history: the same symbols in both accounts, stock and option rows
            for account in (acct, other):
                history.append(f.transaction_row(account, transaction_type=("BUY", "SELL")[i % 2], symbol=("AAPL", "MSFT")[i % 3 == 0],
                                                 security_type="cs", quantity=Decimal(1), price=Decimal(10),
                                                 trade_date=day + timedelta(days=i % 300)))  # fmt: skip
                history.append(f.transaction_row(account, transaction_type="BUY", symbol="AAPL", security_type="option",
                                                 option_ticker=OPT if i % 2 else PUT.replace("MSFT", "AAPL"),
                                                 quantity=Decimal(1), price=Decimal(1), trade_date=day + timedelta(days=i % 300)))  # fmt: skip
        insert(s, history)
        s.commit()
        rebuild_user(s, user.id)
        s.execute(sa.text("ANALYZE"))
        s.commit()
        page = [f.transaction_row(acct, transaction_type="BUY", symbol="AAPL", security_type="cs", quantity=Decimal(2),
                                  price=Decimal(11), trade_date=date(2025, 1, 2)),
                f.transaction_row(acct, transaction_type="SELL", symbol="AAPL", security_type="option", option_ticker=OPT,
                                  option_action="SELL_TO_CLOSE", quantity=Decimal(1), price=Decimal(2),
                                  trade_date=date(2025, 1, 2)),
                f.transaction_row(acct, transaction_type="BUY", symbol=None, quantity=Decimal(1), price=Decimal(1),
                                  trade_date=date(2025, 1, 2))]  # a trade naming nothing: the "" pair  # fmt: skip
        insert(s, page)
        s.commit()
        assert marks(s, acct.id) == {"AAPL", OPT, ""}

        reads = table_reads(engine, lambda: upkeep_accounts(s, [acct.id]))
        assert reads, "upkeep should read the dirty pairs' activities"
        for statement, parameters in reads:
            plan = [row[-1] for row in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            on_table = [p for p in plan if "brokerage_transactions" in p]
            assert on_table and all(
                p.startswith("SEARCH brokerage_transactions USING COVERING INDEX idx_brokerage_transactions_account_")
                and ("(account_id=? AND " in p or p.endswith("_account_nameless_rows (account_id=?)"))
                for p in on_table
            ), (statement, plan)
        assert_journal_is_current(s, user.id)
        incremental = snapshot(s, user.id)
        rebuild_user(s, user.id)
        assert snapshot(s, user.id) == incremental


def returned_activity_ids(session, reads: list[tuple[str, tuple]]) -> set[str]:
    """The activity ids the captured statements returned (each run again with its own parameters); a
    statement returning no activity (a rebuilt pair's row count, read from the index) returns none."""
    ids: set[str] = set()
    for statement, parameters in reads:
        result = session.connection().exec_driver_sql(statement, parameters)
        if "snaptrade_activity_id" not in result.keys():
            assert "count(" in statement.lower(), statement
            continue
        column = list(result.keys()).index("snaptrade_activity_id")
        ids |= {row[column] for row in result}
    return ids


def test_upkeep_after_a_page_of_later_rows_continues_each_pair_without_reading_its_older_rows(engine):
    """The daily sync: a page whose rows all come after what each pair processed. Upkeep continues the pairs
    from their stored state: none of the statements it runs returns a row older than the pair's last
    processed day, and the journal equals a rebuild from scratch. A backdated row afterwards is rebuilt."""
    assert re.search(r"\b(FROM|JOIN) brokerage_transactions\b", "FROM wanted JOIN brokerage_transactions ON")
    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        day = date(2024, 1, 1)
        history = []
        for i in range(300):  # long histories of a stock, an option contract and a crypto, with open positions
            kind = ("BUY", "BUY", "SELL")[i % 3]
            history.append(f.transaction_row(acct, transaction_type=kind, symbol="AAPL", security_type="cs",
                                             quantity=Decimal(3 if kind == "BUY" else -4), price=Decimal(100 + i % 7),
                                             fee=Decimal("0.5"), trade_date=day + timedelta(days=i)))  # fmt: skip
            history.append(f.transaction_row(acct, transaction_type=kind, symbol="AAPL", security_type="option",
                                             option_ticker=OPT, option_action=f"{kind}_TO_OPEN", quantity=Decimal(1),
                                             price=Decimal("1.5"), trade_date=day + timedelta(days=i)))  # fmt: skip
            history.append(f.transaction_row(acct, transaction_type="BUY" if i % 4 else "SELL", symbol="BTC",
                                             security_type="crypto", quantity=Decimal("0.1"), price=Decimal(40000),
                                             trade_date=day + timedelta(days=i)))  # fmt: skip
        insert(s, history)
        rebuild_user(s, user.id)
        old_ids = set(s.execute(sa.select(BrokerageTransaction.snaptrade_activity_id)).scalars())
        last = day + timedelta(days=299)
        page = [f.transaction_row(acct, transaction_type="SELL", symbol="AAPL", security_type="cs", quantity=Decimal(-50),
                                  price=Decimal(120), trade_date=last + timedelta(days=1)),
                f.transaction_row(acct, transaction_type="BUY", symbol="AAPL", security_type="option", option_ticker=OPT,
                                  option_action="BUY_TO_CLOSE", quantity=Decimal(2), price=Decimal(2),
                                  trade_date=last + timedelta(days=1), trade_timestamp=f"{last + timedelta(days=1)}T15:30:00Z"),
                f.transaction_row(acct, transaction_type="BUY", symbol="BTC", security_type="crypto",
                                  quantity=Decimal("0.3"), price=Decimal(41000), trade_date=last + timedelta(days=2)),
                f.transaction_row(acct, transaction_type="BUY", symbol="MSFT", security_type="cs", quantity=Decimal(1),
                                  price=Decimal(300), trade_date=last + timedelta(days=2))]  # fmt: skip
        insert(s, page)
        assert marks(s, acct.id) == {"AAPL", OPT, "BTC", "MSFT"}

        result = None

        def work():
            nonlocal result
            result = upkeep_accounts(s, [acct.id])

        reads = table_reads(engine, work)
        assert reads, "upkeep should read the new rows"
        assert result.continued == 3, "AAPL, its option and BTC continue; MSFT is new"
        older = {a for a in returned_activity_ids(s, reads) & old_ids}
        on_last_day = {r for r in old_ids if s.execute(sa.select(BrokerageTransaction.trade_date).where(
            BrokerageTransaction.snaptrade_activity_id == r)).scalar() == last}  # fmt: skip
        assert older <= on_last_day, f"{len(older - on_last_day)} older rows read"
        assert_journal_is_current(s, user.id)
        continued = snapshot(s, user.id)
        rebuild_user(s, user.id)
        assert snapshot(s, user.id) == continued

        insert(s, [f.transaction_row(acct, transaction_type="SELL", symbol="BTC", security_type="crypto",
                                     quantity=Decimal("0.2"), price=Decimal(39000), trade_date=day + timedelta(days=5))])  # fmt: skip
        result = upkeep_accounts(s, [acct.id])
        assert (result.pairs, result.continued) == (1, 0), "a row before the last processed one rebuilds its pair"
        assert_journal_is_current(s, user.id)


def test_a_full_rebuild_streams_the_history_in_chunks_of_rows_and_builds_the_same_journal(engine, monkeypatch):
    """With chunks of 40 rows: a pair of 400 rows goes through the engine a chunk of whole dates at a time (one
    date holds 60 rows: read whole), small pairs are packed together, and no statement returns more than a
    chunk or that one date; the journal equals the engine over every row, and upkeep continues from it. The
    first upkeep after the rows arrive (an initial import: every pair dirty) streams the same way. On SQLite
    the rebuild reads indexes only, never the table's rows."""
    from core.journal import store

    monkeypatch.setattr(store, "_CHUNK_ROWS", 40)
    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        rng = random.Random(5)
        day = date(2024, 1, 1)
        rows = []
        for i in range(400):
            on = day + timedelta(days=i // 3) if i < 340 else day + timedelta(days=200)  # 60 rows on one date
            kind = rng.choice(["BUY", "BUY", "SELL", "SPLIT"]) if i % 50 else "STOCK_MERGER"
            rows.append(f.transaction_row(acct, transaction_type=kind, symbol="AAPL", security_type="cs",
                                          quantity=Decimal(rng.randint(1, 9)) * (-1 if kind == "SELL" else 1),
                                          price=Decimal(rng.randint(90, 110)), fee=Decimal(1), trade_date=on))  # fmt: skip
        for _ in range(90):  # small pairs: stocks, option contracts, crypto, and rows naming nothing
            symbol = rng.choice(["KO", "PEP", "BTC", None])
            option = rng.random() < 0.3
            rows.append(f.transaction_row(acct, transaction_type=rng.choice(["BUY", "SELL"]), symbol=symbol or "SPY",
                                          security_type="option" if option else ("crypto" if symbol == "BTC" else "cs"),
                                          option_ticker=rng.choice([OPT, PUT]) if option else None,
                                          option_action=rng.choice(["BUY_TO_OPEN", "SELL_TO_CLOSE"]) if option else None,
                                          quantity=Decimal(rng.randint(1, 5)), price=Decimal(rng.randint(1, 50)),
                                          trade_date=day + timedelta(days=rng.randint(0, 250))))  # fmt: skip
            if symbol is None and not option:
                rows[-1]["symbol"] = None
        insert(s, rows)
        reads = table_reads(engine, lambda: upkeep_accounts(s, [acct.id]))
        returned = [len(s.connection().exec_driver_sql(statement, parameters).all()) for statement, parameters in reads]
        assert returned and max(returned) <= 60, f"the first upkeep read {sorted(returned)[-5:]} rows at once"
        assert_journal_is_current(s, user.id)
        incremental = snapshot(s, user.id)

        reads = table_reads(engine, lambda: rebuild_user(s, user.id))
        returned = [len(s.connection().exec_driver_sql(statement, parameters).all()) for statement, parameters in reads]
        assert returned and max(returned) <= 60, sorted(returned)[-5:]
        assert snapshot(s, user.id) == incremental
        if engine.dialect.name == "sqlite":  # each read answered by an index holding what it reads (migration 0012)
            for statement, parameters in reads:
                plan = [
                    row[-1] for row in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                ]
                on_table = [p for p in plan if "brokerage_transactions" in p]
                assert on_table and all("USING COVERING INDEX idx_brokerage_transactions_account_" in p
                                        for p in on_table), (statement, plan)  # fmt: skip
        assert_journal_is_current(s, user.id)
        insert(s, [f.transaction_row(acct, transaction_type="SELL", symbol="AAPL", security_type="cs",
                                     quantity=Decimal(-3), price=Decimal(120), trade_date=day + timedelta(days=300))])  # fmt: skip
        assert upkeep_accounts(s, [acct.id]).continued == 1
        assert_journal_is_current(s, user.id)


def journal_writes(engine, work) -> dict[tuple[str, str], int]:
    """How many rows of each journal table `work()` asks to insert, update or delete, by (verb, table)."""
    counts: dict[tuple[str, str], int] = defaultdict(int)

    def capture(conn, cursor, statement, parameters, context, executemany):
        found = re.match(r"\s*(INSERT INTO|UPDATE|DELETE FROM) (journal_\w+)", statement)
        if found:
            rows = len(parameters) if executemany else 1
            if not executemany and found[1] == "DELETE FROM" and "IN (" not in statement:
                rows = 1
            counts[(found[1].split()[0], found[2])] += rows

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        work()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return dict(counts)


def test_a_continued_pair_writes_only_the_lots_that_changed_and_updates_its_open_round_trip(engine):
    """A long position of 400 lots, continued by a day's page (a sell consuming two and a half lots, then a
    buy): upkeep reads only the four oldest lots, deletes the two lots consumed, updates the one partly
    consumed, inserts the new one, and updates the open round trip in place; no other lot or round trip is
    written, and the pair's stored state does not grow with its lots. The journal equals a rebuild."""
    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        day = date(2024, 1, 1)
        insert(s, [f.transaction_row(acct, transaction_type="BUY", symbol="AAPL", security_type="cs", quantity=Decimal(2),
                                     price=Decimal(100 + i % 9), fee=Decimal("0.5"), trade_date=day + timedelta(days=i))
                   for i in range(400)])  # fmt: skip
        upkeep_accounts(s, [acct.id])
        state_size = len(str(s.execute(sa.text("SELECT state FROM journal_pair_states")).scalar()))
        assert state_size < 2_000, "the lots are not repeated in the pair's state"
        later = day + timedelta(days=400)
        insert(s, [f.transaction_row(acct, transaction_type="SELL", symbol="AAPL", security_type="cs", quantity=Decimal(-5),
                                     price=Decimal(120), trade_date=later),
                   f.transaction_row(acct, transaction_type="BUY", symbol="AAPL", security_type="cs", quantity=Decimal(1),
                                     price=Decimal(121), trade_date=later + timedelta(days=1))])  # fmt: skip
        result = None

        def work():
            nonlocal result
            result = upkeep_accounts(s, [acct.id])

        from core.journal import state

        loaded: list[int] = []
        real_attach = state.attach_lots

        def attach(st, which, rows, *, complete):
            loaded.append(len(rows))
            return real_attach(st, which, rows, complete=complete)

        from core.journal import daily

        refreshed: list[set] = []
        real_refresh = daily.refresh

        def refresh(session, user_id, account_id, affected):
            refreshed.append(set(affected))
            return real_refresh(session, user_id, account_id, affected)

        state.attach_lots, daily.refresh = attach, refresh
        try:
            writes = journal_writes(engine, work)
        finally:
            state.attach_lots, daily.refresh = real_attach, real_refresh
        assert refreshed == [set()], "the round trip stays open on its day: no daily aggregate changes"
        # At most the units the page moves can be consumed (6: the sell's 5 and the buy's 1): four lots of 2.
        assert loaded == [4], "only the oldest lots the page could consume are read, not the 400"
        assert result.continued == 1
        assert writes.get(("DELETE", "journal_open_lots")) == 2, writes
        assert writes.get(("UPDATE", "journal_open_lots")) == 1, writes
        assert writes.get(("INSERT", "journal_open_lots")) == 1, writes
        assert writes.get(("UPDATE", "journal_round_trips")) == 1, writes
        assert ("INSERT", "journal_round_trips") not in writes and ("DELETE", "journal_round_trips") not in writes
        assert len(str(s.execute(sa.text("SELECT state FROM journal_pair_states")).scalar())) < 2_000
        assert s.execute(sa.text("SELECT count(*) FROM journal_open_lots")).scalar() == 400 - 2 + 1
        assert_journal_is_current(s, user.id)
        daily_sums = "SELECT currency, day, trips, closed, net FROM journal_daily ORDER BY currency, day"
        continued, days = snapshot(s, user.id), s.execute(sa.text(daily_sums)).all()
        rebuild_user(s, user.id)
        assert snapshot(s, user.id) == continued
        assert s.execute(sa.text(daily_sums)).all() == days


def long_positions(s, symbols: list[str], days: int):
    """A trader buying 2 of each symbol a day for `days` days from 2024-01-01, the journal kept and ANALYZEd:
    long positions of many lots for a later page to continue. Returns (user, account, first day)."""
    user, _, acct = f.make_trader(s)
    day = date(2024, 1, 1)
    insert(s, [f.transaction_row(acct, transaction_type="BUY", symbol=symbol, security_type="cs", quantity=Decimal(2),
                                 price=Decimal(100 + i % 7), trade_date=day + timedelta(days=i))
               for i in range(days) for symbol in symbols])  # fmt: skip
    upkeep_accounts(s, [acct.id])
    s.execute(sa.text("ANALYZE"))
    s.commit()
    return user, acct, day


def test_a_continuation_reads_its_books_oldest_lots_in_one_statement_through_the_seq_index(engine):
    """Five long positions continued by a day's page: their books' oldest lots are read by one statement
    (each book's seq range), not one per book, plus one for the book whose sell outruns that read; on SQLite
    straight from (account_id, pair_key, seq) (migration 0011), no sort, where without seq in the index every
    read scanned and sorted the lots. The journal equals a rebuild."""
    symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "META"]
    with Session(engine, expire_on_commit=False) as s:
        user, acct, day = long_positions(s, symbols, days=120)
        # META's sell consumes 21 lots: more than the first read takes, so its book is read again on its own.
        insert(s, [f.transaction_row(acct, transaction_type="SELL", symbol=symbol, security_type="cs",
                                     quantity=Decimal(-41 if symbol == "META" else -3), price=Decimal(120),
                                     trade_date=day + timedelta(days=400)) for symbol in symbols])  # fmt: skip
        results = []
        seen = table_reads(engine, lambda: results.append(upkeep_accounts(s, [acct.id])), "journal_open_lots")
        assert results[0].continued == len(symbols)
        assert len(seen) == 2, [statement for statement, _ in seen]
        assert "META" in str(seen[1][1]), seen[1]  # the one book read on its own
        if engine.dialect.name == "sqlite":
            statement, parameters = seen[0]
            plan = [row[-1] for row in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            assert any("USING INDEX idx_journal_open_lots_pair_seq (account_id=? AND pair_key=? AND seq>" in p
                       for p in plan), plan  # fmt: skip
            assert not any("TEMP B-TREE" in p for p in plan), plan
        assert_journal_is_current(s, user.id)
        continued = snapshot(s, user.id)
        rebuild_user(s, user.id)
        assert snapshot(s, user.id) == continued


def test_a_continuations_reads_are_the_same_statements_whatever_pairs_it_continues(engine):
    """Two daily pages, of two pairs then of five: the reads of their new rows and oldest lots are the same
    statement texts with as many parameters (the wanted list bound as one JSON value, core.journal.wanted),
    so SQLAlchemy compiles them once; a VALUES list was part of the text, compiled anew for every page (most of
    a continuation's time in Python). On SQLite the list is read first, then each wanted pair through its
    index. The journal equals a rebuild."""
    symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "META"]
    with Session(engine, expire_on_commit=False) as s:
        user, acct, day = long_positions(s, symbols, days=60)
        runs, results = [], []
        for n, later in ((2, 100), (5, 101)):
            insert(s, [f.transaction_row(acct, transaction_type="SELL", symbol=symbol, security_type="cs",
                                         quantity=Decimal(-3), price=Decimal(120), trade_date=day + timedelta(days=later))
                       for symbol in symbols[:n]])  # fmt: skip
            runs.append(table_reads(engine, lambda: results.append(upkeep_accounts(s, [acct.id])),
                                    "(?:brokerage_transactions|journal_open_lots)"))  # fmt: skip
            assert results[-1].continued == n
        first, second = runs
        assert first and [(st, len(p)) for st, p in first] == [(st, len(p)) for st, p in second], (first, second)
        if engine.dialect.name == "sqlite":
            for statement, parameters in second:
                plan = [
                    row[-1] for row in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                ]
                assert plan[0].startswith("SCAN") and "VIRTUAL TABLE" in plan[0], plan
                assert all(p.startswith("SEARCH") for p in plan[1:]), plan
        assert_journal_is_current(s, user.id)
        continued = snapshot(s, user.id)
        rebuild_user(s, user.id)
        assert snapshot(s, user.id) == continued


def test_a_continued_open_round_trip_appends_its_new_activities_without_resending_the_old(engine):
    """A round trip open across 300 buys, continued by a day's page of two: its stored activity list is
    neither read back nor sent again whole; the update appends the two new ids in SQL, and the stored list
    is the one a rebuild writes (same JSON on SQLite)."""
    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        day = date(2024, 1, 1)
        insert(s, [f.transaction_row(acct, transaction_type="BUY", symbol="AAPL", security_type="cs", quantity=Decimal(1),
                                     price=Decimal(100), trade_date=day + timedelta(days=i)) for i in range(300)])  # fmt: skip
        upkeep_accounts(s, [acct.id])
        first = s.execute(
            sa.text("SELECT snaptrade_activity_id FROM brokerage_transactions ORDER BY trade_date")
        ).first()[0]
        insert(s, [f.transaction_row(acct, transaction_type=kind, symbol="AAPL", security_type="cs", quantity=Decimal(q),
                                     price=Decimal(120), trade_date=day + timedelta(days=400))
                   for kind, q in (("BUY", 2), ("SELL", -1))])  # fmt: skip
        sent: list[str] = []
        updated: list[str] = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            if re.match(r"\s*UPDATE journal_round_trips", statement):
                sent.append(str(parameters))
                updated.append(statement.split(" WHERE ")[0])

        sa.event.listen(engine, "before_cursor_execute", capture)
        try:
            assert upkeep_accounts(s, [acct.id]).continued == 1
        finally:
            sa.event.remove(engine, "before_cursor_execute", capture)
        assert len(sent) == 1 and first not in sent[0] and len(sent[0]) < 2_000, sent
        # Not the columns it was matched by: SQLite would rewrite their index entries (account_id, pair_key).
        assert not re.search(r"\b(user_id|account_id|pair_key|instrument|currency|seq)=", updated[0]), updated
        stored = s.execute(sa.text("SELECT activity_ids FROM journal_round_trips")).scalar()
        assert_journal_is_current(s, user.id)
        continued = snapshot(s, user.id)
        rebuild_user(s, user.id)
        assert snapshot(s, user.id) == continued
        assert s.execute(sa.text("SELECT activity_ids FROM journal_round_trips")).scalar() == stored


def test_a_full_rebuild_on_sqlite_writes_its_rows_without_building_parameters_row_by_row(engine, monkeypatch):
    """SQLite: a rebuild's inserts go to the driver's executemany with each value through its column type's
    bind processor, not through SQLAlchemy's per-row parameter building (most of a rebuild's writing time);
    what is stored is what the engine makes of the rows."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL copies its rows (test_copyrows)")

    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        day = date(2024, 1, 1)
        insert(s, [f.transaction_row(acct, transaction_type=("BUY", "SELL")[i % 2], symbol=f"S{i // 2 % 40}",
                                     security_type="cs", quantity=Decimal(1 if i % 2 == 0 else -1),
                                     price=Decimal("10.25") + i, fee=Decimal("0.1"), trade_date=day + timedelta(days=i))
                   for i in range(400)])  # fmt: skip
        calls = journal_insert_parameter_sets(monkeypatch, lambda: rebuild_user(s, user.id))
        trips = s.execute(sa.text("SELECT count(*) FROM journal_round_trips")).scalar()
        assert trips == 200
        assert calls == 0, f"{calls} parameter sets built for {trips} round trips"
        assert_journal_is_current(s, user.id)


def test_the_first_upkeep_of_many_pairs_counts_their_rows_in_one_pass_over_the_account(engine):
    """More dirty pairs than one IN list holds (the first upkeep after an import): their row counts come from
    one grouped read per kind of pair (stocks, option contracts), not one per chunk of keys, and the journal
    is the engine's."""
    from core.journal import rows

    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        insert(s, [f.transaction_row(acct, transaction_type="BUY", symbol=f"S{i}", security_type="cs",
                                     quantity=Decimal(1), price=Decimal(10), trade_date=date(2024, 1, 1 + i % 28))
                   for i in range(2 * rows.CHUNK + 10)])  # fmt: skip
        reads = table_reads(engine, lambda: upkeep_accounts(s, [acct.id]))
        counts = [statement for statement, _ in reads if "count(" in statement.lower()]
        assert len(counts) == 2, f"{len(counts)} grouped reads of the account's row counts"
        assert_journal_is_current(s, user.id)


def test_the_first_upkeep_after_an_import_neither_deletes_nor_looks_for_earlier_flags(engine):
    """An account with nothing stored (its import's first upkeep) skips the per-pair deletes and the read of
    earlier flag times; a later upkeep that rebuilds a pair does both, and each journal is the engine's."""
    journal = ("journal_round_trips", "journal_positions", "journal_open_lots", "journal_unplaceable",
               "journal_pair_states")  # fmt: skip

    def writes_and_flag_reads(work) -> list[str]:
        def keep(statement: str) -> bool:
            deleting = re.match(rf"\s*DELETE FROM ({'|'.join(journal)})\b", statement)
            return bool(deleting or re.search(r"flagged_at\s+FROM journal_unplaceable\b", statement))

        return [statement.split(" WHERE")[0] for statement, _ in captured(engine, work, keep)]

    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        insert(s, [f.transaction_row(acct, transaction_type=("BUY", "SELL")[i % 2], symbol=("AAPL", "KO")[i % 3 == 0],
                                     security_type="cs", quantity=Decimal(1), price=Decimal(10 + i),
                                     trade_date=date(2024, 1, 1 + i)) for i in range(20)])  # fmt: skip
        s.commit()
        assert writes_and_flag_reads(lambda: upkeep_accounts(s, [acct.id])) == []
        assert_journal_is_current(s, user.id)

        # Backdated: the pair is rebuilt, so its stored rows are deleted first and its flag times kept.
        insert(s, [f.transaction_row(acct, transaction_type="BUY", symbol="AAPL", security_type="cs",
                                     quantity=Decimal(3), price=Decimal(9), trade_date=date(2024, 1, 2))])  # fmt: skip
        s.commit()
        later = writes_and_flag_reads(lambda: upkeep_accounts(s, [acct.id]))
        assert {t for t in journal if any(t in statement for statement in later)} == set(journal)
        assert_journal_is_current(s, user.id)


def test_a_rebuild_sets_off_few_cyclic_garbage_collections_and_restores_the_thresholds(engine):
    """A chunk's rows, fills and values are freed by reference counting: with CPython's default threshold a
    rebuild set off a young collection every 700 of them and a full one every few chunks (core.gcpace)."""
    import gc

    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        day = date(2024, 1, 1)
        insert(s, [f.transaction_row(acct, transaction_type="BUY" if i % 3 else "SELL", symbol=f"S{i % 40}",
                                     security_type="cs", quantity=Decimal(2 if i % 3 else -1), price=Decimal(10),
                                     trade_date=day + timedelta(days=i // 40)) for i in range(3000)])  # fmt: skip
        upkeep_accounts(s, [acct.id])
        before = gc.get_threshold()
        with young_collections() as young:
            result = rebuild_user(s, user.id)
        assert result.activities == 3000
        assert gc.get_threshold() == before
        assert len(young) < 5, f"{len(young)} young collections during a rebuild of 3,000 activities"
        assert_journal_is_current(s, user.id)


def test_only_a_pair_of_many_activities_keeps_a_state_a_small_one_is_rebuilt_from_its_rows(engine):
    """Most pairs of a history are a few activities (an option contract opened and closed): storing a state
    for each cost a fifth of a full rebuild. A pair below build.STATE_MIN_ITEMS keeps none, and when it
    changes is rebuilt from its rows; a larger pair continues from its state. Both end where a full rebuild
    does."""
    from core.journal.build import STATE_MIN_ITEMS
    from core.journal.saved import STATES

    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        day = date(2024, 1, 1)

        def buys(symbol: str, n: int, start: date) -> list[dict]:
            return [f.transaction_row(acct, transaction_type="BUY", symbol=symbol, security_type="cs",
                                      quantity=Decimal(1), price=Decimal(10 + i), trade_date=start + timedelta(days=i))
                    for i in range(n)]  # fmt: skip

        insert(s, buys("KO", STATE_MIN_ITEMS - 1, day) + buys("AAPL", STATE_MIN_ITEMS, day))
        upkeep_accounts(s, [acct.id])
        assert rebuild_user(s, user.id).pairs == 2  # both pairs are counted, though only one keeps a state
        stored = s.execute(sa.select(STATES.c.pair_key).where(STATES.c.account_id == acct.id)).scalars().all()
        assert stored == ["AAPL"]
        later = day + timedelta(days=100)
        insert(s, buys("KO", 1, later) + buys("AAPL", 1, later))
        assert upkeep_accounts(s, [acct.id]).continued == 1  # AAPL; KO rebuilt, now with a state of its own
        stored = s.execute(sa.select(STATES.c.pair_key).where(STATES.c.account_id == acct.id)).scalars().all()
        assert sorted(stored) == ["AAPL", "KO"]
        assert_journal_is_current(s, user.id)
        incremental = snapshot(s, user.id)
        rebuild_user(s, user.id)
        assert snapshot(s, user.id) == incremental


# --------------------------------------------------------------------------- beside other writers


def commit_elsewhere_at_the_first_journal_write(engine, user_id: int, work) -> list:
    """`work()`, during which another connection commits a write when the upkeep is about to write its first
    journal row (as a run's heartbeat, a second worker or the web app does at any moment). The upkeep goes on once
    that write is done or after 1 s, when it waits for the upkeep's transaction; the other write's outcome."""
    import threading

    outcome, threads = [], []

    def write_elsewhere() -> None:
        try:
            with engine.begin() as other:
                other.execute(sa.text("UPDATE app_users SET name = 'elsewhere' WHERE id = :u"), {"u": user_id})
            outcome.append("committed")
        except Exception as exc:  # noqa: BLE001 - reported to the test
            outcome.append(exc)

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if not threads and statement.lstrip().upper().startswith("INSERT INTO JOURNAL_"):
            threads.append(threading.Thread(target=write_elsewhere))
            threads[0].start()
            threads[0].join(timeout=1.0)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        work()
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    threads[0].join(timeout=60)
    return outcome


def test_an_upkeep_succeeds_when_another_connection_commits_between_its_reads_and_its_writes(engine):
    """On SQLite a transaction that reads before it writes fails at its first write ("database is locked", at
    once, not after the busy timeout) when another connection committed in between. Seen in the kill -9 fault
    test (tests/faults/test_crash_recovery.py), failed in a full run and once in six repeats: the resumed
    run's upkeep met the heartbeat's commit and left the journal dirty until the next sync. The upkeep now
    takes the write lock before it reads, so it waits instead."""
    from core.journal import store

    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        # More rows than a chunk, in a few pairs: the first chunk is written while the pairs are still read.
        insert(s, [f.transaction_row(acct, transaction_type=("BUY", "SELL")[i % 2], symbol=f"S{i % 40}",
                                     security_type="cs", quantity=Decimal(1), price=Decimal(10 + i % 7),
                                     trade_date=date(2024, 1, 1 + i % 28)) for i in range(store._CHUNK_ROWS + 600)])  # fmt: skip
        s.commit()
        outcome = commit_elsewhere_at_the_first_journal_write(engine, user.id, lambda: upkeep_accounts(s, [acct.id]))
        assert outcome == ["committed"]
        assert_journal_is_current(s, user.id)
        assert s.execute(sa.text("SELECT name FROM app_users WHERE id = :u"), {"u": user.id}).scalar() == "elsewhere"
