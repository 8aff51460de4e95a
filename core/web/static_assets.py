"""Streamlit's frontend build (hashed JavaScript, CSS and fonts) served from memory.

A first visit fetches ~130 of these files. Streamlit serves them through Starlette's StaticFiles:
a stat, an open and chunked reads on worker threads, under four middlewares, per request. That
took 2.5 ms of the app server's CPU per file, 0.6 s per fresh visit, on the same two CPUs the
browser needs to render the page. Hashed build files never change while the process runs
(Streamlit already marks them `immutable`), so this middleware answers them from memory with the
same headers, in ~0.5 ms each; everything else goes on to Streamlit unchanged.

Framework-agnostic on purpose: app.py passes in Streamlit's static folder (core/ never imports it).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

# A reach into Streamlit's and Starlette's header rules, guarded: docs/INTERNALS.md (streamlit-static-handler-headers).
# What Streamlit's static handler sends for hashed build files.
IMMUTABLE = "public, immutable, max-age=31536000"


@dataclass(frozen=True)
class _Asset:
    body: bytes
    headers: list[tuple[bytes, bytes]]
    etag: bytes


def _load(path: Path) -> _Asset:
    # Headers as Starlette's FileResponse builds them, so a browser's cached copy and its ETag stay valid
    # whichever of the two answered.
    stat = path.stat()
    body = path.read_bytes()
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"
    etag = '"' + hashlib.md5(f"{stat.st_mtime}-{stat.st_size}".encode(), usedforsecurity=False).hexdigest() + '"'
    headers = [
        (b"content-type", media_type.encode()),
        (b"accept-ranges", b"bytes"),
        (b"content-length", str(len(body)).encode()),
        (b"last-modified", formatdate(stat.st_mtime, usegmt=True).encode()),
        (b"etag", etag.encode()),
        (b"cache-control", IMMUTABLE.encode()),
    ]
    return _Asset(body, headers, etag.encode())


def etag_matches(request_headers: dict[bytes, bytes], etag: bytes) -> bool:
    """Whether the request's If-None-Match names this ETag (it may list several)."""
    return etag in [t.strip() for t in request_headers.get(b"if-none-match", b"").split(b",")]


async def send_not_modified(send: Any, etag: bytes) -> None:
    await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag)]})
    await send({"type": "http.response.body", "body": b""})


class StaticAssetCache:
    """ASGI middleware: GET/HEAD of a file under `<build_dir>/static/` is answered from memory.

    Only the files present when the app starts are served, by exact path, so nothing outside that
    folder can be reached. A file is read on its first request and kept for the life of the process
    (the whole build is ~26 MB; a visit uses ~5 MB of it). Range requests, other methods and every
    other path pass through to the wrapped app.
    """

    def __init__(self, app: Any, build_dir: Path, url_prefix: str = "/static/") -> None:
        self.app = app
        root = Path(build_dir) / "static"
        self.files: dict[str, Path] = {}
        if root.is_dir():
            for dirpath, _dirs, names in os.walk(root):
                for name in names:
                    path = Path(dirpath) / name
                    self.files[url_prefix + path.relative_to(root).as_posix()] = path
        self.cache: dict[str, _Asset] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD") or path not in self.files:
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope.get("headers") or [])
        if b"range" in request_headers:
            await self.app(scope, receive, send)
            return
        asset = self.cache.get(path)
        if asset is None:
            try:
                asset = self.cache[path] = _load(self.files[path])
            except OSError:  # removed since start-up: let Streamlit give its usual answer
                await self.app(scope, receive, send)
                return
        if etag_matches(request_headers, asset.etag):
            await send_not_modified(send, asset.etag)
            return
        await send({"type": "http.response.start", "status": 200, "headers": asset.headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else asset.body})
