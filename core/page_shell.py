"""The HTML shell Streamlit sends for a page address such as /transactions, told where the server is.

Streamlit's frontend does not know whether /transactions is a page of an app served at / or the main
page of an app served under /transactions/. It asks both, in that order: the health check of
/transactions/ answers 404, and the frontend waits 100 ms before asking / (its retry back-off), so
every visit or reload of a page other than the main one starts ~0.13 s late. The server knows the
answer: its own base path plus one page segment. This middleware adds one inline script to that
shell which sets `window.__streamlit.BACKEND_BASE_URL` (the hook the frontend reads for embedding,
read once when its bundle starts) to the address without the page segment, so the first ask is the
right one.

The client strips the segment only when its address ends with it, so a proxy that serves the app
under another prefix still works; any other case (a host page that already set the hook, a rewritten
path) keeps Streamlit's own probing. Framework-agnostic: app.py passes the base path.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from typing import Any

from core.static_assets import etag_matches, send_not_modified

# Page addresses are one segment (Streamlit's url_path); anything else passes through untouched.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,100}")
_RESERVED = {"_stcore", "static", "media", "component", "app", "api"}
_SCRIPT = (
    "<script>(function(){{var s=window.__streamlit||{{}};if(s.BACKEND_BASE_URL)return;"
    "var p=location.pathname.replace(/\\/+$/,\"\"),page={page};"
    "if(p.slice(-page.length-1)!==\"/\"+page)return;"
    "window.__streamlit=Object.assign({{}},s,{{BACKEND_BASE_URL:location.origin+p.slice(0,-page.length)}});"
    "}})();</script>"
)


def hint_script(page: str) -> bytes:
    """The inline script for a page segment (already checked against _SEGMENT, and JSON-quoted anyway)."""
    return _SCRIPT.format(page=json.dumps(page)).encode()


def page_segment(path: str, base_path: str) -> str | None:
    """The page segment of a request path under the app's base path, or None when it is not one."""
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    if base and not path.startswith(base + "/"):
        return None
    rest = path[len(base) :].strip("/")
    if not _SEGMENT.fullmatch(rest) or rest in _RESERVED:
        return None
    return rest


class BackendBaseHint:
    """ASGI middleware: a browser navigation (GET, Accept: text/html) to `<base>/<page>` gets Streamlit's
    shell with the hint script first in <head>. The body is asked for uncompressed and without the
    browser's validator, changed, then given its own ETag (so a 304 still answers an unchanged page)
    and compressed here when the browser accepts gzip."""

    def __init__(self, app: Any, base_path: str = "") -> None:
        self.app = app
        self.base_path = base_path

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        page = page_segment(scope.get("path", ""), self.base_path)
        if page is None or b"text/html" not in headers.get(b"accept", b""):
            await self.app(scope, receive, send)
            return
        dropped = (b"accept-encoding", b"if-none-match", b"if-modified-since")
        inner = {**scope, "headers": [(k, v) for k, v in scope.get("headers") or [] if k.lower() not in dropped]}
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(inner, receive, capture)
        response_headers = [(k.lower(), v) for k, v in start.get("headers", [])]
        body = b"".join(chunks)
        content_type = dict(response_headers).get(b"content-type", b"")
        if start.get("status") == 200 and content_type.startswith(b"text/html") and b"<head>" in body:
            body = body.replace(b"<head>", b"<head>" + hint_script(page), 1)
            etag = b'"' + hashlib.md5(body, usedforsecurity=False).hexdigest().encode() + b'"'
            kept = [(k, v) for k, v in response_headers
                    if k not in (b"content-length", b"etag", b"content-encoding", b"last-modified", b"vary")]  # fmt: skip
            if etag_matches(headers, etag):
                await send_not_modified(send, etag)
                return
            kept += [(b"etag", etag), (b"vary", b"Accept-Encoding")]
            if b"gzip" in headers.get(b"accept-encoding", b""):
                body = gzip.compress(body, 6)
                kept.append((b"content-encoding", b"gzip"))
            response_headers = [*kept, (b"content-length", str(len(body)).encode())]
        await send({**start, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
