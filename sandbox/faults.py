"""Injected trouble, reproducible by seed: SnapTrade's rate limits, latency, 5xx answers, dropped connections,
answers held back (a SnapTrade that stops answering) and unreadable 200 answers (a truncated body, a proxy's
HTML page).

Malformed records are configured here too but applied by paging.py while serving rows (render.damage).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sandbox import errors
from sandbox.errors import ApiError


@dataclass
class FaultConfig:
    rate_limit: dict[str, Any] | None = None  # {"customer_limit", "account_limit", "window", "retry_after"}
    error_rate: float = 0.0
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    malformed_rate: float = 0.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# A 200 whose body is not the page: cut off mid-record, or an HTML error page from a proxy in front of the API.
CORRUPTIONS = {
    "truncated": lambda body: body[: len(body) // 2],
    "html": lambda body: (
        b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    ),
}

DEFAULT_RATE_LIMIT = {"customer_limit": 250, "account_limit": 10, "window": 60, "retry_after": 1}


class Faults:
    """Decides, request by request, whether to delay, fail or drop; and keeps the rolling rate-limit windows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random(0)
        self._windows: dict[tuple[str, ...], deque[float]] = {}
        self._hold: tuple[float, str | None] | None = None
        self._release = threading.Event()
        self._corrupt_left, self._corrupt_kind, self._corrupt_after = 0, "truncated", 0

    def configure(
        self,
        rate_limit: dict[str, Any] | bool | None = None,
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        latency_ms: float = 0.0,
        malformed_rate: float = 0.0,
        seed: int = 0,
    ) -> FaultConfig:
        if rate_limit is True:
            rate_limit = dict(DEFAULT_RATE_LIMIT)
        elif rate_limit:
            rate_limit = {**DEFAULT_RATE_LIMIT, **rate_limit}
        else:
            rate_limit = None
        with self._lock:
            self.config = FaultConfig(rate_limit, error_rate, drop_rate, latency_ms, malformed_rate, seed)
            self._rng = random.Random(seed)
            self._windows.clear()
            self._corrupt_left = 0
        return self.config

    def roll(self) -> str | None:
        """One draw per request, in arrival order: "drop", "error" or None."""
        cfg = self.config
        if not cfg.drop_rate and not cfg.error_rate:
            return None
        with self._lock:
            r = self._rng.random()
        if r < cfg.drop_rate:
            return "drop"
        if r < cfg.drop_rate + cfg.error_rate:
            return "error"
        return None

    def error(self) -> ApiError:
        with self._lock:
            r = self._rng.random()
        return errors.unexpected() if r < 0.5 else errors.brokerage_failure()

    def corrupt_pages(self, count: int, kind: str, after: int = 0) -> None:
        if kind not in CORRUPTIONS:
            raise ValueError(f"kind must be one of {sorted(CORRUPTIONS)}")
        with self._lock:
            self._corrupt_left, self._corrupt_kind, self._corrupt_after = int(count), kind, int(after)

    def corrupt(self, body: bytes, content_type: str) -> tuple[bytes, str]:
        """The answer as sent: damaged while corrupt_pages has some left (a negative count never runs out)."""
        with self._lock:
            if self._corrupt_left == 0:
                return body, content_type
            if self._corrupt_after > 0:
                self._corrupt_after -= 1
                return body, content_type
            self._corrupt_left -= self._corrupt_left > 0
            kind = self._corrupt_kind
        return CORRUPTIONS[kind](body), "text/html" if kind == "html" else content_type

    def delay(self) -> None:
        if self.config.latency_ms > 0:
            time.sleep(self.config.latency_ms / 1000.0)

    def hold(self, seconds: float, path_template: str | None = None) -> None:
        """Hold every API answer (or only those to `path_template`) for `seconds` before answering; 0 clears.

        Clearing, or a new hold, lets the requests held so far answer at once, so a long hold costs no
        thread beyond the test that set it."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()
            self._hold = (float(seconds), path_template) if seconds > 0 else None

    def wait_if_held(self, template: str) -> None:
        with self._lock:
            hold, release = self._hold, self._release
        if hold is not None and hold[1] in (None, template):
            release.wait(hold[0])

    def admit(self, client_id: str, account_id: str | None) -> dict[str, str]:
        """Count one request against the customer bucket (and the account bucket for account-data endpoints).

        Returns the X-RateLimit-* headers; raises a 429 ApiError when a bucket is full (the request is not counted).
        """
        rl = self.config.rate_limit
        if not rl:
            return {}
        window = float(rl["window"])
        now = time.monotonic()
        with self._lock:
            cust = self._prune(("customer", client_id), now, window)
            acct = self._prune(("account", client_id, account_id), now, window) if account_id else None
            headers: dict[str, str] = {}
            cust_full = len(cust) >= rl["customer_limit"]
            acct_full = acct is not None and len(acct) >= rl["account_limit"]
            if not cust_full and not acct_full:
                cust.append(now)
                if acct is not None:
                    acct.append(now)
            headers["X-RateLimit-Limit"] = str(rl["customer_limit"])
            headers["X-RateLimit-Remaining"] = str(max(0, rl["customer_limit"] - len(cust)))
            headers["X-RateLimit-Reset"] = str(self._reset(cust, now, window))
            if acct is not None:
                headers["X-RateLimit-Account-Limit"] = str(rl["account_limit"])
                headers["X-RateLimit-Account-Remaining"] = str(max(0, rl["account_limit"] - len(acct)))
                headers["X-RateLimit-Account-Reset"] = str(self._reset(acct, now, window))
            if cust_full or acct_full:
                wait = self._reset(cust if cust_full else acct, now, window)  # type: ignore[arg-type]
                retry_after = max(1, min(wait, int(rl.get("retry_after", 1))))
                raise errors.throttled(retry_after, headers)
            return headers

    def _prune(self, key: tuple[str, ...], now: float, window: float) -> deque[float]:
        q = self._windows.get(key)
        if q is None:
            q = self._windows[key] = deque()
        while q and q[0] <= now - window:
            q.popleft()
        return q

    @staticmethod
    def _reset(q: deque[float], now: float, window: float) -> int:
        if not q:
            return 0
        return max(0, math.ceil(q[0] + window - now))
