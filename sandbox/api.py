"""The SnapTrade endpoints the app uses (REFERENCE §4): routing, authentication, rate limits and handlers.

Paths are matched with and without the legacy `/api/v1` prefix; every handler answers SnapTrade's shapes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from threading import Lock
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sandbox import errors, shapes
from sandbox.catalog import BROKERAGES
from sandbox.errors import ApiError
from sandbox.paging import Query, page
from sandbox.server import Request
from sandbox.signing import LEGACY_PREFIX, verify_request
from sandbox.state import Account, Connection, User

if TYPE_CHECKING:
    from sandbox.emulator import Sandbox

MAX_PAGE = 1000
DEPRECATION = "@1781222400"


@dataclass
class Call:
    """One authenticated API call as handlers see it."""

    req: Request
    params: dict[str, str]  # decoded query parameters
    path_params: dict[str, str]
    body: Any  # parsed JSON body or None
    user: User | None = None


Handler = Callable[["Sandbox", Call], Any]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    auth: str  # "none", "brokerages" (signature optional), "C" (client), "CU" (client + user)
    account_bucket: bool = False
    regex: re.Pattern[str] | None = None


def _compile(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


# ---------------------------------------------------------------------------------------------------------------------
# Lookups that enforce ownership: another user's connection or account simply does not exist.


def _user_connection(sb: Sandbox, call: Call, key: str) -> Connection:
    conn = sb.state.connections.get(call.path_params[key])
    if conn is None or call.user is None or conn.user_id != call.user.user_id:
        raise errors.not_found("Brokerage authorization")
    return conn


def _user_account(sb: Sandbox, call: Call) -> Account:
    acct = sb.state.accounts.get(call.path_params["accountId"])
    if acct is None or call.user is None or acct.user_id != call.user.user_id:
        raise errors.not_found("Account")
    return acct


# ---------------------------------------------------------------------------------------------------------------------
# Handlers.


def h_status(sb: Sandbox, call: Call) -> Any:
    return shapes.status()


def h_register(sb: Sandbox, call: Call) -> Any:
    user_id = (call.body or {}).get("userId")
    if not isinstance(user_id, str) or not user_id:
        raise errors.invalid_input("userId is required")
    if user_id in sb.state.users:
        raise ApiError(400, "1010", f"User with the following userId already exist: '{user_id}'")
    user, events = sb.state.register_user(user_id)
    sb._emit(events)
    return {"userId": user.user_id, "userSecret": user.secret}


def h_delete_user(sb: Sandbox, call: Call) -> Any:
    user_id = call.params.get("userId", "")
    if user_id not in sb.state.users:
        raise errors.not_found("User")
    sb._emit(sb.state.delete_user(user_id))
    return {"status": "deleted", "detail": f"User {user_id} deleted", "userId": user_id}


def h_reset_secret(sb: Sandbox, call: Call) -> Any:
    """POST /snapTrade/resetUserSecret: the current secret in the body proves ownership; the old one dies."""
    body = call.body if isinstance(call.body, dict) else {}
    user_id, secret = body.get("userId"), body.get("userSecret")
    if not isinstance(user_id, str) or not user_id or not isinstance(secret, str) or not secret:
        raise errors.invalid_input("userId and userSecret are required")
    user = sb.state.users.get(user_id)
    if user is None or secret != user.secret:
        raise errors.bad_user_secret()
    user = sb.state.reset_secret(user.user_id)
    return {"userId": user.user_id, "userSecret": user.secret}


def h_list_users(sb: Sandbox, call: Call) -> Any:
    return list(sb.state.users)


def h_login(sb: Sandbox, call: Call) -> Any:
    assert call.user is not None
    body = call.body or {}
    return sb.portal.create_session(call.user.user_id, body, host=call.req.headers.get("host"))


def h_list_authorizations(sb: Sandbox, call: Call) -> Any:
    assert call.user is not None
    return [shapes.authorization(c) for c in sb.state.user_connections(call.user.user_id)]


def h_authorization(sb: Sandbox, call: Call) -> Any:
    return shapes.authorization(_user_connection(sb, call, "authorizationId"))


def h_refresh(sb: Sandbox, call: Call) -> Any:
    conn = _user_connection(sb, call, "authorizationId")
    if conn.disabled:
        raise errors.connection_disabled(conn.id)
    b = BROKERAGES[conn.broker]
    for aid in conn.account_ids:
        sb.send_webhook(
            "ACCOUNT_HOLDINGS_UPDATED",
            conn.user_id,
            accountId=aid,
            brokerageId=b.id,
            brokerageAuthorizationId=conn.id,
            details={
                "total_value": None,
                "positions": True,
                "balances": True,
                "orders": {"success": True, "error": None},
            },
        )
    return {"detail": f"Connection {conn.id} scheduled for refresh"}


def h_transactions_sync(sb: Sandbox, call: Call) -> Any:
    conn = _user_connection(sb, call, "authorizationId")
    if conn.disabled:
        raise errors.connection_disabled(conn.id)
    return {"detail": f"Connection {conn.id} scheduled for transaction sync"}


def h_disable(sb: Sandbox, call: Call) -> Any:
    conn = _user_connection(sb, call, "authorizationId")
    if conn.disabled:
        raise errors.already_disabled(conn.id)
    sb._emit(sb.state.disable_connection(conn.id, "Disabled through the API"))
    return {"detail": f"Connection {conn.id} disabled"}


def h_delete_connection(sb: Sandbox, call: Call) -> Any:
    conn = _user_connection(sb, call, "connectionId")
    sb._emit(sb.state.delete_connection(conn.id))
    return {"detail": f"Connection {conn.id} deleted", "connection_id": conn.id}


def h_authorization_accounts(sb: Sandbox, call: Call) -> Any:
    conn = _user_connection(sb, call, "authorizationId")
    return [shapes.account_legacy(sb.state, sb.state.accounts[a]) for a in conn.account_ids]


def h_connection_accounts(sb: Sandbox, call: Call) -> Any:
    conn = _user_connection(sb, call, "connectionId")
    return {"results": [shapes.connection_account(sb.state, sb.state.accounts[a]) for a in conn.account_ids]}


def h_accounts_legacy(sb: Sandbox, call: Call) -> Any:
    assert call.user is not None
    return [shapes.account_legacy(sb.state, a) for a in sb.state.user_accounts(call.user.user_id)]


def h_accounts_all(sb: Sandbox, call: Call) -> Any:
    assert call.user is not None
    return {"results": [shapes.connection_account(sb.state, a) for a in sb.state.user_accounts(call.user.user_id)]}


def h_account(sb: Sandbox, call: Call) -> Any:
    return shapes.account_legacy(sb.state, _user_account(sb, call))


def h_account_details(sb: Sandbox, call: Call) -> Any:
    return shapes.connection_account(sb.state, _user_account(sb, call))


def h_balances(sb: Sandbox, call: Call) -> Any:
    return shapes.balances(sb.state, _user_account(sb, call))


def h_positions(sb: Sandbox, call: Call) -> Any:
    return shapes.positions(sb.state, _user_account(sb, call))


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise errors.invalid_input(f"{name} must be an integer") from None


def _date_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10]).toordinal()
    except ValueError:
        raise errors.invalid_input(f"{name} must be a date in YYYY-MM-DD format") from None


def parse_activity_query(params: dict[str, str]) -> Query:
    offset = _int_param(params, "offset", 0)
    limit = _int_param(params, "limit", MAX_PAGE)
    if offset < 0:
        raise errors.invalid_input("offset must be greater than or equal to 0")
    if limit < 1:
        raise errors.invalid_input("limit must be greater than or equal to 1")
    types = params.get("type")
    type_set = frozenset(t.strip() for t in types.split(",") if t.strip()) if types else None
    return Query(
        _date_param(params, "startDate"), _date_param(params, "endDate"), type_set, offset, min(limit, MAX_PAGE)
    )


class PageCache:
    """Recently served activity pages (sync engines re-read the same pages; benchmarks repeat runs)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple[Any, ...], value: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += len(value)
            while self._bytes > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)


