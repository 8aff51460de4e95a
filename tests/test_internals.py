"""Guards for the few places that rely on a dependency's private or undocumented internals (docs/INTERNALS.md).

One test per reach, named for it: it fails first when the dependency's version differs from the one the reach
was written against, then when the private thing no longer has the shape and behaviour we rely on.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
DOC = "docs/INTERNALS.md"

# The versions each reach was written against; docs/INTERNALS.md names the same ones.
WRITTEN_AGAINST = {
    "streamlit-static-handler-headers": {"streamlit": "1.67.0", "starlette": "1.10.0"},
    "streamlit-listening-socket-nagle": {"streamlit": "1.67.0"},
    "streamlit-first-element-stack-walk": {"streamlit": "1.67.0"},
    "sqlalchemy-sqlite-table-hint": {"sqlalchemy": "2.1.9"},
    "sqlalchemy-upsert-sql-text": {"sqlalchemy": "2.1.9"},
    "snaptrade-sdk-deserialize-body": {"snaptrade-python-sdk": "13.0.49"},
    "snaptrade-sdk-pool-manager-timeout": {"snaptrade-python-sdk": "13.0.49", "urllib3": "2.8.0"},
}


def _pinned(dist: str) -> str | None:
    """The version requirements.txt pins for `dist`, if it pins one."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-") == dist:
            return version.strip()
    return None


def written_against(reach: str, where: str) -> None:
    for dist, expected in WRITTEN_AGAINST[reach].items():
        installed = importlib.metadata.version(dist)
        hint = (f"re-check the reach '{reach}' ({where}) as {DOC} says, then update its version there and in "
                "WRITTEN_AGAINST in tests/test_internals.py")  # fmt: skip
        assert installed == expected, f"{dist} {installed} is installed; {reach} was written against {expected}: {hint}"
        pinned = _pinned(dist)
        assert pinned in (None, expected), (
            f"requirements.txt pins {dist}=={pinned}; {reach} was written against {expected}: {hint}"
        )


# --------------------------------------------------------------------------- streamlit


