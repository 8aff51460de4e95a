"""`Sandbox`: the in-process emulator of the SnapTrade API, with test and benchmark controls.

It wires state, HTTP server, portal, faults, webhooks and the request log together. The same controls are
reachable over HTTP under `/__sandbox__/` with the `X-Sandbox-Admin-Token` header.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from sandbox import api
from sandbox.faults import Faults
from sandbox.history import Malformed
from sandbox.paging import iter_rows
from sandbox.portal import PREFIX as PORTAL_PREFIX
from sandbox.portal import Portal
from sandbox.server import DROP, Request, Response, SandboxHTTPServer, serve_in_thread
from sandbox.signing import webhook_signature
from sandbox.state import Event, State
from sandbox.webhooks import WebhookSender

log = logging.getLogger("sandbox")

ADMIN_PREFIX = "/__sandbox__/"
ADMIN_HEADER = "x-sandbox-admin-token"
# Controls reachable over HTTP: POST /__sandbox__/<name> with JSON kwargs (GET for the read-only ones).
ADMIN_WRITE = {
    "user_secret", "register_user", "invalidate_user_secret",
    "create_connection", "set_history_size", "advance_day", "add_backdated", "rekey", "disable_connection",
    "fix_connection", "delete_connection", "remove_account", "set_faults", "reset_request_log", "send_webhook",
    "expire_portal_links", "set_webhook_url", "clear_webhook_deliveries", "corrupt_pages",
    "hold_responses",
}  # fmt: skip
ADMIN_READ = {
    "request_log",
    "request_counts",
    "users",
    "accounts",
    "connections",
    "webhook_deliveries",
    "ground_truth",
    "info",
}


class Sandbox:
    """A local SnapTrade. `Sandbox().start()` serves on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        client_id: str | None = None,
        consumer_key: str | None = None,
        seed: int = 0,
        state_file: str | None = None,
        admin_token: str | None = None,
        webhook_url: str | None = None,
        webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0),
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        timestamp_tolerance: float = 300.0,
        portal_ttl: float = 300.0,
        today: date | str | None = None,
        page_cache_mb: int = 64,
    ) -> None:
        self.state = State(seed=seed, state_file=state_file)
        stored = self.state.keys
        if client_id is None and consumer_key is None and stored.get("client_id"):
            client_id, consumer_key = stored["client_id"], stored["consumer_key"]
        generated = self.state.new_keys()
        self.client_id: str = client_id or generated[0]
        self.consumer_key: str = consumer_key or generated[1]
        self.state.keys = {"client_id": self.client_id, "consumer_key": self.consumer_key}
        if today is not None and not self.state.accounts:
            self.state.today = (date.fromisoformat(today) if isinstance(today, str) else today).toordinal()
        self.admin_token: str = admin_token or secrets.token_urlsafe(18)
        self.host = host
        self.port = port
        self.timestamp_tolerance = timestamp_tolerance
        self.faults = Faults()
        self.portal = Portal(self, ttl=portal_ttl)
        self.page_cache = api.PageCache(page_cache_mb * 1024 * 1024) if page_cache_mb > 0 else None
        self.webhook_retry_delays = tuple(webhook_retry_delays)
        self._webhooks = WebhookSender(self.client_id, self.consumer_key, webhook_url, self.webhook_retry_delays)
        self._log: deque[dict[str, Any]] = deque(maxlen=1_000_000)
        self._counts: Counter[str] = Counter()
        self._log_lock = threading.Lock()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.state.save()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._server is None:
            self._server = SandboxHTTPServer(self.host, self.port, self._app)
            self.port = self._server.server_address[1]
            self._thread = serve_in_thread(self._server)
        return self

    def stop(self) -> None:
        self.faults.hold(0)  # held requests answer now instead of outliving the sandbox
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._webhooks.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def info(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "client_id": self.client_id,
            "seed": self.state.seed,
            "today": date.fromordinal(self.state.today).isoformat(),
        }

    # -- controls -------------------------------------------------------------------------------------------------
    def _emit(self, events: list[Event]) -> None:
        for event_type, user_id, fields in events:
            self._webhooks.send(event_type, user_id, fields)

    def create_connection(self, user_id: str, broker: str = "SANDBOX_US", history_size: int | None = None) -> str:
        """As if `user_id` completed the portal for `broker`; registers the user if needed. Returns the authorization id."""
        conn, events = self.state.create_connection(user_id, broker, history_size)
        self._emit(events)
        return conn.id

    def register_user(self, user_id: str) -> str:
        """Register a user directly (no HTTP); returns the userSecret."""
        user, events = self.state.register_user(user_id)
        self._emit(events)
        return user.secret

    def user_secret(self, user_id: str) -> str:
        return self.state.users[user_id].secret

    def invalidate_user_secret(self, user_id: str) -> None:
        """As if the secret was rotated elsewhere and the app never learnt it: every call with the secret the
        app holds, resetUserSecret included, is now refused with 401 code 1083. Reveals nothing."""
        self.state.reset_secret(user_id)

    def set_history_size(self, n: int | None) -> None:
        self.state.history_size = n

    def advance_day(self, days: int = 1) -> None:
        self._emit(self.state.advance_day(days))

    def add_backdated(self, account_id: str, count: int, days_back: int) -> list[str]:
        ids, events = self.state.add_backdated(account_id, count, days_back)
        self._emit(events)
        return ids

    def rekey(self, account_id: str, count: int) -> list[tuple[str, str]]:
        return self.state.rekey(account_id, count)

    def disable_connection(self, auth_id: str, reason: str = "Authentication expired") -> None:
        self._emit(self.state.disable_connection(auth_id, reason))

    def fix_connection(self, auth_id: str) -> None:
        self._emit(self.state.fix_connection(auth_id))

    def delete_connection(self, auth_id: str) -> None:
        self._emit(self.state.delete_connection(auth_id))

    def remove_account(self, account_id: str) -> None:
        self._emit(self.state.remove_account(account_id))

    def set_faults(
        self,
        rate_limit: dict[str, Any] | bool | None = None,
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        latency_ms: float = 0.0,
        malformed_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        """Replace the fault configuration (call with no arguments to clear every fault)."""
        self.faults.configure(rate_limit, error_rate, drop_rate, latency_ms, malformed_rate, seed)
        with self.state.lock:
            self.state.malformed = Malformed(malformed_rate, seed)

    def hold_responses(self, seconds: float = 0.0, path_template: str | None = None) -> None:
        """Answer API requests (all, or those to one path template such as "/accounts/{accountId}/activities")
        only after `seconds`, as a SnapTrade that stopped answering; 0 clears and lets held requests answer.
        Separate from `set_faults`, which leaves it as it is."""
        self.faults.hold(seconds, path_template)

    def corrupt_pages(self, count: int = 1, kind: str = "truncated", after: int = 0) -> None:
        """After `after` good ones, the next `count` activities answers (all of them when count < 0; none after
        count=0) are 200s whose body is cut in half ("truncated") or a proxy's HTML error page ("html").
        set_faults clears it."""
        self.faults.corrupt_pages(count, kind, after)

    def expire_portal_links(self) -> None:
        """Make every outstanding portal link behave as if its 5 minutes had passed."""
        self.portal.expire_all()

    # -- request log ----------------------------------------------------------------------------------------------
    def _record(
        self, method: str, template: str, status: int | None, path: str, request_id: str, query: str = ""
    ) -> None:
        # The query without the user secret: tests read which page (offset) a client asked for.
        params = {k: v for k, v in parse_qsl(query) if k != "userSecret"}
        entry = {
            "method": method,
            "path_template": template,
            "status": status,
            "path": path,
            "request_id": request_id,
            "params": params,
        }
        with self._log_lock:
            self._log.append(entry)
            self._counts[template] += 1

    def request_log(self) -> list[dict[str, Any]]:
        """Every API and portal request since the last reset: method, path_template, status (None when dropped),
        params (the query string without userSecret)."""
        with self._log_lock:
            return [dict(e) for e in self._log]

    def request_counts(self) -> dict[str, int]:
        with self._log_lock:
            return dict(self._counts)

    def reset_request_log(self) -> None:
        with self._log_lock:
            self._log.clear()
            self._counts.clear()

    # -- ground truth and introspection ---------------------------------------------------------------------------
    def iter_ground_truth(self, account_id: str) -> Iterator[dict[str, Any]]:
        """Every activity of the account exactly as served (newest first), streamed page by page."""
        with self.state.lock:
            view = self.state.view(self.state.accounts[account_id])
        return iter_rows(view)

    def ground_truth(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        return {a.id: list(self.iter_ground_truth(a.id)) for a in self.state.user_accounts(user_id)}

    def users(self) -> list[str]:
        with self.state.lock:
            return list(self.state.users)

    def accounts(self, user_id: str) -> list[dict[str, Any]]:
        out = []
        for a in self.state.user_accounts(user_id):
            view = self.state.view(a)
            out.append(
                {
                    "id": a.id,
                    "connection_id": a.connection_id,
                    "broker": a.broker,
                    "name": a.name,
                    "currency": a.currency,
                    "activity_count": view.count + len(view.extras),
                    "last_successful_sync": date.fromordinal(a.last_sync_day).isoformat(),
                }
            )
        return out

    def connections(self, user_id: str) -> list[dict[str, Any]]:
        return [
            {
                "id": c.id,
                "broker": c.broker,
                "name": c.name,
                "type": c.type,
                "disabled": c.disabled,
                "disabled_reason": c.disabled_reason,
                "account_ids": list(c.account_ids),
            }
            for c in self.state.user_connections(user_id)
        ]

    # -- webhooks -------------------------------------------------------------------------------------------------
    def send_webhook(self, event_type: str, user_id: str, **fields: Any) -> dict[str, Any]:
        return self._webhooks.send(event_type, user_id, fields)

    def sign_webhook(self, payload: dict[str, Any]) -> str:
        return webhook_signature(self.consumer_key, payload)

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return self._webhooks.deliveries()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until queued webhook deliveries (including retries) are finished."""
        return self._webhooks.wait_idle(timeout)

    def set_webhook_url(self, url: str | None) -> None:
        self._webhooks.url = url

    def clear_webhook_deliveries(self) -> None:
        self._webhooks.clear()

    # -- HTTP entry point -----------------------------------------------------------------------------------------
    def _app(self, req: Request) -> Response | None:
        request_id = api.new_request_id()
        if req.path.startswith(ADMIN_PREFIX):
            resp = self._admin(req)
            resp.headers["X-Request-ID"] = request_id
            return resp
        if req.path.startswith(PORTAL_PREFIX):
            template, resp = self.portal.handle(req)
            resp.headers["X-Request-ID"] = request_id
            self._record(req.method, template, resp.status, req.path, request_id)
            return resp
        route, path_params, template = api.match(req.method, req.path)
        if route is not None and route.auth != "none":
            self.faults.delay()
            self.faults.wait_if_held(template)
            fault = self.faults.roll()
            if fault == "drop":
                self._record(req.method, template, None, req.path, request_id, req.query)
                return DROP
            if fault == "error":
                err = self.faults.error()
                self._record(req.method, template, err.status, req.path, request_id, req.query)
                return Response(err.status, json.dumps(err.body()).encode(), headers={"X-Request-ID": request_id})
        status, body, headers = api.handle(self, req, route, path_params)
        headers["X-Request-ID"] = request_id
        self._record(req.method, template, status, req.path, request_id, req.query)
        content_type = "application/json"
        if status == 200 and route is not None and route.handler is api.h_activities:
            body, content_type = self.faults.corrupt(body, content_type)
        return Response(status, body, content_type=content_type, headers=headers)

    def _admin(self, req: Request) -> Response:
        def answer(status: int, obj: Any) -> Response:
            return Response(status, json.dumps(obj, default=str).encode())

        if not secrets.compare_digest(req.headers.get(ADMIN_HEADER, ""), self.admin_token):
            return answer(401, {"detail": "X-Sandbox-Admin-Token header missing or wrong"})
        op = req.path[len(ADMIN_PREFIX) :].strip("/")
        allowed = ADMIN_WRITE if req.method == "POST" else ADMIN_READ if req.method == "GET" else set()
        if op not in allowed:
            return answer(404, {"detail": f"unknown control {req.method} {op}"})
        if req.method == "POST":
            kwargs = json.loads(req.body) if req.body.strip() else {}
        else:
            kwargs = {k: _loose_json(v) for k, v in parse_qsl(req.query)}
        try:
            result = getattr(self, op)(**kwargs)
        except KeyError as exc:
            return answer(404, {"detail": f"not found: {exc}"})
        except (TypeError, ValueError) as exc:
            return answer(400, {"detail": str(exc)})
        return answer(200, {"result": result})


def _loose_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def new_user_id() -> str:
    return "user-" + uuid.uuid4().hex[:12]
