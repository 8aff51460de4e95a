"""core/web/static_assets.py: Streamlit's build files answered from memory, byte for byte and header for header
what Streamlit's own static handler answers, over real HTTP (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from streamlit.web.server.starlette.starlette_static_routes import create_streamlit_static_handler

from core.web.static_assets import IMMUTABLE, StaticAssetCache
from tests.core.web.test_api import LiveServer

INDEX = b"<!DOCTYPE html><html><head><title>shell</title></head><body></body></html>"
FILES = {
    "static/js/index.Ab12Cd34.js": b'import"./Metric.Zz99.js";console.log("app")',
    "static/js/Metric.Zz99.js": b"export const m=1;" * 200,
    "static/css/index.Q1w2.css": b"body{margin:0}",
    "static/media/Font.R5t6.woff2": bytes(range(256)) * 40,
}


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A miniature of Streamlit's static folder: the shell plus hashed js, css and font files."""
    (tmp_path / "index.html").write_bytes(INDEX)
    for rel, body in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(body)
    return tmp_path


@contextmanager
def serve(build_dir: Path, *, cached: bool) -> Iterator[int]:
    """Streamlit's static handler, as `st.App` mounts it, with or without the cache in front."""
    middleware = [Middleware(StaticAssetCache, build_dir=build_dir)] if cached else []
    app = Starlette(routes=[Mount("/", app=create_streamlit_static_handler(str(build_dir), None))],
                    middleware=middleware)  # fmt: skip
    server = LiveServer(app).start()
    try:
        yield server.port
    finally:
        server.stop()


def fetch(port: int, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders() if k.lower() not in ("date", "server")}
        return r.status, hdrs, r.read()
    finally:
        conn.close()


@contextmanager
def both(build_dir: Path) -> Iterator[tuple[int, int]]:
    with serve(build_dir, cached=False) as plain, serve(build_dir, cached=True) as cached:
        yield plain, cached


@pytest.mark.parametrize("rel", list(FILES))
def test_answers_exactly_what_streamlit_answers(build, rel):
    """Status, body and every header but Date/Server: a browser's cached copy and ETag stay valid either way."""
    with both(build) as (plain, cached):
        for method in ("GET", "HEAD"):
            expected = fetch(plain, f"/{rel}", method)
            assert expected[0] == 200 and expected[1]["cache-control"] == IMMUTABLE  # the contract we mirror
            assert fetch(cached, f"/{rel}", method) == expected
            assert fetch(cached, f"/{rel}", method) == expected  # and again, now from memory
        etag = expected[1]["etag"]
        revalidate = {"If-None-Match": f'"other", {etag}'}
        assert fetch(cached, f"/{rel}", headers=revalidate) == fetch(plain, f"/{rel}", headers=revalidate)
        assert fetch(cached, f"/{rel}", headers=revalidate)[0] == 304


def test_a_file_is_read_once_and_then_served_from_memory(build):
    rel = "static/js/Metric.Zz99.js"
    with serve(build, cached=True) as port:
        assert fetch(port, f"/{rel}")[2] == FILES[rel]
        (build / rel).unlink()
        status, headers, body = fetch(port, f"/{rel}")
    assert (status, body, headers["cache-control"]) == (200, FILES[rel], IMMUTABLE)
    with serve(build, cached=False) as port:  # control: Streamlit alone now falls back to the shell
        assert fetch(port, f"/{rel}")[2] == INDEX


@pytest.mark.parametrize(
    "path, method, headers",
    [
        ("/", "GET", {}),  # the shell: never cached (no-cache), always Streamlit's
        ("/transactions", "GET", {}),  # a page address: Streamlit's single-page fallback
        ("/static/js/missing.Nope.js", "GET", {}),
        ("/static/js/../../index.html", "GET", {}),  # only exact paths of the build's files are served
        ("/static/js/Metric.Zz99.js", "GET", {"Range": "bytes=0-9"}),  # partial content: Streamlit's job
        ("/static/js/Metric.Zz99.js", "POST", {}),
    ],
)
def test_everything_else_gets_streamlits_own_answer(build, path, method, headers):
    with both(build) as (plain, cached):
        assert fetch(cached, path, method, headers) == fetch(plain, path, method, headers)


def test_only_files_present_at_start_up_are_served_from_memory(build):
    middleware = StaticAssetCache(app=None, build_dir=build)
    assert set(middleware.files) == {f"/{rel}" for rel in FILES}
    assert StaticAssetCache(app=None, build_dir=build / "nowhere").files == {}
