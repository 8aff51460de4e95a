"""The re-login cookie, written by the server so page scripts can never read it (HttpOnly).

A Streamlit page reaches the browser only through the websocket, which cannot set cookies, so sign-in
(and logout) issue a one-time code instead; a tiny script in the page trades it at POST
`/api/session/cookie` for a `Set-Cookie: <name>=<token>; HttpOnly; SameSite=Strict; Path=/` (plus
`Secure` over https), or for the cookie's deletion. A code is random, works once, dies after
CODE_TTL_SECONDS and travels in the request body, never in a URL (so no access log or proxy keeps it);
only its hash is held, in this process's memory, next to the cookie value it stands for.

Starlette only: no streamlit here (pages/login.py issues codes, core/api.py serves the route).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.settings import Settings, get_settings

ROUTE_PATH = "/api/session/cookie"
CODE_TTL_SECONDS = 60.0
MAX_BODY_BYTES = 1024
MAX_PENDING = 10_000  # codes waiting for their exchange; beyond this the oldest are dropped


@dataclass(frozen=True)
class CookieGrant:
    """What one code is worth: set the cookie to `token`, or clear it."""

    op: str  # "set" | "clear"
    token: str | None
    expires_at: float


class CookieCodes:
    """One-time codes, kept as hashes: redeeming one removes it, whatever it was worth."""

    def __init__(self, ttl_seconds: float = CODE_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._grants: dict[str, CookieGrant] = {}
        self._lock = threading.Lock()

    def issue(self, op: str, token: str | None = None) -> str:
        if op not in ("set", "clear") or (op == "set") != bool(token):
            raise ValueError("a set code needs the cookie value; a clear code takes none")
        code = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._grants = {k: g for k, g in self._grants.items() if g.expires_at > now}
            while len(self._grants) >= MAX_PENDING:
                self._grants.pop(next(iter(self._grants)))
            self._grants[_digest(code)] = CookieGrant(op, token, now + self.ttl_seconds)
        return code

    def redeem(self, code: str) -> CookieGrant | None:
        """The grant of a code seen for the first time within its lifetime; None for anything else."""
        with self._lock:
            grant = self._grants.pop(_digest(code), None)
        if grant is None or grant.expires_at <= self.clock():
            return None
        return grant


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


codes = CookieCodes()


def issue_set_code(token: str) -> str:
    """A code the browser trades for the re-login cookie holding `token` (core.accounts.auth.issue_session_token)."""
    return codes.issue("set", token)


def issue_clear_code() -> str:
    """A code the browser trades for the deletion of the re-login cookie."""
    return codes.issue("clear")


# --- the route --------------------------------------------------------------------------------------


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers={"Cache-Control": "no-store"})


def _same_origin(request: Request, settings: Settings) -> bool:
    """Only the app's own pages may trade a code: a cross-site form could otherwise plant a session of
    the attacker's in the victim's browser (login CSRF). Browsers send Origin on every POST fetch."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site request; the code alone authorizes it
    allowed = {request.headers.get("host", ""), urlsplit(settings.app_base_url).netloc}
    return urlsplit(origin).netloc in allowed


async def _code_from(request: Request) -> str | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) and 0 < len(code) <= 128 else None


def _is_https(request: Request, settings: Settings) -> bool:
    # uvicorn reports https for TLS it terminates and, from trusted proxies, for X-Forwarded-Proto.
    return request.url.scheme == "https" or settings.app_base_url.startswith("https://")


async def exchange(request: Request) -> Response:
    """POST /api/session/cookie with JSON {"code"}: 204 and the Set-Cookie the code stands for; 400 for
    an unknown, used or expired code (the same answer for each, and no cookie)."""
    settings = get_settings()
    if not _same_origin(request, settings):
        return _refuse(403, "cross-origin request")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return _refuse(415, "send the code as JSON")
    code = await _code_from(request)
    grant = codes.redeem(code) if code else None
    if grant is None:
        return _refuse(400, "unknown, used or expired code")
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    flags = {"path": "/", "secure": _is_https(request, settings), "httponly": True, "samesite": "strict"}
    if grant.op == "set":
        response.set_cookie(settings.auth_cookie_name, grant.token or "",
                            max_age=int(settings.auth_cookie_expiry_days * 86400), **flags)  # fmt: skip
    else:
        response.delete_cookie(settings.auth_cookie_name, **flags)
    return response
