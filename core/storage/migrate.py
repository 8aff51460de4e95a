"""Apply Alembic migrations once per process (CLI `migrate` and app start), never per page run.

On PostgreSQL an advisory lock makes concurrent starters wait for the first one.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.storage.db import get_engine

ROOT = Path(__file__).resolve().parents[2]
ADVISORY_LOCK_ID = 727_401_001


def include_object(dialect: str):
    """Alembic's include_object hook for this database: an object declared for another database only
    (`info["dialect"]`, as core.storage.models.imports.journal_indexes declares) is not compared with it."""

    def include(obj, _name, _type, _reflected, _compare_to) -> bool:
        return getattr(obj, "info", {}).get("dialect", dialect) == dialect

    return include


def alembic_config(connection=None) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["configure_logger"] = False
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine | None = None, revision: str = "head") -> None:
    engine = engine or get_engine()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_ID})
            conn.commit()
        try:
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_ID})
                conn.commit()


def downgrade(engine: Engine | None = None, revision: str = "base") -> None:
    engine = engine or get_engine()
    with engine.connect() as conn:
        command.downgrade(alembic_config(conn), revision)
        conn.commit()
