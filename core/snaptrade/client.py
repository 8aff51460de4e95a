"""The one door to SnapTrade: builds the v13 SDK client, owns retries and pacing, maps failures
to a few domain errors, and scrubs user secrets from everything it lets out.

Only this module imports `snaptrade_client`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import urllib3
from snaptrade_client import ApiException, Configuration, SnapTrade, SnapTradeAuth
from snaptrade_client.exceptions import ApiValueError
from snaptrade_client.paths.accounts_account_id_activities import get as _activities_get

from core.logs import log_event
from core.redaction import redact, remember_secret
from core.settings import Settings, get_settings
from core.snaptrade import trace
from core.snaptrade.pagesplit import split_page

log = logging.getLogger("tradistry.snaptrade")

# --------------------------------------------------------------------------- errors


class SnapTradeError(Exception):
    """A SnapTrade failure, already redacted and fit to show a user."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, request_id: str | None = None
    ):
        self.status = status
        self.code = code
        self.request_id = request_id
        super().__init__(redact(message))

    def details(self) -> dict:
        return {"type": type(self).__name__, "status": self.status, "code": self.code,
                "request_id": self.request_id, "message": str(self)}  # fmt: skip


class AuthError(SnapTradeError):
    """Bad signature, bad client credentials or bad user secret."""


class UserSecretRefused(AuthError):
    """SnapTrade refuses the user's secret (401, code 1083): every call for that user fails the same way
    until the secret is reset or the user is registered again, so callers stop and say so."""


class DisabledConnectionError(SnapTradeError):
    """The brokerage connection is disabled and needs a reconnect."""


class NotFoundError(SnapTradeError):
    pass


