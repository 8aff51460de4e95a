"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL server
that the suite starts itself; settings point at a temporary data directory."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.settings import reset_settings_cache  # noqa: E402
from core.storage import migrate  # noqa: E402
from core.storage.db import create_db_engine, dispose_engines  # noqa: E402
from tests.pgserver import find_pg_bin, start_postgres  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL binaries on this machine (Debian package 'postgresql'): PostgreSQL tests skipped")
    server = start_postgres()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def pg_template(pg_server):
    """A database migrated to head once; each test copies it (CREATE DATABASE … TEMPLATE)."""
    admin = sa.create_engine(pg_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text("CREATE DATABASE tmpl_head"))
    engine = create_db_engine(pg_server.url_for("tmpl_head"))
    migrate.upgrade(engine)
    engine.dispose()
    yield "tmpl_head"
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite-template") / "head.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


def new_pg_database(pg_server, template: str | None = "tmpl_head") -> str:
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = sa.create_engine(pg_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")))
    admin.dispose()
    return pg_server.url_for(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """URL of a fresh database migrated to head, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    server = request.getfixturevalue("pg_server")
    request.getfixturevalue("pg_template")
    return new_pg_database(server)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request, tmp_path) -> str:
    """URL of a fresh, empty database (no tables), on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return new_pg_database(request.getfixturevalue("pg_server"), template=None)


@pytest.fixture
def settings_env(tmp_path, monkeypatch):
    """Environment for a sandbox-mode app with its data under tmp_path; returns a setter."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("ENCRYPTION_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("AUTH_COOKIE_KEY", "k" * 48)
    for var in ("SNAPTRADE_CLIENT_ID", "SNAPTRADE_CONSUMER_KEY", "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    reset_settings_cache()
    yield monkeypatch
    reset_settings_cache()


@pytest.fixture
def engine(db_url, settings_env):
    """Engine on a fresh migrated database; settings (get_settings) point at it too."""
    settings_env.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    eng = create_db_engine(db_url)
    yield eng
    eng.dispose()
    dispose_engines()


@pytest.fixture
def session(engine):
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def sandbox():
    """A fresh SnapTrade emulator on a free loopback port; core's client is pointed at it."""
    from core.snaptrade.client import clear_endpoint, configure_endpoint
    from sandbox import Sandbox

    sb = Sandbox(seed=11).start()
    configure_endpoint(sb.base_url, sb.client_id, sb.consumer_key)
    yield sb
    clear_endpoint()
    sb.stop()


SUITE_LOG = ROOT / "test-artifacts" / "suite.log"
TEST_COOKIE_KEYS = ("k" * 48, "c" * 48)


@pytest.fixture(scope="session", autouse=True)
def suite_log():
    """Capture the logs of the whole suite (urllib3 at DEBUG: it logs full URLs) for the secret scan."""
    import logging

    from core.redaction import install_log_redaction

    install_log_redaction()
    SUITE_LOG.parent.mkdir(parents=True, exist_ok=True)
    SUITE_LOG.write_text("")
    # Append mode: logging.config.dictConfig (uvicorn's, in the webhook tests) closes every handler, and a
    # closed FileHandler reopens on the next record; in "w" mode that would wipe what was captured so far.
    handler = logging.FileHandler(SUITE_LOG, mode="a", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    yield
    root.removeHandler(handler)
    handler.close()
    root.setLevel(previous)


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any user secret, consumer key or cookie key reached the captured logs."""
    from core.redaction import known_secrets

    if not SUITE_LOG.exists():
        return
    secrets = known_secrets() | set(TEST_COOKIE_KEYS)
    text = SUITE_LOG.read_text(encoding="utf-8", errors="replace")
    logs = [text] + [
        p.read_text(errors="replace") for p in (ROOT / "test-artifacts").glob("**/*.log") if p != SUITE_LOG
    ]
    leaked = sorted({s[:4] + "…" for s in secrets for blob in logs if s and s in blob})
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaked:
        if reporter:
            reporter.write_line(f"SECRET LEAK: {len(leaked)} secret(s) found in the captured logs: {leaked}", red=True)
        session.exitstatus = 1
    elif reporter:
        reporter.write_line(
            f"secret scan: {len(secrets)} secrets checked against {sum(map(len, logs))} bytes of logs: clean"
        )
