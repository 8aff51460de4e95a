"""An account's pages through two background stages, fetch and prepare, so SnapTrade's time, our CPU time
and the database's time overlap while pages are still written strictly in order."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable

from core.ingest.page_write import PreparedPage
from core.snaptrade.client import ActivityPage


class StopRequested(Exception):
    """The worker is shutting down (the run goes back to the queue) or the CLI was told to stop (the run is
    interrupted); either way with its checkpoint."""


_END = object()


class PagePipeline:
    """Pages of one account through two background stages, fetch and prepare, each one page ahead of
    the next stage; iterating yields prepared pages in order. A stage's exception is raised to the
    consumer at that page, and StopRequested when `should_stop` turns true while a page is awaited. Leaving
    the `with` block stops both threads and waits for them (after a stop, for two seconds at most).

    The prepare stage starts its next page when the writer says it waits on the database (`writer_waits`, once
    a page's rows are with it) or when the writer asks for a page that is not ready. All three threads share
    one interpreter: begun as soon as the writer took a page, the next page's normalizing ran while the writer
    still needed the interpreter to hand its page over, and each handover waited for it. Measured on PostgreSQL
    at 100,000 activities (5 runs each, interleaved): a page's COPY 16-23 -> 12-14 ms, the run's median
    11.95 -> 9.75 s (docs/PERFORMANCE.md §1)."""

    def __init__(self, fetch: Callable[[int], ActivityPage], prepare: Callable[[ActivityPage], PreparedPage], offset: int,
                 should_stop: Callable[[], bool] = lambda: False):  # fmt: skip
        self._fetch, self._prepare, self._offset, self._should_stop = fetch, prepare, offset, should_stop
        self._fetched: queue.Queue = queue.Queue(maxsize=1)
        self._prepared: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._writer_waiting = threading.Event()  # the prepare stage may start its next page
        self._threads = [threading.Thread(target=self._run_fetch, name="sync-fetch", daemon=True),
                         threading.Thread(target=self._run_prepare, name="sync-prepare", daemon=True)]  # fmt: skip

    def __enter__(self) -> PagePipeline:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        for q in (self._fetched, self._prepared):  # unblock a stage waiting to hand over a page
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
        # A stop does not wait out a request in flight or its retry backoff: the fetch thread holds no
        # session, and it ends by itself when that request returns.
        wait = 2.0 if exc_type is StopRequested else None
        for t in self._threads:
            t.join(wait)

    def writer_waits(self) -> None:
        """The writer has handed its page to the database and waits on it: prepare the next page meanwhile."""
        self._writer_waiting.set()

    def __iter__(self):
        while True:
            if self._prepared.empty():  # the writer waits for a page, not on the database: no reason to hold back
                self._writer_waiting.set()
            try:
                item = self._prepared.get(timeout=0.2)
            except queue.Empty:
                if self._should_stop():  # a slow or retried page must not hold up a stop
                    raise StopRequested() from None
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, q: queue.Queue, item) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run_fetch(self) -> None:
        at = self._offset
        try:
            while not self._stop.is_set():
                page = self._fetch(at)
                if not self._put(self._fetched, page):
                    return
                at += len(page.activities)
                if not page.activities or at >= page.total:
                    break
            self._put(self._fetched, _END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(self._fetched, exc)

    def _run_prepare(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._fetched.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is not _END and not isinstance(item, BaseException):
                try:
                    item = self._prepare(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                    item = exc
            if not self._put(self._prepared, item) or item is _END or isinstance(item, BaseException):
                return
            while not self._writer_waiting.wait(0.1):
                if self._stop.is_set():
                    return
            self._writer_waiting.clear()
