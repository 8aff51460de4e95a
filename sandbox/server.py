"""The HTTP layer: a threaded stdlib server with keep-alive that hands each request to the sandbox app.

Hand-rolled rather than ASGI so a fault can close the socket without sending any response.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

log = logging.getLogger("sandbox.server")


@dataclass
class Request:
    method: str
    path: str  # raw path as sent, without the query
    query: str  # raw query string without "?"
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client: str = ""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


DROP = None  # an app returning DROP makes the server close the socket without answering

App = Callable[[Request], Optional[Response]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections across pages
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK
    # of the headers (~40 ms per request on Linux), which no real API server imposes.
    disable_nagle_algorithm = True
    server_version = "SnapTradeSandbox/1.0"
    sys_version = ""
    server: SandboxHTTPServer

    def _handle(self) -> None:
        target = self.path
        path, _, query = target.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, path, query, headers, body, self.client_address[0])
        try:
            resp = self.server.app(req)
        except Exception:  # a bug must not kill the connection thread silently
            log.exception("sandbox handler failed for %s %s", self.command, path)
            resp = Response(500, b'{"detail":"Internal sandbox error","status_code":500,"code":"1000"}')
        if resp is DROP:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _handle

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - " + format, self.address_string(), *args)


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, host: str, port: int, app: App) -> None:
        self.app = app
        super().__init__((host, port), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # clients that hang up mid-response (benchmarks, dropped-connection tests) are normal here
        log.debug("connection error from %s", client_address, exc_info=True)


def serve_in_thread(server: SandboxHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-http", daemon=True)
    t.start()
    return t
