"""What a sync run asked SnapTrade, as metadata only: operation, method and path template, status, time
taken and SnapTrade's request id (the id their support asks for). Never a body, a query string or a secret.

A collector is opened around a run (core.ingest.run_log); a client built inside it keeps a reference, so
requests made from the run's page-fetching thread land in the same collector.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

# The path templates of the operations the client calls (the SDK's own paths), keyed by the client's name for them.
OPERATION_PATHS = {
    "registerUser": ("POST", "/snapTrade/registerUser"),
    "deleteUser": ("DELETE", "/snapTrade/deleteUser"),
    "login": ("POST", "/snapTrade/login"),
    "list connections": ("GET", "/authorizations"),
    "delete connection": ("DELETE", "/connection/{connectionId}"),
    "list accounts": ("GET", "/accounts/all"),
    "balances": ("GET", "/accounts/{accountId}/balances"),
    "activities": ("GET", "/accounts/{accountId}/activities"),
    "positions": ("GET", "/accounts/{accountId}/positions/all"),
}
KEEP_LAST = 100  # a 1M-row sync makes ~1,000 requests: the last ones are what a failure needs


@dataclass
class RequestRecord:
    at: datetime
    operation: str
    method: str | None
    path: str | None
    status: int | None
    duration_ms: float
    attempt: int
    request_id: str | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class RequestCollector:
    """The last `keep` requests, and how many there were; appended to from any thread."""

    def __init__(self, keep: int = KEEP_LAST):
        self._records: deque[RequestRecord] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.total = 0

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            self.total += 1

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)


_local = threading.local()


def current_collector() -> RequestCollector | None:
    return getattr(_local, "collector", None)


@contextmanager
def collecting(keep: int = KEEP_LAST) -> Iterator[RequestCollector]:
    """Clients built in this thread while the block runs report their requests to the collector."""
    previous = current_collector()
    _local.collector = RequestCollector(keep)
    try:
        yield _local.collector
    finally:
        _local.collector = previous


def request_record(operation: str, *, status: int | None, duration_ms: float, attempt: int,
                   request_id: str | None = None, error: str | None = None) -> RequestRecord:  # fmt: skip
    method, path = OPERATION_PATHS.get(operation, (None, None))
    return RequestRecord(datetime.now(UTC), operation[:64], method, path, status, round(duration_ms, 1), attempt,
                         (request_id or None) and str(request_id)[:128], (error or None) and error[:255])  # fmt: skip
