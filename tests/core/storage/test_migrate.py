"""core/storage/migrate.py: the migrations runner the app and the CLI call at start-up, on SQLite and PostgreSQL.

(tests/core/storage/test_migrations.py checks the migrations themselves: models and scripts agree, down and up.)
"""

from __future__ import annotations

import logging
import threading

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from core.storage import migrate
from core.storage.db import create_db_engine

WRITES = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")


@pytest.fixture
def empty_engine(empty_db_url):
    engine = create_db_engine(empty_db_url)
    yield engine
    engine.dispose()


def head() -> str:
    return ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


def version(engine) -> str | None:
    with engine.connect() as c:
        if "alembic_version" not in sa.inspect(c).get_table_names():
            return None
        return c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


def test_upgrade_brings_an_empty_database_to_the_scripts_head(empty_engine):
    assert version(empty_engine) is None
    migrate.upgrade(empty_engine)
    assert version(empty_engine) == head()
    assert {"app_users", "brokerage_transactions", "transaction_sync_log"} <= set(
        sa.inspect(empty_engine).get_table_names()
    )


def test_a_second_upgrade_only_reads_the_version_and_writes_nothing(empty_engine):
    migrate.upgrade(empty_engine)
    statements: list[str] = []
    sa.event.listen(empty_engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    migrate.upgrade(empty_engine)
    assert any("alembic_version" in s for s in statements)
    assert [s for s in statements if s.lstrip().upper().startswith(WRITES)] == []
    assert version(empty_engine) == head()


def test_upgrade_stops_at_the_revision_asked_for_and_resumes_from_there(empty_engine):
    migrate.upgrade(empty_engine, "0003")
    assert version(empty_engine) == "0003"
    assert "user_transaction_counts" not in sa.inspect(empty_engine).get_table_names()
    migrate.upgrade(empty_engine)
    assert version(empty_engine) == head()
    assert "user_transaction_counts" in sa.inspect(empty_engine).get_table_names()


def test_upgrade_leaves_the_callers_logging_as_it_was(empty_engine):
    """alembic.ini's logging sections are for the alembic CLI only: applied here they would replace the app's
    handlers (and the suite's captured log) and raise the root level to WARNING."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    migrate.upgrade(empty_engine)
    assert root.handlers == handlers and root.level == level
    assert not logging.getLogger("tradistry.sync").disabled


def test_the_migrations_are_found_from_any_working_directory(empty_engine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    migrate.upgrade(empty_engine)
    assert version(empty_engine) == head()


def _postgres_only(engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; SQLite has one writer at a time")


def test_concurrent_starters_on_postgresql_wait_for_the_first_and_all_succeed(empty_engine):
    _postgres_only(empty_engine)
    start, errors = threading.Barrier(3), []

    def starter() -> None:
        start.wait()
        try:
            migrate.upgrade(empty_engine)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=starter) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert version(empty_engine) == head()


def held_advisory_locks(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k"),
                         {"k": migrate.ADVISORY_LOCK_ID}).scalar_one()  # fmt: skip


def test_the_advisory_lock_is_released_when_an_upgrade_fails(empty_engine):
    _postgres_only(empty_engine)
    with pytest.raises(CommandError, match="no-such-revision"):
        migrate.upgrade(empty_engine, "no-such-revision")
    assert held_advisory_locks(empty_engine) == 0
    migrate.upgrade(empty_engine)
    assert held_advisory_locks(empty_engine) == 0 and version(empty_engine) == head()
