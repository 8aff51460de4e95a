"""Migrations: empty → head works, models and migrations agree, head → base works, on both backends."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from core.storage import migrate
from core.storage.db import create_db_engine

EXPECTED_TABLES = {
    "app_users", "snaptrade_users", "brokerage_connections", "brokerage_accounts", "brokerage_transactions",
    "transaction_sync_log", "webhook_events", "sync_issues", "manual_sync_requests", "user_transaction_counts",
    "journal_dirty_pairs", "journal_round_trips", "journal_positions", "journal_open_lots", "journal_unplaceable",
    "brokerage_positions", "journal_reconciliations",
}  # fmt: skip


def test_upgrade_autogenerate_and_downgrade(empty_db_url):
    engine = create_db_engine(empty_db_url)
    try:
        migrate.upgrade(engine)
        tables = set(sa.inspect(engine).get_table_names())
        assert EXPECTED_TABLES <= tables
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(
                    conn, opts={"compare_type": True, "include_object": migrate.include_object(engine.dialect.name)}
                ),
                SQLModel.metadata,
            )
        assert diff == [], f"models and migrations disagree: {diff}"
        migrate.upgrade(engine)  # idempotent: a second start changes nothing
        migrate.downgrade(engine, "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_role_check_constraint_rejects_unknown_role(engine):
    import datetime as dt

    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO app_users (username, password_hash, role, is_active, session_epoch, "
                          "failed_login_count, created_at, updated_at) VALUES ('u','x','trader',true,0,0,:t,:t)"),
                  {"t": dt.datetime.now(dt.UTC)})  # fmt: skip
    with engine.connect() as c:
        uid = c.execute(sa.text("SELECT id FROM app_users")).scalar()
    try:
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO app_users (username, password_hash, role, is_active, session_epoch, "
                              "failed_login_count, created_at, updated_at) VALUES ('v','x','admin',true,0,0,:t,:t)"),
                      {"t": dt.datetime.now(dt.UTC)})  # fmt: skip
        raise AssertionError("role check constraint did not fire")
    except sa.exc.IntegrityError:
        pass
    assert uid is not None


COUNT_TRIGGERS = {"trg_brokerage_transactions_count_insert", "trg_brokerage_transactions_count_update",
                  "trg_brokerage_transactions_count_delete"}  # fmt: skip


def _triggers(conn) -> set[str]:
    if conn.dialect.name == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'brokerage_transactions'::regclass AND NOT tgisinternal"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'brokerage_transactions'"
    return set(conn.execute(sa.text(sql)).scalars())


def test_0004_backfills_the_counts_and_installs_triggers_that_a_downgrade_removes(empty_db_url):
    """Users with history before 0004 get their exact count; after it the triggers keep it; going back to
    0003 leaves a table that writes without them. (A later SQLite batch migration that rebuilds
    brokerage_transactions would drop the triggers: the check at head would catch it.)"""
    from sqlmodel import Session

    from core.storage.counts import user_count
    from tests import factories as f

    engine = create_db_engine(empty_db_url)
    try:
        migrate.upgrade(engine, "0003")
        with Session(engine, expire_on_commit=False) as s:
            a, _, a_acct = f.make_trader(s, "a")
            b, _, b_acct = f.make_trader(s, "b")
            c, _, _ = f.make_trader(s, "c")
            f.bulk_transactions(s, f.random_transactions(a_acct, 7, seed=1))
            f.bulk_transactions(s, f.random_transactions(b_acct, 3, seed=1))
        migrate.upgrade(engine)
        with Session(engine) as s:
            assert COUNT_TRIGGERS <= _triggers(s.connection())
            kept = dict(s.execute(sa.text("SELECT user_id, delta FROM user_transaction_counts")).all())
            assert kept == {a.id: 7, b.id: 3}
            f.bulk_transactions(s, f.random_transactions(a_acct, 2, seed=2))
            assert user_count(s, a.id)[0] == 9 and user_count(s, c.id) == (0, 0)
        migrate.downgrade(engine, "0003")
        with Session(engine) as s:
            assert not _triggers(s.connection()) & COUNT_TRIGGERS
            assert "user_transaction_counts" not in sa.inspect(s.connection()).get_table_names()
            f.bulk_transactions(s, f.random_transactions(b_acct, 2, seed=2))
            assert s.execute(sa.text("SELECT count(*) FROM brokerage_transactions")).scalar() == 14
    finally:
        engine.dispose()


JOURNAL_READ_INDEXES = {"idx_brokerage_transactions_account_option_date", "idx_brokerage_transactions_account_symbol_date",
                        "idx_brokerage_transactions_account_nameless"}  # fmt: skip


def test_0012_fills_option_mini_from_the_raw_record_and_on_sqlite_makes_the_journals_indexes_cover_its_reads(
    empty_db_url,
):
    """Rows stored before 0012 get the flag the normalizer now stores (core.ingest.normalize.option_mini);
    SQLite's journal indexes become ones holding every column the journal reads, PostgreSQL's stay; a
    downgrade gives back 0011's indexes and keeps the table's triggers (no batch-mode table copy)."""
    from sqlmodel import Session

    from core.ingest.normalize import option_mini
    from tests import factories as f

    opt = "AAPL  261218C00240000"
    shapes = {  # activity id: (security_type, option_ticker, raw)
        "mini": ("option", opt, {"option_symbol": {"is_mini_option": True}}),
        "standard": ("option", opt, {"option_symbol": {"is_mini_option": False}}),
        "null": ("option", None, {"option_symbol": {"is_mini_option": None}}),
        "odd": ("option", opt, {"option_symbol": {"is_mini_option": "yes"}}),
        "number": (None, opt, {"option_symbol": {"is_mini_option": 1}}),
        "absent": ("option", opt, {"option_symbol": {}}),
        "text symbol": ("option", opt, {"option_symbol": "AAPL 240 C"}),
        "stock": ("cs", None, {"option_symbol": {"is_mini_option": True}}),
    }
    engine = create_db_engine(empty_db_url)
    try:
        migrate.upgrade(engine, "0011")
        with Session(engine, expire_on_commit=False) as s:
            _, _, acct = f.make_trader(s)
            rows = [f.transaction_row(acct, snaptrade_activity_id=key, symbol="AAPL", security_type=sec,
                                      option_ticker=ticker, raw=raw) for key, (sec, ticker, raw) in shapes.items()]  # fmt: skip
            f.bulk_transactions(s, [{k: v for k, v in row.items() if k != "option_mini"} for row in rows])
        migrate.upgrade(engine)
        with engine.connect() as conn:
            stored = dict(
                conn.execute(sa.text("SELECT snaptrade_activity_id, option_mini FROM brokerage_transactions")).all()
            )
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("brokerage_transactions")}
        assert stored == {key: option_mini(raw, sec, ticker) for key, (sec, ticker, raw) in shapes.items()}
        assert stored["mini"] == "true" and stored["odd"] == stored["number"] == "other" and stored["stock"] is None
        if engine.dialect.name == "sqlite":
            assert {f"{name}_rows" for name in JOURNAL_READ_INDEXES} <= indexes and not indexes & JOURNAL_READ_INDEXES
        else:
            assert JOURNAL_READ_INDEXES <= indexes and not any(name.endswith("_rows") for name in indexes)
        migrate.downgrade(engine, "0011")
        with engine.connect() as conn:
            assert "option_mini" not in {c["name"] for c in sa.inspect(conn).get_columns("brokerage_transactions")}
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("brokerage_transactions")}
            assert JOURNAL_READ_INDEXES <= indexes and not any(name.endswith("_rows") for name in indexes)
            assert COUNT_TRIGGERS <= _triggers(conn) and len(_triggers(conn)) >= len(COUNT_TRIGGERS) + 3
    finally:
        engine.dispose()


def test_0013_drops_the_round_trips_index_no_query_reads_and_a_downgrade_restores_it(empty_db_url):
    """(user_id, closed_on) was written at every round trip and read by nothing (SQLite's plans of every
    journal read named another index); the user_id cascade keeps (user_id, currency, on_date)."""
    engine = create_db_engine(empty_db_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            indexes = {i["name"]: i["column_names"] for i in sa.inspect(conn).get_indexes("journal_round_trips")}
        assert "idx_journal_round_trips_user_closed" not in indexes
        assert indexes["idx_journal_round_trips_user_on"][0] == "user_id"
        migrate.downgrade(engine, "0012")
        with engine.connect() as conn:
            indexes = {i["name"]: i["column_names"] for i in sa.inspect(conn).get_indexes("journal_round_trips")}
        assert indexes["idx_journal_round_trips_user_closed"] == ["user_id", "closed_on"]
    finally:
        engine.dispose()


def test_0014_lets_staff_actions_record_enable_auto_sync_and_a_downgrade_takes_it_back(empty_db_url):
    engine = create_db_engine(empty_db_url)
    insert = sa.text(
        "INSERT INTO staff_actions (action, actor_username, outcome, created_at) VALUES (:action, 'sam', 'done', CURRENT_TIMESTAMP)"
    )
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(insert, {"action": "enable_auto_sync"})
            assert conn.execute(sa.text("SELECT count(*) FROM staff_actions")).scalar() == 1
        migrate.downgrade(engine, "0013")
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM staff_actions")).scalar() == 0
        with pytest.raises(sa.exc.IntegrityError, match="ck_staff_actions_action|CHECK constraint"):
            with engine.begin() as conn:
                conn.execute(insert, {"action": "enable_auto_sync"})
    finally:
        engine.dispose()