class RateLimitedError(SnapTradeError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class UpstreamError(SnapTradeError):
    """5xx, timeouts, dropped connections, unparseable answers: SnapTrade or the broker is unwell."""


class InvalidInputError(SnapTradeError):
    pass


class NotConfiguredError(SnapTradeError):
    pass


def _error_from_api(exc: ApiException) -> SnapTradeError:
    body = exc.body if isinstance(exc.body, dict) else {}
    status = int(exc.status or 0)
    code = str(body.get("code")) if body.get("code") is not None else None
    detail = body.get("detail") or exc.reason or "SnapTrade error"
    headers = exc.headers or {}
    request_id = headers.get("X-Request-ID") if hasattr(headers, "get") else None
    kw = {"status": status, "code": code, "request_id": request_id}
    message = f"SnapTrade answered {status}" + (f" (code {code})" if code else "") + f": {detail}"
    if status == 429:
        return RateLimitedError(message, retry_after=_retry_after(headers), **kw)
    if status == 402 or code in ("3003", "3011"):
        return DisabledConnectionError(message, **kw)
    if code == "1083":
        return UserSecretRefused(message, **kw)
    if status in (401, 403) or code == "1076":
        return AuthError(message, **kw)
    if status == 404 or code == "1011":
        return NotFoundError(message, **kw)
    if status in (400, 422) or code == "1012":
        return InvalidInputError(message, **kw)
    return UpstreamError(message, **kw)


def _retry_after(headers) -> float | None:
    try:
        value = headers.get("Retry-After") if headers else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- endpoint

_override: dict | None = None


def configure_endpoint(base_url: str, client_id: str, consumer_key: str) -> None:
    """Point every client at another SnapTrade-compatible endpoint (the embedded sandbox)."""
    global _override
    _override = {"base_url": base_url, "client_id": client_id, "consumer_key": consumer_key}
    remember_secret(consumer_key)


def clear_endpoint() -> None:
    global _override
    _override = None


def embedded_endpoint_file(settings: Settings) -> Path:
    return settings.data_dir / "sandbox_endpoint.json"


def resolve_endpoint(settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    if _override:
        return dict(_override)
    if settings.snaptrade_client_id and settings.snaptrade_consumer_key:
        return {"base_url": settings.snaptrade_base_url, "client_id": settings.snaptrade_client_id,
                "consumer_key": settings.snaptrade_consumer_key}  # fmt: skip
    # Sandbox mode: the app's embedded emulator writes where it listens, so the CLI can reach it.
    path = embedded_endpoint_file(settings)
    if path.exists():
        data = json.loads(path.read_text())
        return {k: data[k] for k in ("base_url", "client_id", "consumer_key")}
    raise NotConfiguredError(
        "SnapTrade is not configured: set SNAPTRADE_CLIENT_ID and SNAPTRADE_CONSUMER_KEY, "
        "or start the app (`make run`) so its embedded sandbox is running."
    )


# --------------------------------------------------------------------------- pacing


class _Pacer:
    """Waits before a request when SnapTrade's X-RateLimit-* headers say the budget is nearly gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before: dict[str, float] = {}

    def wait(self, keys: list[str]) -> None:
        with self._lock:
            until = max((self._not_before.get(k, 0.0) for k in keys), default=0.0)
        delay = until - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 60.0))

    def observe(self, headers, client_key: str, account_key: str | None) -> None:
        if not headers:
            return
        now = time.monotonic()
        for prefix, key in (("X-RateLimit", client_key), ("X-RateLimit-Account", account_key)):
            if key is None:
                continue
            try:
                remaining = headers.get(f"{prefix}-Remaining")
                reset = headers.get(f"{prefix}-Reset")
                if remaining is None or reset is None:
                    continue
                remaining, reset = int(remaining), float(reset)
            except (TypeError, ValueError):
                continue
            # Spread what is left over the window instead of bursting into a 429.
            if remaining <= 0:
                gap = reset
            elif remaining <= 3:
                gap = reset / (remaining + 1)
            else:
                gap = 0.0
            if gap > 0:
                with self._lock:
                    self._not_before[key] = max(self._not_before.get(key, 0.0), now + gap)


_pacer = _Pacer()


# --------------------------------------------------------------------------- client


@dataclass
class ActivityPage:
    activities: list[dict]
    total: int
    offset: int
    limit: int
    raw_texts: list[str] | None = None  # each activity's JSON exactly as SnapTrade sent it


def _loads_exact(raw: bytes) -> Any:
    return json.loads(raw, parse_float=Decimal)


_raw_answer = threading.local()


def _keep_activity_pages_raw() -> None:
    """The SDK json.loads every JSON answer even when told to skip deserialization, and we read an
    activity page from its raw bytes anyway (core.snaptrade.pagesplit: one exact pass that also keeps each
    activity's text). For our own activities calls (a thread-local flag: other users of the SDK in
    this process are untouched) that parse is skipped: it was about a fifth of a sync's CPU. Error
    answers are still parsed (their code and detail are read)."""
    # A reach into the SDK's internals, guarded: docs/INTERNALS.md (snaptrade-sdk-deserialize-body).
    ok = _activities_get._status_code_to_response["200"]
    parse = ok.deserialize_body

    def deserialize_body(response, content_type):
        if getattr(_raw_answer, "wanted", False):
            return None, content_type
        return parse(response, content_type)

    ok.deserialize_body = deserialize_body


_keep_activity_pages_raw()


class _DefaultTimeoutPoolManager(urllib3.PoolManager):
    """A urllib3 PoolManager that gives a request `default_timeout` when its caller passes none."""

    def __init__(self, default_timeout: urllib3.Timeout, **kw: Any) -> None:
        super().__init__(**kw)
        self.default_timeout = default_timeout

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any):
        if kw.get("timeout") is None:
            kw["timeout"] = self.default_timeout
        return super().urlopen(method, url, redirect=redirect, **kw)


def _enforce_timeouts(sdk: SnapTrade, seconds: float) -> None:
    """Connect and read timeouts on every request of this SDK client.

    Why it reaches into the SDK: v13's operations take no timeout, and its REST client passes
    `timeout=None` to urllib3 on every request, which urllib3 reads as "wait forever" and which
    overrides a pool-level timeout; so the SDK's `ApiClient.rest_client.pool_manager` (shared by
    all of its API groups) is replaced by one that fills in ours. The one such place (docs/INTERNALS.md);
    tests/test_internals.py::test_reach_snaptrade_sdk_pool_manager_timeout fails naming it when the SDK changes."""
    rest = sdk.account_information.api_client.rest_client
    old = rest.pool_manager
    timeout = urllib3.Timeout(connect=min(10.0, seconds), read=seconds)
    rest.pool_manager = _DefaultTimeoutPoolManager(timeout, num_pools=4, headers=old.headers, **old.connection_pool_kw)
    old.clear()


class SnapTradeClient:
    """One SDK client plus our retry policy; counts the requests it makes (for run accounting)."""

    def __init__(self, settings: Settings | None = None, endpoint: dict | None = None,
                 sleep: Callable[[float], None] = time.sleep):  # fmt: skip
        self.settings = settings or get_settings()
        ep = endpoint or resolve_endpoint(self.settings)
        self.client_id = ep["client_id"]
        remember_secret(ep["consumer_key"])
        auth = SnapTradeAuth.commercial_api_key(consumer_key=ep["consumer_key"], client_id=ep["client_id"])
        cfg = Configuration(auth=auth, host=ep["base_url"].rstrip("/"))
        cfg.retries = False  # urllib3's hidden retries would re-send signed requests behind our back
        self._sdk = SnapTrade(cfg, auth=auth)
        # A reach into the SDK's REST client (its methods take no timeout): docs/INTERNALS.md.
        _enforce_timeouts(self._sdk, self.settings.http_timeout_seconds)
        self.requests_made = 0
        self._counting = threading.Lock()  # a run's requests come from its prefetch and journal threads too
        self._sleep = sleep
        # A run's collector when the client is built inside one (core.snaptrade.trace): request metadata only.
        self._collector = trace.current_collector()
        # Told while a request waits to be retried (a sentence) and once it is over (None): a sync run shows it.
        # May be called from the thread that makes the request (a sync's prefetch thread): it must not touch
        # that run's session.
        self.on_retry: Callable[[str | None], None] | None = None

    def _trace(self, what: str, started: float, attempt: int, *, status: int | None, headers=None,
               error: SnapTradeError | None = None) -> None:  # fmt: skip
        if self._collector is None:
            return
        request_id, failure = (headers.get("X-Request-ID") if headers else None), None
        if error is not None:
            request_id = error.request_id
            failure = type(error).__name__ + (f" code {error.code}" if error.code else "")
        self._collector.add(trace.request_record(what, status=status, duration_ms=(time.monotonic() - started) * 1000,
                                                 attempt=attempt, request_id=request_id, error=failure))  # fmt: skip

    def _report_retry(self, notice: str | None) -> None:
        if self.on_retry is None:
            return
        try:
            self.on_retry(notice)
        except Exception:  # noqa: BLE001 - a progress note never changes the request's outcome
            log.debug("retry notice not delivered", exc_info=True)

    # -- the retry loop ------------------------------------------------------------------
    def _call(self, fn: Callable, *, pace_account: str | None = None, what: str = "request", **kwargs):
        s = self.settings
        attempt = 0
        client_key = f"client:{self.client_id}"
        account_key = f"account:{self.client_id}:{pace_account}" if pace_account else None
        while True:
            _pacer.wait([k for k in (client_key, account_key) if k])
            with self._counting:
                self.requests_made += 1
            started = time.monotonic()
            try:
                resp = fn(**kwargs)
                _pacer.observe(resp.headers, client_key, account_key)
                self._trace(what, started, attempt + 1, status=getattr(resp, "status", None), headers=resp.headers)
                if attempt:
                    self._report_retry(None)  # the retries are over
                return resp
            except ApiException as exc:
                _pacer.observe(exc.headers, client_key, account_key)
                err = _error_from_api(exc)
                retryable = isinstance(err, RateLimitedError) or (
                    isinstance(err, UpstreamError) and (err.status or 0) >= 500
                )
            except ApiValueError as exc:
                raise InvalidInputError(f"invalid {what}: {exc}") from None
            except urllib3.exceptions.TimeoutError:  # retried like a 5xx
                err = UpstreamError(f"SnapTrade did not answer the {what} request within {s.http_timeout_seconds:g} s")
                retryable = True
            except (urllib3.exceptions.HTTPError, OSError, json.JSONDecodeError) as exc:
                err = UpstreamError(f"SnapTrade {what} failed: {type(exc).__name__}: {exc}")
                retryable = True
            attempt += 1
            self._trace(what, started, attempt, status=err.status, error=err)
            upstream = {"operation": what, "upstream_status": err.status, "upstream_code": err.code,
                        "snaptrade_request_id": err.request_id, "attempt": attempt}  # fmt: skip
            if not retryable or attempt > s.http_max_retries:
                log_event(log, "snaptrade.failed", f"snaptrade {what} failed after {attempt} attempt(s): {redact(err)}",
                          level=logging.WARNING, **upstream)  # fmt: skip
                if attempt > 1:
                    self._report_retry(None)
                raise err
            delay = min(s.http_backoff_cap_seconds, s.http_backoff_base_seconds * (2 ** (attempt - 1)))
            delay = random.uniform(delay / 2, delay)  # jitter so workers do not retry in lockstep
            if isinstance(err, RateLimitedError) and err.retry_after is not None:
                delay = max(delay, err.retry_after)
            log_event(log, "snaptrade.retry", f"snaptrade {what}: {redact(err)}; retry {attempt} in {delay:.2f}s",
                      retry_in_seconds=round(delay, 2), **upstream)  # fmt: skip
            self._report_retry(retry_notice(err, delay, attempt + 1, s.http_max_retries + 1))
            self._sleep(delay)

    @staticmethod
    def _json(resp) -> Any:
        raw = getattr(getattr(resp, "response", None), "data", None)
        if raw:
            return _loads_exact(raw)
        return resp.body

    # -- users ---------------------------------------------------------------------------
    def register_user(self, snaptrade_user_id: str) -> str:
        resp = self._call(
            self._sdk.authentication.register_snap_trade_user, user_id=snaptrade_user_id, what="registerUser"
        )
        secret = self._json(resp)["userSecret"]
        remember_secret(secret)
        return secret

    def reset_user_secret(self, snaptrade_user_id: str, user_secret: str) -> str:
        """A new secret for the user; SnapTrade kills the old one at once, so store it before anything else."""
        remember_secret(user_secret)
        resp = self._call(self._sdk.authentication.reset_snap_trade_user_secret, user_id=snaptrade_user_id,
                          user_secret=user_secret, what="resetUserSecret")  # fmt: skip
        body = self._json(resp)
        secret = body.get("userSecret") if isinstance(body, dict) else None
        if not secret:
            raise UpstreamError("SnapTrade resetUserSecret answered without a userSecret")
        remember_secret(secret)
        return secret

    def delete_user(self, snaptrade_user_id: str) -> None:
        self._call(self._sdk.authentication.delete_snap_trade_user, user_id=snaptrade_user_id, what="deleteUser")

    def login_link(self, user_id: str, user_secret: str, *, broker: str | None = None, redirect: str | None = None,
                   reconnect: str | None = None, connection_type: str = "read") -> str:  # fmt: skip
        remember_secret(user_secret)
        kwargs: dict[str, Any] = {"user_id": user_id, "user_secret": user_secret, "connection_type": connection_type}
        if broker:
            kwargs["broker"] = broker
        if redirect:
            kwargs["custom_redirect"] = redirect
            kwargs["immediate_redirect"] = True
        if reconnect:
            kwargs["reconnect"] = reconnect
        resp = self._call(self._sdk.authentication.login_snap_trade_user, what="login", **kwargs)
        body = self._json(resp)
        url = body.get("redirectURI") if isinstance(body, dict) else None
        if not url:
            raise UpstreamError("SnapTrade login answered without a redirectURI")
        return url

    # -- connections and accounts -----------------------------------------------------------
    def list_authorizations(self, user_id: str, user_secret: str) -> list[dict]:
        remember_secret(user_secret)
        resp = self._call(self._sdk.connections.list_brokerage_authorizations, user_id=user_id,
                          user_secret=user_secret, what="list connections")  # fmt: skip
        return list(self._json(resp) or [])

    def delete_connection(self, user_id: str, user_secret: str, authorization_id: str) -> None:
        self._call(self._sdk.connections.delete_connection, connection_id=authorization_id, user_id=user_id,
                   user_secret=user_secret, what="delete connection")  # fmt: skip

    def list_accounts(self, user_id: str, user_secret: str) -> list[dict]:
        """All accounts of the user (ConnectionAccount shape, with sync_status) in one request."""
        resp = self._call(self._sdk.account_information.list_all_user_accounts, user_id=user_id,
                          user_secret=user_secret, what="list accounts")  # fmt: skip
        body = self._json(resp)
        return list(body.get("results", []) if isinstance(body, dict) else body or [])

    def account_balances(self, user_id: str, user_secret: str, account_id: str) -> list[dict]:
        resp = self._call(
            self._sdk.account_information.get_user_account_balance,
            account_id=account_id,
            pace_account=account_id,
            user_id=user_id,
            user_secret=user_secret,
            what="balances",
        )
        return list(self._json(resp) or [])

    def account_positions(self, user_id: str, user_secret: str, account_id: str) -> list[dict]:
        """Every position of the account (`GET /accounts/{accountId}/positions/all`): stocks, options, crypto…,
        each with its `instrument` (discriminated by `kind`) and signed `units`, numbers exact."""
        remember_secret(user_secret)
        resp = self._call(self._sdk.account_information.get_all_account_positions, account_id=account_id,
                          pace_account=account_id, user_id=user_id, user_secret=user_secret, what="positions")  # fmt: skip
        body = self._json(resp)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise UpstreamError("SnapTrade positions answer is not {results: [...]}")
        return results

    def activities_page(self, user_id: str, user_secret: str, account_id: str, *, offset: int, limit: int = 1000,
                        start_date: date | None = None, end_date: date | None = None) -> ActivityPage:  # fmt: skip
        kwargs: dict[str, Any] = {"account_id": account_id, "user_id": user_id, "user_secret": user_secret,
                                  "offset": offset, "limit": min(limit, 1000)}  # fmt: skip
        if start_date:
            kwargs["start_date"] = start_date
        if end_date:
            kwargs["end_date"] = end_date

        def fetch_and_read(**kw) -> _ReadAnswer:
            # Read inside the retry loop: a 200 whose body is cut off or an HTML page is retried like a 5xx.
            resp = self._sdk.account_information.get_account_activities(**kw)
            return _ReadAnswer(resp.headers, resp.status, _read_activities(resp, offset, limit))

        _raw_answer.wanted = True
        try:
            return self._call(fetch_and_read, pace_account=account_id, what="activities", **kwargs).page
        finally:
            _raw_answer.wanted = False


class UnreadablePage(json.JSONDecodeError):
    """A 200 activities answer that is not JSON; a JSONDecodeError so the retry loop retries it."""

    def __init__(self, detail: str):
        super().__init__("the page was not valid JSON (cut off, or an HTML page)", "", 0)
        self.detail = detail

    def __str__(self) -> str:
        return self.msg


@dataclass
class _ReadAnswer:
    headers: Any  # what the pacer reads
    status: int  # what the request trace records
    page: ActivityPage


def _read_activities(resp, offset: int, limit: int) -> ActivityPage:
    raw = getattr(getattr(resp, "response", None), "data", None)
    try:
        body, texts = split_page(raw.decode("utf-8"))
    except (AttributeError, UnicodeDecodeError, ValueError) as exc:
        log.info("unreadable activities page at offset %s: %s", offset, exc)
        raise UnreadablePage(str(exc)) from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise UpstreamError("SnapTrade activities answer is not {data, pagination}")
    if texts is not None and len(texts) != len(body["data"]):
        texts = None
    pagination = body.get("pagination") or {}
    try:
        total = int(pagination.get("total", len(body["data"])))
    except (TypeError, ValueError):
        total = len(body["data"])
    return ActivityPage(
        body["data"], total, int(pagination.get("offset") or offset), int(pagination.get("limit") or limit), texts
    )


def retry_notice(err: SnapTradeError, delay: float, attempt: int, attempts: int) -> str:
    """'SnapTrade answered 503 — retrying in 4 s, attempt 2 of 7': what a run shows while it waits (≤ 64 chars)."""
    what = f"SnapTrade answered {err.status}" if err.status else "SnapTrade did not answer"
    return f"{what} — retrying in {max(1, math.ceil(delay))} s, attempt {attempt} of {attempts}"


def new_snaptrade_user_id() -> str:
    """An opaque random id: nothing about the person goes to SnapTrade."""
    import uuid

    return f"tds-{uuid.uuid4()}"
