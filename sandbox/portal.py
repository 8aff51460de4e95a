"""The connection portal behind `POST /snapTrade/login`: plain HTML forms, usable by people and by Playwright.

Flow: pick a brokerage (skipped with `broker`/`reconnect`) → Connect / Simulate invalid credentials / Cancel →
redirect to `customRedirect` with SnapTrade's `status=SUCCESS|ERROR|ABANDONED` query parameters (REFERENCE §5).
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox import errors
from sandbox.catalog import BROKERAGES
from sandbox.server import Request, Response

if TYPE_CHECKING:
    from sandbox.emulator import Sandbox

PREFIX = "/__portal__/"
CONNECTION_TYPES = {"read", "trade", "trade-if-available"}
PORTAL_VERSIONS = {"v2", "v3", "v4"}


@dataclass
class PortalSession:
    id: str
    user_id: str
    created: float
    broker: str | None
    custom_redirect: str | None
    immediate_redirect: bool
    reconnect: str | None
    connection_type: str
    used: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def _normalise_locale(locale: str) -> str | None:
    key = locale.replace("_", "-").lower()
    return {"en": "en", "pt-br": "pt-BR"}.get(key)


class Portal:
    def __init__(self, sb: Sandbox, ttl: float = 300.0) -> None:
        self.sb = sb
        self.ttl = ttl
        self._sessions: dict[str, PortalSession] = {}
        self._lock = threading.Lock()

    # -- login ----------------------------------------------------------------------------------------------------
    def create_session(self, user_id: str, body: dict[str, Any], host: str | None) -> dict[str, str]:
        """Validate login options like SnapTrade and return `{"redirectURI","sessionId"}`."""
        broker = body.get("broker")
        if broker is not None and broker not in BROKERAGES:
            raise errors.invalid_input(f"Invalid brokerage slug: {broker}")
        conn_type = body.get("connectionType", "read")
        if conn_type not in CONNECTION_TYPES:
            raise errors.invalid_input("connectionType must be one of read, trade, trade-if-available")
        if "locale" in body and _normalise_locale(str(body["locale"])) is None:
            raise errors.invalid_input("locale must be en or pt-BR")
        if "connectionPortalVersion" in body and body["connectionPortalVersion"] not in PORTAL_VERSIONS:
            raise errors.invalid_input("connectionPortalVersion must be v4")
        reconnect = body.get("reconnect")
        if reconnect is not None:
            conn = self._reconnect_target(user_id, reconnect)
            broker = conn.broker
        if broker and conn_type == "trade" and not BROKERAGES[broker].allows_trading:
            raise errors.invalid_input(f"{broker} does not have a trade type available")
        sid = str(uuid.uuid4())
        session = PortalSession(
            sid,
            user_id,
            time.monotonic(),
            broker,
            body.get("customRedirect"),
            bool(body.get("immediateRedirect", False)),
            reconnect,
            conn_type,
            options=dict(body),
        )
        with self._lock:
            self._sessions[sid] = session
        base = f"http://{host}" if host else self.sb.base_url
        return {"redirectURI": f"{base}{PREFIX}{sid}", "sessionId": sid}

    def _reconnect_target(self, user_id: str, reconnect: str):  # noqa: ANN202 - returns a state.Connection
        try:
            uuid.UUID(str(reconnect))
        except ValueError:
            raise errors.invalid_input("reconnect must be a connection UUID") from None
        conn = self.sb.state.connections.get(reconnect)
        if conn is None or conn.user_id != user_id:
            raise errors.invalid_input("reconnect does not match a connection of this user")
        return conn

    def expire_all(self) -> None:
        with self._lock:
            for s in self._sessions.values():
                s.created = -1e12

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def handle(self, req: Request) -> tuple[str, Response]:
        """(path template for the request log, response)."""
        rest = req.path[len(PREFIX) :].strip("/")
        sid, _, action = rest.partition("/")
        template = PREFIX + "{sessionId}" + (f"/{action}" if action else "")
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"))) if req.method == "POST" else {}
        form.update(dict(parse_qsl(req.query)))
        with self._lock:
            session = self._sessions.get(sid)
        if session is None or session.used or time.monotonic() - session.created > self.ttl:
            return template, self._expired(session)
        if action == "" and req.method == "GET":
            if session.broker:
                return template, self._credentials_page(session, session.broker)
            return template, self._picker_page(session)
        if action == "broker":
            broker = form.get("broker", "")
            if broker not in BROKERAGES or (session.broker and broker != session.broker):
                return template, _page("Unknown brokerage", "<p>Choose a brokerage from the list.</p>", 400)
            return template, self._credentials_page(session, broker)
        if action == "submit" and req.method == "POST":
            return template, self._submit(session, form)
        return template, _page("Not found", "<p>Unknown portal page.</p>", 404)

    def _picker_page(self, s: PortalSession) -> Response:
        buttons = "\n".join(
            f'<li><button type="submit" name="broker" value="{b.slug}">{html.escape(b.display_name)}</button></li>'
            for b in BROKERAGES.values()
        )
        body = f"""
