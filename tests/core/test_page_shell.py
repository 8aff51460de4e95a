"""core/page_shell.py: a page address's HTML shell carries the backend-base hint, over real HTTP, in front
of Streamlit's own static handler with a compressing middleware inside (as `st.App` serves it)."""

from __future__ import annotations

import gzip

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from streamlit.web.server.starlette.starlette_static_routes import create_streamlit_static_handler

from core.page_shell import BackendBaseHint, hint_script, page_segment
from tests.core.test_api import LiveServer
from tests.core.test_static_assets import build, fetch  # noqa: F401 - `build` is a fixture

# Long enough for the inner GZipMiddleware (minimum 500 bytes) to compress it, as Streamlit's is.
INDEX = b"<!DOCTYPE html><html><head><title>shell</title></head><body>" + b"<!-- padding -->" * 64 + b"</body></html>"
NAV = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def shell_build(build):  # noqa: F811 - the fixture imported above
    (build / "index.html").write_bytes(INDEX)
    return build


class Served:
    def __init__(self, build_dir, hinted: bool, base_path: str = ""):
        middleware = [Middleware(BackendBaseHint, base_path=base_path)] if hinted else []
        inner = GZipMiddleware(create_streamlit_static_handler(str(build_dir), None), minimum_size=500)
        self.server = LiveServer(Starlette(routes=[Mount("/", app=inner)], middleware=middleware))

    def __enter__(self) -> int:
        return self.server.start().port

    def __exit__(self, *exc) -> None:
        self.server.stop()


@pytest.mark.parametrize(
    "path, base, expected",
    [
        ("/transactions", "", "transactions"),
        ("/transactions/", "", "transactions"),
        ("/", "", None),  # the main page: Streamlit's first probe is already right
        ("/a/b", "", None),  # page addresses are one segment
        ("/_stcore", "", None),
        ("/static", "", None),
        ("/favicon.png", "", None),  # a file, not a page
        ("/<script>", "", None),
        ("/tradistry/transactions", "tradistry", "transactions"),
        ("/tradistry/transactions", "/tradistry/", "transactions"),
        ("/transactions", "tradistry", None),  # outside the base path
        ("/tradistry", "tradistry", None),
    ],
)
def test_page_segment(path, base, expected):
    assert page_segment(path, base) == expected


def test_a_navigation_to_a_page_gets_the_shell_with_the_hint_first_in_head(shell_build):
    with Served(shell_build, hinted=False) as plain, Served(shell_build, hinted=True) as hinted:
        status, headers, body = fetch(hinted, "/transactions", headers=NAV)
        assert status == 200
        assert body == INDEX.replace(b"<head>", b"<head>" + hint_script("transactions"), 1)
        assert int(headers["content-length"]) == len(body)
        assert headers["cache-control"] == fetch(plain, "/transactions", headers=NAV)[1]["cache-control"]
        assert headers["etag"] != fetch(plain, "/transactions", headers=NAV)[1]["etag"]  # other bytes, other tag

        # Compressed when the browser accepts it: Streamlit is asked for the plain body, we compress the result.
        status, zipped_headers, zipped = fetch(hinted, "/transactions", headers={**NAV, "Accept-Encoding": "gzip"})
        assert (status, zipped_headers["content-encoding"]) == (200, "gzip")
        assert gzip.decompress(zipped) == body and int(zipped_headers["content-length"]) == len(zipped)

        # Revalidation: our tag answers 304; Streamlit's tag for the unhinted file does not match our bytes.
        assert fetch(hinted, "/transactions", headers={**NAV, "If-None-Match": headers["etag"]})[0] == 304
        theirs = fetch(plain, "/transactions", headers=NAV)[1]["etag"]
        assert fetch(hinted, "/transactions", headers={**NAV, "If-None-Match": theirs})[2] == body


@pytest.mark.parametrize(
    "path, method, headers",
    [
        ("/", "GET", NAV),
        ("/transactions", "GET", {"Accept": "*/*"}),  # a fetch, not a navigation
        ("/transactions", "GET", {"Accept": "*/*", "Accept-Encoding": "gzip"}),
        ("/transactions", "HEAD", NAV),
        ("/a/b", "GET", NAV),
        ("/static/js/Metric.Zz99.js", "GET", NAV),
    ],
)
def test_everything_else_gets_streamlits_own_answer(shell_build, path, method, headers):
    with Served(shell_build, hinted=False) as plain, Served(shell_build, hinted=True) as hinted:
        assert fetch(hinted, path, method, headers) == fetch(plain, path, method, headers)


def test_the_base_path_is_honoured(shell_build):
    with Served(shell_build, hinted=True, base_path="tradistry") as port:
        assert hint_script("transactions") in fetch(port, "/tradistry/transactions", headers=NAV)[2]
        assert b"__streamlit" not in fetch(port, "/transactions", headers=NAV)[2]