def activities_body(sb: Sandbox, acct: Account, q: Query) -> bytes:
    version = acct.version  # read before the view: a racing change then only wastes a cache slot
    view = sb.state.view(acct)
    key = (acct.id, acct.key, version, view.malformed, q)
    hit = sb.page_cache.get(key) if sb.page_cache else None
    if hit is not None:
        return hit
    total, rows = page(view, q)
    body = (
        '{"data":[' + ",".join(rows) + f'],"pagination":{{"offset":{q.offset},"limit":{q.limit},"total":{total}}}}}'
    ).encode()
    if sb.page_cache:
        sb.page_cache.put(key, body)
    return body


def h_activities(sb: Sandbox, call: Call) -> Any:
    acct = _user_account(sb, call)
    return RawJson(activities_body(sb, acct, parse_activity_query(call.params)))


def h_brokerages(sb: Sandbox, call: Call) -> Any:
    return [b.as_json() for b in BROKERAGES.values()]


class RawJson(bytes):
    """A handler result that is already JSON text."""


ROUTES: list[Route] = [
    Route("GET", "/", h_status, "none"),
    Route("POST", "/snapTrade/registerUser", h_register, "C"),
    Route("DELETE", "/snapTrade/deleteUser", h_delete_user, "C"),
    Route("POST", "/snapTrade/resetUserSecret", h_reset_secret, "C"),
    Route("GET", "/snapTrade/listUsers", h_list_users, "C"),
    Route("POST", "/snapTrade/login", h_login, "CU"),
    Route("GET", "/authorizations", h_list_authorizations, "CU"),
    Route("GET", "/authorizations/{authorizationId}", h_authorization, "CU"),
    Route("POST", "/authorizations/{authorizationId}/refresh", h_refresh, "CU"),
    Route("POST", "/authorizations/{authorizationId}/transactions/sync", h_transactions_sync, "CU"),
    Route("POST", "/authorizations/{authorizationId}/disable", h_disable, "CU"),
    Route("GET", "/authorizations/{authorizationId}/accounts", h_authorization_accounts, "CU"),
    Route("DELETE", "/connection/{connectionId}", h_delete_connection, "CU"),
    Route("GET", "/connections/{connectionId}/accounts", h_connection_accounts, "CU"),
    Route("GET", "/accounts", h_accounts_legacy, "CU"),
    Route("GET", "/accounts/all", h_accounts_all, "CU"),
    Route("GET", "/accounts/{accountId}", h_account, "CU", account_bucket=True),
    Route("GET", "/accounts/{accountId}/details", h_account_details, "CU", account_bucket=True),
    Route("GET", "/accounts/{accountId}/balances", h_balances, "CU", account_bucket=True),
    Route("GET", "/accounts/{accountId}/positions/all", h_positions, "CU", account_bucket=True),
    Route("GET", "/accounts/{accountId}/activities", h_activities, "CU", account_bucket=True),
    Route("GET", "/brokerages", h_brokerages, "brokerages"),
]
_LITERAL = {(r.method, r.template): r for r in ROUTES if "{" not in r.template}
_PATTERNS = [
    Route(r.method, r.template, r.handler, r.auth, r.account_bucket, _compile(r.template))
    for r in ROUTES
    if "{" in r.template
]


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], str]:
    """(route, path params, template) for a request path; the template is what the request log records."""
    if path.startswith(LEGACY_PREFIX + "/") or path == LEGACY_PREFIX:
        path = path[len(LEGACY_PREFIX) :] or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    route = _LITERAL.get((method, path))
    if route:
        return route, {}, route.template
    template = None
    for r in _PATTERNS:
        m = r.regex.match(path) if r.regex else None
        if m:
            if r.method == method:
                return r, m.groupdict(), r.template
            template = template or r.template
    if template is None:
        template = next((t for (_, t) in _LITERAL if t == path), path)
    return None, {}, template


