"""Migrations: empty → head works, models and migrations agree, head → base works, on both backends."""

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
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
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
