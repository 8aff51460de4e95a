"""AppTest fixtures for the dashboard pages: a fresh migrated SQLite database per test, users with
known passwords, and `dashboard(...)` which returns an AppTest of the router signed in as someone.

Sign-in seam: AppTest cannot run the cookie component or a browser, so `dashboard(user=...)` runs
the real `core.accounts.auth.authenticate` and seeds `session_state["auth"]` exactly as `pages.login.sign_in`
does; the router then re-checks that session against the database on every run, as in production.
Page tests run on SQLite only (AppTest is the slow part); core tests cover PostgreSQL.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from core.accounts import auth
from core.settings import reset_settings_cache
from core.storage.db import create_db_engine, dispose_engines
from tests.conftest import ROOT

PASSWORDS = {"tina": "tina-trades-2024", "sam": "sam-staff-2024"}


@pytest.fixture
def app_engine(tmp_path, sqlite_template, settings_env, monkeypatch):
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    settings_env.setenv("DATABASE_URL", url)
    settings_env.setenv("WORKER_ENABLED", "false")
    reset_settings_cache()
    # Cost 12 is tested in tests/core/accounts/test_auth.py; pages only need hashes that verify, quickly.
    monkeypatch.setattr(auth, "BCRYPT_COST", 4)
    engine = create_db_engine(url)
    yield engine
    engine.dispose()
    dispose_engines()


@pytest.fixture(autouse=True)
def _fresh_login_throttle():
    """The per-client failure counts live in process memory: each test starts with none."""
    auth.reset_login_throttle()
    yield
    auth.reset_login_throttle()


@pytest.fixture
def db(app_engine):
    with Session(app_engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def users(db):
    """A trader `tina` and a staff member `sam`."""
    return {
        "tina": auth.create_user(db, username="tina", password=PASSWORDS["tina"], name="Tina Trader"),
        "sam": auth.create_user(db, username="sam", password=PASSWORDS["sam"], role="staff", name="Sam Staff"),
    }


@pytest.fixture
def dashboard(db) -> Callable[..., AppTest]:
    def make(user: str | None = None, *, page: str | None = None, query: dict | None = None,
             timezone: str = "Europe/Paris") -> AppTest:  # fmt: skip
        at = AppTest.from_file(str(ROOT / "pages" / "main.py"), default_timeout=15)
        at.context = {"timezone": timezone}
        if user is not None:
            result = auth.authenticate(db, user, PASSWORDS[user])
            assert result.ok, result.message
            at.session_state["auth"] = {"username": result.username, "epoch": result.session_epoch}
        at.run()
        # Params are set after the first run because the home page's redirect drops them, as a
        # real st.switch_page does; the portal's redirect lands on /callback directly.
        for k, v in (query or {}).items():
            at.query_params[k] = v
        if page is not None:
            at.switch_page(page).run()
        return at

    return make


@pytest.fixture
def sandbox(tmp_path):
    """The SnapTrade emulator over real HTTP, with every client in this process pointed at it."""
    from core.snaptrade import client as snaptrade
    from sandbox import Sandbox

    sb = Sandbox(seed=7, state_file=str(tmp_path / "sandbox_state.db")).start()
    snaptrade.configure_endpoint(base_url=sb.base_url, client_id=sb.client_id, consumer_key=sb.consumer_key)
    yield sb
    snaptrade.clear_endpoint()
    sb.stop()