<p>Choose the brokerage to connect.</p>
<form method="post" action="{PREFIX}{s.id}/broker" aria-label="Brokerages"><ul>{buttons}</ul></form>
<form method="post" action="{PREFIX}{s.id}/submit"><button type="submit" name="action" value="cancel">Cancel</button></form>"""
        return _page("Connect an account", body)

    def _credentials_page(self, s: PortalSession, broker: str) -> Response:
        b = BROKERAGES[broker]
        verb = "Reconnect" if s.reconnect else "Connect"
        body = f"""
<p>{verb} your <strong>{html.escape(b.display_name)}</strong> account. Any username and password work.</p>
<form method="post" action="{PREFIX}{s.id}/submit">
  <input type="hidden" name="broker" value="{b.slug}">
  <p><label>Username <input name="username" autocomplete="off"></label></p>
  <p><label>Password <input name="password" type="password" autocomplete="off"></label></p>
  <p>
    <button type="submit" name="action" value="connect">Connect</button>
    <button type="submit" name="action" value="invalid">Simulate invalid credentials</button>
    <button type="submit" name="action" value="cancel">Cancel</button>
  </p>
</form>"""
        return _page(f"{html.escape(b.display_name)}", body)

    def _submit(self, s: PortalSession, form: dict[str, str]) -> Response:
        action = form.get("action", "")
        broker = form.get("broker") or s.broker
        sb = self.sb
        with self._lock:
            if s.used:
                return self._expired(s)
            s.used = True
        if action == "cancel":
            return self._finish(s, {"status": "ABANDONED"})
        if broker not in BROKERAGES:
            s.used = False
            return _page("Unknown brokerage", "<p>Choose a brokerage first.</p>", 400)
        b = BROKERAGES[broker]
        if action == "invalid":
            sb.send_webhook(
                "CONNECTION_ATTEMPTED", s.user_id, brokerageId=b.id, connectionAttemptedResult="INVALID_CREDENTIALS"
            )
            return self._finish(s, {"status": "ERROR", "status_code": "403", "error_code": "1066"})
        if action != "connect":
            s.used = False
            return _page("Unknown action", "<p>Use one of the buttons.</p>", 400)
        if s.reconnect:
            conn = sb.state.connections.get(s.reconnect)
            if conn is None or conn.broker != broker:
                sb.send_webhook(
                    "CONNECTION_ATTEMPTED", s.user_id, brokerageId=b.id, connectionAttemptedResult="DIFFERENT_ACCOUNT"
                )
                return self._finish(s, {"status": "ERROR", "status_code": "400", "error_code": "1023"})
            sb.send_webhook("CONNECTION_ATTEMPTED", s.user_id, brokerageId=b.id, connectionAttemptedResult="SUCCESS")
            sb._emit(sb.state.fix_connection(conn.id))
            return self._finish(s, {"status": "SUCCESS", "connection_id": conn.id})
        conn_type = "trade" if s.connection_type != "read" and b.allows_trading else "read"
        conn, events = sb.state.create_connection(s.user_id, broker, None, conn_type)
        sb._emit(events)
        return self._finish(s, {"status": "SUCCESS", "connection_id": conn.id})

    def _redirect_url(self, s: PortalSession | None, result: dict[str, str]) -> str | None:
        if s is None or not s.custom_redirect:
            return None
        parts = urlsplit(s.custom_redirect)
        query = parts.query + ("&" if parts.query else "") + urlencode(result)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

    def _finish(self, s: PortalSession, result: dict[str, str]) -> Response:
        url = self._redirect_url(s, result)
        if url and s.immediate_redirect:
            return Response(303, b"", "text/html; charset=utf-8", {"Location": url})
        attrs = " ".join(f'data-{k.replace("_", "-")}="{html.escape(v)}"' for k, v in result.items())
        title = {"SUCCESS": "Connection complete", "ERROR": "Connection failed", "ABANDONED": "Connection cancelled"}[
            result["status"]
        ]
        lines = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in result.items())
        link = f'<p><a href="{html.escape(url)}">Return to app</a></p>' if url else "<p>You can close this window.</p>"
        return _page(title, f'<dl id="result" {attrs}>{lines}</dl>{link}')

    def _expired(self, s: PortalSession | None) -> Response:
        result = {"status": "ERROR", "status_code": "400", "error_code": "1006"}
        url = self._redirect_url(s, result)
        if url and s is not None and s.immediate_redirect:
            return Response(303, b"", "text/html; charset=utf-8", {"Location": url})
        link = f'<p><a href="{html.escape(url)}">Return to app</a></p>' if url else ""
        attrs = 'data-status="ERROR" data-status-code="400" data-error-code="1006"'
        body = f'<p id="result" {attrs}>This connection link has expired or was already used (error 1006). Start again from the app.</p>{link}'
        return _page("Link expired", body, 400)


def _page(title: str, body: str, status: int = 200) -> Response:
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · SnapTrade Sandbox</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1rem;margin:.25rem;padding:.5rem 1rem}} ul{{list-style:none;padding:0}}</style></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""
    return Response(status, text.encode(), "text/html; charset=utf-8")
