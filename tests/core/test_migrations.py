"""Migrations: empty → head works, models and migrations agree, head → base works, on both backends."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from core import migrate
from core.db import create_db_engine

EXPECTED_TABLES = {
    "app_users", "snaptrade_users", "brokerage_connections", "brokerage_accounts", "brokerage_transactions",
    "transaction_sync_log", "webhook_events", "sync_issues", "manual_sync_requests",
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