def _run(coro):
    """asyncio.run in a thread of its own: a browser test earlier in the session may leave a loop running here."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _asgi(app, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """One HTTP request through an ASGI app in-process: (status, headers, body)."""
    scope = {"type": "http", "http_version": "1.1", "scheme": "http", "method": method, "path": path,
             "raw_path": path.encode(), "root_path": "", "query_string": b"", "server": ("testserver", 80),
             "client": ("127.0.0.1", 1234),
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}  # fmt: skip
    sent: list[dict] = []
    requested, done = False, asyncio.Event()

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays until the whole answer is sent
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    start = sent[0]
    return (start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent[1:]))  # fmt: skip


async def _never(scope, receive, send) -> None:
    raise AssertionError(f"StaticAssetCache passed {scope['path']} on to the app")


def test_reach_streamlit_static_handler_headers():
    written_against("streamlit-static-handler-headers", "core/web/static_assets.py and app.py")
    import streamlit as st
    from streamlit import file_util
    from streamlit.web.server.starlette import starlette_server_config, starlette_static_routes

    from core.web.static_assets import IMMUTABLE, StaticAssetCache

    build = Path(st.__file__).parent / "static"  # what app.py passes
    assert Path(file_util.get_static_dir()) == build, "Streamlit's frontend build moved"
    assert IMMUTABLE == f"public, immutable, max-age={starlette_server_config.STATIC_ASSET_CACHE_MAX_AGE_SECONDS}"
    (mount,) = starlette_static_routes.create_streamlit_static_assets_routes(None)
    assert mount.path == "" and Path(mount.app.directory) == build, "Streamlit no longer serves its build at /"

    streamlit_handler = starlette_static_routes.create_streamlit_static_handler(str(build), None)
    cache = StaticAssetCache(_never, build)
    for pattern in ("js/index.*.js", "css/*.css", "media/*.woff2"):
        rel = "/" + next((build / "static").glob(pattern)).relative_to(build).as_posix()
        for method in ("GET", "HEAD"):
            expected = _run(_asgi(streamlit_handler, method, rel))
            assert expected[0] == 200 and expected[1]["cache-control"] == IMMUTABLE, rel
            assert _run(_asgi(cache, method, rel)) == expected, f"{method} {rel}: headers differ from Streamlit's"
        revalidate = {"If-None-Match": f'"stale", {expected[1]["etag"]}'}
        status, headers, _ = _run(_asgi(streamlit_handler, "GET", rel, revalidate))
        assert (status, headers["etag"]) == (304, expected[1]["etag"]), (
            f"Streamlit's handler no longer answers 304 for {rel}"
        )
        assert _run(_asgi(cache, "GET", rel, revalidate))[:2] == (304, {"etag": expected[1]["etag"]})


def test_reach_streamlit_listening_socket_nagle():
    written_against("streamlit-listening-socket-nagle", "core/web/sockets.py and app._tune_server")
    from streamlit.web.server.starlette import starlette_server

    from core.web.sockets import disable_nagle_on_listeners
    from tests.core.web.test_sockets import accepted_nodelay

    assert list(inspect.signature(starlette_server._bind_socket).parameters) == ["address", "port", "backlog"]
    listener = starlette_server._bind_socket("127.0.0.1", 0, 8)
    listener.settimeout(5)  # Streamlit's is non-blocking
    try:
        assert listener.proto == 0, (
            "Streamlit now binds with IPPROTO_TCP: asyncio sets TCP_NODELAY itself; the reach may go"
        )
        assert accepted_nodelay(listener) == 0
        port = listener.getsockname()[1]
        assert disable_nagle_on_listeners(port) == [("127.0.0.1", port)], (
            "Streamlit's listener was not found by descriptor"
        )
        assert accepted_nodelay(listener) != 0
    finally:
        listener.close()


def test_reach_streamlit_first_element_stack_walk(monkeypatch):
    written_against("streamlit-first-element-stack-walk", "app._warm_up")
    import streamlit as st
    from streamlit import delta_generator

    walks = []
    monkeypatch.setattr(
        inspect, "stack", lambda *a: walks.append(a) or [inspect.FrameInfo(None, "app.py", 1, "", [], 0)]
    )
    monkeypatch.setattr(delta_generator, "_use_warning_has_been_displayed", False)
    st.markdown("first element")
    st.markdown("second element")
    assert len(walks) == 1, (
        f"Streamlit walked the stack {len(walks)} times for two elements, not once for the first: re-check "
        "app._warm_up's inspect.stack()"
    )


# --------------------------------------------------------------------------- sqlalchemy


def test_reach_sqlalchemy_sqlite_table_hint():
    written_against("sqlalchemy-sqlite-table-hint", "core/storage/db.py")
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
    from sqlalchemy.sql.compiler import SQLCompiler

    from core.storage import db

    assert SQLiteCompiler.get_from_hint_text is db._sqlite_from_hint
    assert list(inspect.signature(SQLCompiler.get_from_hint_text).parameters) == ["self", "table", "text"]

    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("a", sa.Integer), sa.Index("ix_t_a", "a"))

    def hinted(index: str) -> sa.Select:
        return sa.select(t.c.a).with_hint(t, f"INDEXED BY {index}", "sqlite").where(t.c.a > 1)

    assert "FROM t INDEXED BY ix_t_a" in str(hinted("ix_t_a").compile(dialect=sqlite.dialect()))
    assert "INDEXED" not in str(hinted("ix_t_a").compile(dialect=postgresql.dialect()))
    engine = sa.create_engine("sqlite://")
    try:
        meta.create_all(engine)
        with engine.connect() as conn:
            assert conn.execute(hinted("ix_t_a")).all() == []
            with pytest.raises(sa.exc.OperationalError, match="no such index"):  # the hint reached SQLite
                conn.execute(hinted("ix_missing"))
    finally:
        engine.dispose()


def _dialects() -> list:
    """Both dialects as the app configures them (its JSON serializer included); nothing connects."""
    from core.storage.db import create_db_engine

    engines = [create_db_engine("sqlite://"), create_db_engine("postgresql://probe@127.0.0.1:1/probe")]
    dialects = [e.dialect for e in engines]
    for e in engines:
        e.dispose()
    return dialects


def _page_row(binder, activity_id: str, amount: str) -> dict:
    """One activity as sync.prepare_page makes it."""
    from core.ingest import page_write
    from core.ingest.normalize import normalize_activity

    raw = {"id": activity_id, "type": "BUY", "trade_date": "2024-03-22T10:00:00Z", "units": "2", "price": "1.5",
           "amount": amount, "currency": {"code": "USD"}, "symbol": {"symbol": "AAPL", "id": "s1"}}  # fmt: skip
    row = normalize_activity(raw, clean_raw=False)
    row["raw"], row["raw_hash"] = page_write.stored_raw(row["raw"])
    now = binder.stamp(datetime(2026, 11, 29, tzinfo=UTC))
    row.update(created_at=now, updated_at=now, user_id=1, account_id=1)
    return row


def test_reach_sqlalchemy_upsert_sql_text():
    written_against("sqlalchemy-upsert-sql-text", "core/ingest/binder.py (Binder._multi_sql)")
    from sqlmodel import SQLModel

    from core.ingest import binder as binding

    columns = [c.name for c in binding.T.columns if c.name != "id"]
    for dialect in _dialects():
        if dialect.name == "postgresql":
            continue  # PostgreSQL writes pages with COPY and a compiled INSERT … SELECT (core.ingest.pgcopy): no cut
        sql = str(binding.upsert_statement(dialect).compile(dialect=dialect, column_keys=columns))
        assert sql.count(" VALUES (") == 1 and sql.count(") ON CONFLICT") == 1, f"{dialect.name}: {sql[:200]}"
        binder = binding.Binder(dialect)
        assert sorted(binder.names) == sorted(columns)
        group = sql.split(" VALUES (", 1)[1].split(") ON CONFLICT", 1)[0]
        assert group == ", ".join(["?"] * len(columns))
        assert binder._multi_sql(3).count(f"({group})") == 3

    # The cut statement still works as an upsert on SQLite (no foreign keys on this bare engine).
    engine = sa.create_engine("sqlite://")
    try:
        SQLModel.metadata.create_all(engine, tables=[binding.T])
        binder = binding.Binder(engine.dialect)
        with engine.begin() as conn:
            binder.write(
                conn, [binder.bind(_page_row(binder, "a-1", "-3")), binder.bind(_page_row(binder, "a-2", "-4"))]
            )
            binder.write(conn, [binder.bind(_page_row(binder, "a-2", "-4.25"))])
            stored = conn.execute(
                sa.select(binding.T.c.snaptrade_activity_id, binding.T.c.amount).order_by(binding.T.c.id)
            ).all()
        assert stored == [("a-1", Decimal("-3")), ("a-2", Decimal("-4.25"))]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- snaptrade sdk


def test_reach_snaptrade_sdk_deserialize_body():
    written_against("snaptrade-sdk-deserialize-body", "core/snaptrade/client.py (_keep_activity_pages_raw)")
    import urllib3
    from snaptrade_client import Configuration, api_client, rest
    from snaptrade_client.apis.tags.account_information_api import AccountInformationApi
    from snaptrade_client.paths.accounts_account_id_activities import get as activities_get

    from core.snaptrade import client

    ok = activities_get._status_code_to_response["200"]
    assert isinstance(ok, api_client.OpenApiResponse)
    assert ok.deserialize_body.__qualname__.startswith("_keep_activity_pages_raw."), "our wrapper is not installed"
    assert list(inspect.signature(api_client.OpenApiResponse.deserialize_body).parameters) == [
        "self",
        "response",
        "content_type",
    ]
    oapg = inspect.signature(activities_get.BaseApi._get_account_activities_oapg)
    assert oapg.parameters["skip_deserialization"].default is True, "a None body would now be schema-validated"
    assert issubclass(AccountInformationApi, activities_get.GetAccountActivities)

    raw = b'{"data":[{"id":"a-1","amount":-1.10}],"pagination":{"offset":0,"limit":1000,"total":1}}'

    def answer() -> rest.ResponseWrapper:
        http = urllib3.HTTPResponse(
            body=raw, headers={"content-type": "application/json"}, status=200, preload_content=True
        )
        return rest.ResponseWrapper(http, 0.0)

    client._raw_answer.wanted = True
    try:
        kept = ok.deserialize(answer(), Configuration(), skip_deserialization=True)
    finally:
        client._raw_answer.wanted = False
    assert kept.body is None and kept.response.data == raw, "the SDK parsed the page although we read it raw"
    parsed = ok.deserialize(answer(), Configuration(), skip_deserialization=True)
    assert parsed.body["data"][0]["id"] == "a-1", "other callers no longer get the SDK's parsed body"


class NoTimeout(AssertionError):
    """A SnapTrade request outlived HTTP_TIMEOUT_SECONDS several times over."""


@contextmanager
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers; closing it ends whatever still waits on it."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def test_reach_snaptrade_sdk_pool_manager_timeout(settings_env):
    written_against("snaptrade-sdk-pool-manager-timeout", "core/snaptrade/client.py (SnapTradeClient.__init__)")
    import urllib3
    from snaptrade_client import rest

    from core.snaptrade.client import SnapTradeClient, UpstreamError

    settings_env.setenv("HTTP_TIMEOUT_SECONDS", "0.5")
    settings_env.setenv("HTTP_MAX_RETRIES", "0")
    from core.settings import reset_settings_cache

    reset_settings_cache()
    assert "timeout" in inspect.signature(rest.RESTClientObject.request).parameters
    with silent_server() as url:
        client = SnapTradeClient(
            endpoint={"base_url": url, "client_id": "guard-client", "consumer_key": "guard-consumer-key"}
        )
        sdk = client._sdk
        shared = sdk.account_information.api_client
        assert sdk.authentication.api_client is shared and sdk.connections.api_client is shared, (
            "one pool for every call"
        )
        pool = shared.rest_client.pool_manager
        # The SDK passes timeout=None on every request; our pool manager fills in HTTP_TIMEOUT_SECONDS.
        assert isinstance(pool, urllib3.PoolManager) and pool.default_timeout.read_timeout == 0.5

        outcome: list[BaseException] = []
        call = threading.Thread(
            target=lambda: outcome.append(_raised(client.list_accounts, "guard-user", "guard-user-secret"))
        )
        call.start()
        call.join(timeout=5)
        timed_out = not call.is_alive()
    call.join(timeout=5)  # the server closed: a request still waiting ends now
    if not timed_out:
        raise NoTimeout("list_accounts still waited on a silent server 5 s into a 0.5 s HTTP_TIMEOUT_SECONDS")
    assert isinstance(outcome[0], UpstreamError) and "did not answer" in str(outcome[0]), outcome


def _raised(fn, *args) -> BaseException | None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - handed back to the test thread
        return exc
    return None


# --------------------------------------------------------------------------- postgresql

POSTGRESQL_WRITTEN_AGAINST = 15  # the server's major version postgresql-upsert-xmax was checked on


def test_reach_postgresql_upsert_xmax(pg_server):
    """An `INSERT … ON CONFLICT DO UPDATE … RETURNING xmax = 0` is true for the rows it inserted and false for the
    rows it rewrote (core/ingest/pgcopy.py, CopyPageWriter.counting_sql), in or after a savepoint."""
    engine = sa.create_engine(pg_server.url)
    try:
        with engine.connect() as c:
            major = int(c.exec_driver_sql("SHOW server_version_num").scalar()) // 10000
            assert major == POSTGRESQL_WRITTEN_AGAINST, (
                f"PostgreSQL {major} is running; postgresql-upsert-xmax was written against "
                f"{POSTGRESQL_WRITTEN_AGAINST}: re-check it as {DOC} says, then update its version there and here"
            )
            c.exec_driver_sql("CREATE TEMPORARY TABLE guard_xmax (k int PRIMARY KEY, v text)")
            upsert = ("INSERT INTO guard_xmax (k, v) SELECT * FROM unnest(%(k)s::int[], %(v)s::text[]) ON CONFLICT (k) "
                      "DO UPDATE SET v = excluded.v WHERE guard_xmax.v <> excluded.v RETURNING k, xmax = 0")  # fmt: skip

            def write(rows: dict[int, str]) -> dict[int, bool]:
                return dict(c.exec_driver_sql(upsert, {"k": list(rows), "v": list(rows.values())}).all())

            assert write({1: "a", 2: "b"}) == {1: True, 2: True}
            assert write({1: "a", 2: "c", 3: "d"}) == {2: False, 3: True}  # 1 unchanged: not written
            with c.begin_nested():
                assert write({3: "e", 4: "f"}) == {3: False, 4: True}
            assert write({4: "g", 5: "h"}) == {4: False, 5: True}
            c.commit()
            assert write({5: "i"}) == {5: False}  # a row of an earlier transaction
            c.rollback()
    finally:
        engine.dispose()