# ---------------------------------------------------------------------------------------------------------------------
# Authentication.


def authenticate(
    sb: Sandbox, route: Route, req: Request, params: dict[str, str], body: Any
) -> tuple[str | None, User | None]:
    """Check clientId, timestamp and Signature like SnapTrade; returns (clientId, user) or raises ApiError."""
    if route.auth == "none":
        return None, None
    client_id = params.get("clientId")
    signature = req.headers.get("signature")
    if route.auth == "brokerages" and (not client_id or not signature):
        return None, None  # seen answering without a signature (REFERENCE §1)
    if not client_id:
        raise errors.credentials_missing()
    if client_id != sb.client_id:
        raise errors.bad_signature()
    try:
        ts = int(params.get("timestamp", ""))
    except ValueError:
        raise errors.invalid_timestamp() from None
    if abs(time.time() - ts) > sb.timestamp_tolerance:
        raise errors.invalid_timestamp()
    if not verify_request(sb.consumer_key, signature, req.path, req.query, body):
        raise errors.bad_signature()
    if route.auth != "CU":
        return client_id, None
    user_id, secret = params.get("userId"), params.get("userSecret")
    if not user_id or not secret:
        raise errors.invalid_input("userId and userSecret are required")
    user = sb.state.users.get(user_id)
    if user is None or user.secret != secret:
        raise errors.bad_user_secret()
    return client_id, user


def parse_body(req: Request) -> Any:
    if not req.body.strip():
        return None
    try:
        return json.loads(req.body)
    except ValueError:
        raise errors.invalid_input("Request body is not valid JSON") from None


def handle(
    sb: Sandbox, req: Request, route: Route | None, path_params: dict[str, str]
) -> tuple[int, bytes, dict[str, str]]:
    """Run one API request; returns (status, JSON body, extra headers)."""
    headers: dict[str, str] = {}
    if req.path.startswith(LEGACY_PREFIX + "/") or req.path == LEGACY_PREFIX:
        headers["Deprecation"] = DEPRECATION
    try:
        if route is None:
            raise ApiError(404, "1011", "Not found.")
        params = dict(parse_qsl(req.query, keep_blank_values=True))
        body = parse_body(req)
        client_id, user = authenticate(sb, route, req, params, body)
        if client_id:
            account = path_params.get("accountId") if route.account_bucket else None
            headers.update(sb.faults.admit(client_id, account))
        result = route.handler(sb, Call(req, params, path_params, body, user))
        if isinstance(result, RawJson):
            return 200, bytes(result), headers
        return 200, json.dumps(result, separators=(",", ":")).encode(), headers
    except ApiError as exc:
        headers.update(exc.headers)
        return exc.status, json.dumps(exc.body()).encode(), headers


def new_request_id() -> str:
    return uuid.uuid4().hex
