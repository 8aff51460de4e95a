"""Process entry point: `streamlit run app.py` (or `uvicorn app:app`) serves the dashboard, the
webhook and health routes, and owns the process-wide services started in the lifespan.

Lifespan: migrations once, demo users and the embedded SnapTrade emulator in sandbox mode, the
in-process sync worker; everything is stopped again on shutdown. Only this file imports `sandbox`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import streamlit as st

from core.settings import Settings, get_settings, persistent_key

log = logging.getLogger("tradistry.app")


def _api_routes() -> list:
    from core.web.api import routes

    return list(routes)


def _sandbox_credential(settings: Settings, name: str) -> str:
    # Generated once and kept under data/keys, so a restart reuses the emulator's state file.
    return persistent_key(settings.data_dir, name)


def _start_sandbox(settings: Settings) -> Any:
    try:
        from sandbox import Sandbox
    except ImportError as exc:
        raise RuntimeError(f"Cannot start in sandbox mode: the emulator (sandbox.Sandbox) is missing: {exc}") from exc
    from core.snaptrade import client as snaptrade

    sb = Sandbox(
        seed=settings.sandbox_seed,
        state_file=str(settings.data_dir / "sandbox_state.db"),
        client_id=_sandbox_credential(settings, "sandbox_client_id"),
        consumer_key=_sandbox_credential(settings, "sandbox_consumer_key"),
        admin_token=settings.sandbox_admin_token or None,  # SANDBOX_ADMIN_TOKEN: lets e2e tests drive the emulator
        webhook_url=f"{settings.app_base_url.rstrip('/')}/api/webhooks/snaptrade",
        port=settings.sandbox_port or 0,
    ).start()
    snaptrade.configure_endpoint(base_url=sb.base_url, client_id=sb.client_id, consumer_key=sb.consumer_key)
    # The CLI (`python -m core sync …`) runs in another process and finds the emulator through this file.
    endpoint = snaptrade.embedded_endpoint_file(settings)
    endpoint.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(endpoint, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"base_url": sb.base_url, "client_id": sb.client_id, "consumer_key": sb.consumer_key}, f)
    log.info("sandbox mode: SnapTrade emulator listening at %s", sb.base_url)
    return sb


def _warm_up() -> None:
    """Pay the first visit's one-off costs at start-up: the pages' heavy imports (pandas, pyarrow), the
    first compile of every dashboard query (run for a user id that owns no rows) and the stack walk of
    Streamlit's first element, so the first trader after a restart waits mostly for their own data."""
    import importlib
    import inspect

    try:
        for module in ("pandas", "pyarrow", "core.reads.views"):  # core.reads.transactions/analytics: below
            importlib.import_module(module)
        from core.reads import analytics as an
        from core.reads import transactions as q
        from core.storage.db import session_scope

        nobody, filters = 0, q.TransactionFilters()
        with session_scope() as s:
            q.data_version(s, nobody)
            q.filter_options(s, nobody)
            q.transaction_totals(s, nobody, filters)
            q.transactions_page(s, nobody, filters, total=1)
            for chart in (an.monthly_cash_flow, an.dividends_by_symbol, an.monthly_fees, an.traded_value_by_symbol):
                chart(s, nobody, filters, "USD")
            an.activity_by_day(s, nobody, filters)
        # Streamlit's first element in a process walks the call stack (docs/INTERNALS.md,
        # streamlit-first-element-stack-walk), and inspect then resolves the path of every loaded module:
        # ~0.1 s of the first visit. One walk here fills inspect's cache of those paths.
        inspect.stack()
    except Exception:  # noqa: BLE001 - a warm-up must never stop the app from starting
        log.warning("start-up warm-up failed; the first visit will be slower", exc_info=True)


def _tune_server(port: int | None) -> None:
    """Two process-wide settings that make every page load and rerun cheaper; see the comments."""
    import gc

    from core.web.sockets import disable_nagle_on_listeners

    # Streamlit's listening socket leaves Nagle's algorithm on: ~40 ms per keep-alive request (core/web/sockets.py).
    if not disable_nagle_on_listeners(port):
        log.info("no listening socket on port %s to set TCP_NODELAY on", port)
    # Streamlit runs a full gc.collect() after every script run (runner.postScriptGC), holding the GIL, so
    # the event loop serving scripts and websocket frames stalls meanwhile. Nearly all objects are the
    # imports and warm-up of this start-up and live as long as the process: freezing them moves them out of
    # the collector's reach, and each post-run collection walks only what the sessions created since.
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
    settings = get_settings()  # refuses weak production secrets with a ConfigurationError naming the variable
    from core.logs import configure_logging, log_event
    from core.snaptrade import client as snaptrade

    configure_logging(settings)  # one handler on the root logger: LOG_FORMAT text or json, LOG_LEVEL
    from core.accounts import auth
    from core.storage import migrate
    from core.storage.db import session_scope

    migrate.upgrade()
    with session_scope() as session:
        demo = auth.ensure_demo_users(session)
    if demo:
        log.info("sandbox mode: demo logins %s", ", ".join(f"{u}/{p}" for u, p, _ in demo))
    _warm_up()
    _tune_server(st.get_option("server.port"))

    sandbox = worker = None
    try:
        if settings.sandbox_mode:
            sandbox = _start_sandbox(settings)
        if settings.worker_enabled:
            from core.jobs.worker import Worker

            worker = Worker().start()
        log_event(log, "app.start", "Tradistry Broker Sync started", mode="sandbox" if settings.sandbox_mode
                  else "production", worker=settings.worker_enabled, log_format=settings.log_format,
                  database=settings.resolved_database_url.split(":", 1)[0])  # fmt: skip
        yield {"sandbox": sandbox, "worker": worker}
    finally:
        log_event(log, "app.stop", "Tradistry Broker Sync stopping")
        if worker is not None:
            worker.stop()
        if sandbox is not None:
            sandbox.stop()
            snaptrade.clear_endpoint()
            snaptrade.embedded_endpoint_file(settings).unlink(missing_ok=True)


def _middleware() -> list:
    from pathlib import Path

    from starlette.middleware import Middleware

    from core.web.static_assets import StaticAssetCache

    # Streamlit's frontend build ships inside the package; its hashed files are answered from memory.
    return [Middleware(StaticAssetCache, build_dir=Path(st.__file__).parent / "static")]


app = st.App("pages/main.py", lifespan=lifespan, routes=_api_routes(), middleware=_middleware())

if __name__ == "__main__":
    app.run()
