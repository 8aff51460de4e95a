"""app.py's start-up warm-up: the first visit's one-off costs are paid before the server reports healthy."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable

from tests.conftest import ROOT


def test_warm_up_runs_every_dashboard_query_without_touching_data(engine, caplog):  # noqa: ARG001 - migrates the db
    import sqlalchemy as sa

    import app
    from core.storage.db import get_engine

    warm_engine = get_engine()  # the engine session_scope() uses, pointed at the fresh database by `engine`
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest):
        statements.append(statement)

    sa.event.listen(warm_engine, "before_cursor_execute", record)
    try:
        with caplog.at_level(logging.WARNING, logger="tradistry.app"):
            app._warm_up()
    finally:
        sa.event.remove(warm_engine, "before_cursor_execute", record)
    assert not [r for r in caplog.records if "warm-up failed" in r.getMessage()]
    reads = [s for s in statements if "brokerage_transactions" in s]
    assert len(reads) >= 9 and all(s.lstrip().upper().startswith("SELECT") for s in reads)


def fresh_interpreter(tmp_path) -> Callable[[str], str]:
    """`python -c CODE` in a new interpreter, from the project root, on a migrated SQLite database: its stdout."""
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
           "AUTH_COOKIE_KEY": "k" * 48, "LOG_LEVEL": "ERROR"}  # fmt: skip
    subprocess.run([sys.executable, "-m", "core", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)

    def run(code: str) -> str:
        code = "import os, sys; sys.path.insert(0, os.getcwd()); import app; " + code
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    return run


def test_warm_up_imports_what_the_first_page_run_would(tmp_path):
    """In a fresh interpreter: after the warm-up, pandas and the page queries are already imported."""
    loaded = "{m for m in ('pandas', 'core.reads.transactions', 'core.reads.analytics') if m in sys.modules}"
    out = fresh_interpreter(tmp_path)(f"before = {loaded}; app._warm_up(); print(sorted(before), sorted({loaded}))")
    assert out == "[] ['core.reads.analytics', 'core.reads.transactions', 'pandas']"


def test_warm_up_spares_streamlits_first_element_its_walk_over_every_modules_path(tmp_path):
    """In a fresh interpreter, the paths inspect resolves while Streamlit shows its first element: one per loaded
    module without the warm-up (docs/INTERNALS.md, streamlit-first-element-stack-walk), almost none after it."""
    code = (
        "import streamlit as st; {warm}resolved, realpath = [], os.path.realpath; "
        "os.path.realpath = lambda p, *a, **k: (resolved.append(p), realpath(p, *a, **k))[1]; "
        "st.markdown('first element'); print(len(resolved), len(sys.modules))"
    )
    run = fresh_interpreter(tmp_path)
    (cold, modules), (warmed, _) = (
        [int(n) for n in run(code.format(warm=w)).split()] for w in ("", "app._warm_up(); ")
    )
    assert cold > modules / 2, (cold, modules)  # the walk the warm-up spares is still there
    assert warmed < 20, (warmed, cold)


def test_tune_server_turns_nagle_off_for_the_app_port_and_freezes_the_start_up_heap():
    import gc

    import app
    from tests.core.web.test_sockets import accepted_nodelay, streamlit_style_listener

    with streamlit_style_listener() as listener:
        before = gc.get_freeze_count()
        try:
            app._tune_server(listener.getsockname()[1])

            assert accepted_nodelay(listener) == 1
            assert gc.get_freeze_count() > before
            # The point of freezing: a full collection no longer walks the objects alive at start-up.
            assert len(gc.get_objects(generation=2)) < gc.get_freeze_count()
        finally:
            gc.unfreeze()


def test_the_app_serves_streamlits_build_files_from_memory():
    """`app._middleware()` puts core.web.static_assets in front of Streamlit, over the installed frontend build:
    the bundle that index.html loads is among the files it answers."""
    import re
    from pathlib import Path

    import streamlit as st

    import app
    from core.web.static_assets import StaticAssetCache

    (entry,) = [m for m in app._middleware() if m.cls is StaticAssetCache]
    cache = StaticAssetCache(None, **entry.kwargs)
    build = Path(st.__file__).parent / "static"
    bundle = re.search(r'src="\./(static/js/index\.[\w-]+\.js)"', (build / "index.html").read_text()).group(1)
    assert cache.files[f"/{bundle}"] == build / bundle
    assert "/index.html" not in cache.files  # the shell stays no-cache, answered by Streamlit
