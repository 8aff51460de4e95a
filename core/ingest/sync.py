"""The sync engine: one run brings one connection's accounts in step with SnapTrade.

Each page is written in one transaction together with the run's progress and checkpoint, so a
crash at any moment leaves the database consistent and the next attempt resumes without duplicates.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import queue
import random
import re
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import chain
from operator import itemgetter

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.accounts.connections import get_snaptrade_identity
from core.ingest.normalize import json_safe, normalize_activity
from core.ingest.pgcopy import CopyPageWriter
from core.ingest.reconcile_once import reconcile_for_run
from core.journal.upkeep import after_sync_run
from core.messages import MAX_STORED_MESSAGE_CHARS, describe_error, shorten
from core.settings import get_settings
from core.snaptrade.client import ActivityPage, DisabledConnectionError, SnapTradeClient, SnapTradeError
from core.snaptrade.values import NormalizationError, decimal_or_none
from core.storage import jsonexact
from core.storage.counts import fold as fold_counts
from core.storage.db import SQLITE_BUSY_TIMEOUT_MS, get_engine
from core.storage.jsonexact import JSONText
from core.storage.models import (
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    SyncIssue,
    TransactionSyncLog,
    utcnow,
)

log = logging.getLogger("tradistry.sync")

T = BrokerageTransaction.__table__
PHASE_CHARS = 64  # transaction_sync_log.phase is VARCHAR(64)
CONTENT_COLUMNS = [
    c.name for c in T.columns if c.name not in ("id", "user_id", "account_id", "snaptrade_activity_id", "created_at")
]


class RunAbandoned(Exception):
    """The run could not even record its failure (database unreachable); stale-run recovery requeues it."""


class StopRequested(Exception):
    """The worker is shutting down (the run goes back to the queue) or the CLI was told to stop (the run is
    interrupted); either way with its checkpoint."""


@dataclass
class PageCounts:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    latest_trade_date: date | None = None


@dataclass
class AccountOutcome:
    account_id: str
    name: str | None
    status: str = "pending"  # synced / skipped / failed
    message: str = ""
    counts: PageCounts = field(default_factory=PageCounts)
    start_date: str | None = None
    pages: int = 0

    def as_dict(self) -> dict:
        c = self.counts
        return {"account_id": self.account_id, "name": self.name, "status": self.status, "message": self.message,
                "start_date": self.start_date, "pages": self.pages, "fetched": c.fetched, "new": c.new,
                "updated": c.updated, "unchanged": c.unchanged, "skipped": c.skipped}  # fmt: skip


def _payload_hash(payload) -> str:
    try:
        text = jsonexact.dumps(payload, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(payload)
    return hashlib.sha256(text.encode()).hexdigest()


def _upsert_statement(dialect):
    """Insert new rows; rewrite an existing one only when its raw record changed."""
    ins = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(T)
    return ins.on_conflict_do_update(
        index_elements=["account_id", "snaptrade_activity_id"],
        set_={name: ins.excluded[name] for name in CONTENT_COLUMNS},
        where=T.c.raw_hash != ins.excluded.raw_hash,
    )


def _ledger_statement(bind):
    table = SyncIssue.__table__
    ins = (postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert)(table)
    return ins.on_conflict_do_nothing(index_elements=["kind", "account_id", "payload_hash"])


@dataclass
class PreparedPage:
    """One fetched page, normalized and bound for the database: built off the writing thread."""

    page: ActivityPage
    counts: PageCounts
    params: dict[str, tuple[object, str]]  # activity id -> (driver parameters, raw_hash)
    issues: list[dict]
    seen: list[int]


def prepare_page(dialect, *, user_id: int, account_id: int, page: ActivityPage, run_id: int | None,
                 now: datetime, track: bool) -> PreparedPage:  # fmt: skip
    """Normalize one page into driver-ready rows; malformed records become ledger entries.

    Pure CPU work with no session, so the sync runs it in the prefetch thread while the previous
    page is being written (SQLite and psycopg release the GIL while they execute)."""
    activities, raw_texts = page.activities, page.raw_texts
    counts = PageCounts(fetched=len(activities))
    binder = _binder(dialect)
    stamp = binder.stamp(now)
    params: dict[str, tuple[object, str]] = {}
    issues: list[dict] = []
    seen: list[int] = []
    for i, raw in enumerate(activities):
        try:
            row = normalize_activity(raw, clean_raw=False)
        except NormalizationError as exc:
            payload = json_safe(raw)
            issues.append({"user_id": user_id, "account_id": account_id, "run_id": run_id, "kind": "quarantined",
                           "reason": str(exc), "snaptrade_activity_id": _maybe_id(raw), "raw_payload": payload,
                           "payload_hash": _payload_hash(payload), "created_at": now})  # fmt: skip
            continue
        activity_id = row["snaptrade_activity_id"]
        if track:
            seen.append(_id_key(activity_id))
        if activity_id in params:
            # Offset paging over a moving list can repeat a row within a page: keep one.
            counts.fetched -= 1
            continue
        row["raw"], row["raw_hash"] = _stored_raw(row["raw"], raw_texts[i] if raw_texts else None)
        if counts.latest_trade_date is None or row["trade_date"] > counts.latest_trade_date:
            counts.latest_trade_date = row["trade_date"]
        row["user_id"] = user_id
        row["account_id"] = account_id
        row["created_at"] = row["updated_at"] = stamp
        params[activity_id] = (binder.bind(row), row["raw_hash"])
    counts.skipped = len(issues)
    return PreparedPage(page, counts, params, issues, seen)


@dataclass
class RunInserts:
    """The ids of the rows this run inserted into one account, collected by the page writes: re-key detection
    starts from them, so it costs what the pages cost rather than a read of the account's rows by created_at."""

    since: datetime  # the run's t0: a row an earlier attempt of this run wrote is the run's too
    ids: set[str] = field(default_factory=set)


def store_page(
    session: Session, account_id: int, prepared: PreparedPage, inserted: RunInserts | None = None
) -> PageCounts:
    """Write a prepared page with one bulk upsert (only new or changed rows) and its ledger entries;
    `inserted` collects the page's rows that this run inserted.

    The caller commits (together with the run's progress)."""
    counts = prepared.counts
    rows = prepared.params
    if rows and inserted is None and session.get_bind().dialect.name == "postgresql":
        _binder(session.get_bind().dialect).write_counting(session.connection(), rows, counts)
        rows = {}  # written and counted by the upsert itself: no lookup first (core.ingest.pgcopy)
    if rows:
        since = inserted.since if inserted is not None else None
        existing = {
            r[0]: r for r in session.execute(_existing_query(session.get_bind(), account_id, list(rows), since))
        }
        to_write = []
        for activity_id, (bound, raw_hash) in rows.items():
            stored = existing.get(activity_id)
            if stored is None:
                counts.new += 1
                to_write.append(bound)
                if inserted is not None:
                    inserted.ids.add(activity_id)
                continue
            if inserted is not None and stored.fresh:  # written by an earlier attempt of this run (a resume)
                inserted.ids.add(activity_id)
            if stored.raw_hash != raw_hash:
                counts.updated += 1
                to_write.append(bound)
            else:
                counts.unchanged += 1
        if to_write:
            _binder(session.get_bind().dialect).write(session.connection(), to_write)
    if prepared.issues:
        session.connection().execute(_ledger_statement(session.get_bind()), prepared.issues)
    return counts


def write_page(session: Session, *, user_id: int, account: BrokerageAccount, page: ActivityPage,
               run_id: int | None, now: datetime, seen: set[int] | None = None) -> PageCounts:  # fmt: skip
    """prepare_page + store_page in one call (the caller commits)."""
    prepared = prepare_page(session.get_bind().dialect, user_id=user_id, account_id=account.id, page=page,
                            run_id=run_id, now=now, track=seen is not None)  # fmt: skip
    if seen is not None:
        seen.update(prepared.seen)
    return store_page(session, account.id, prepared)


def open_quarantined_ids(session: Session, account_id: int) -> set[str]:
    """Ids of this account's records that are still open in the issues ledger as quarantined."""
    issue = SyncIssue.__table__.c
    return set(session.execute(sa.select(issue.snaptrade_activity_id).where(
        issue.kind == "quarantined", issue.account_id == account_id, issue.resolved_at.is_(None),
        issue.snaptrade_activity_id.is_not(None))).scalars())  # fmt: skip


def resolve_fixed_issues(session: Session, account_id: int, activity_ids: set[str], run_id: int) -> int:
    """Close the quarantine entries of records that this run stored cleanly, naming the run (the caller commits)."""
    issue = SyncIssue.__table__.c
    result = session.execute(sa.update(SyncIssue.__table__).where(
        issue.kind == "quarantined", issue.account_id == account_id, issue.resolved_at.is_(None),
        issue.snaptrade_activity_id.in_(sorted(activity_ids))).values(resolved_at=utcnow(), resolved_by=f"sync run #{run_id}"))  # fmt: skip
    return result.rowcount


def _close_fixed_issues(
    session: Session, account_id: int, prepared: PreparedPage, open_ids: set[str], run_id: int
) -> None:
    """One page's share: the open ids are read once per account, so a page with none of them costs no query."""
    fixed = open_ids.intersection(prepared.params)
    if fixed:
        resolve_fixed_issues(session, account_id, fixed, run_id)
        open_ids.difference_update(fixed)
    open_ids.update(i["snaptrade_activity_id"] for i in prepared.issues if i["snaptrade_activity_id"])


_UNSAFE_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F])")


def _existing_query(bind, account_id: int, ids: list[str], since: datetime | None = None):
    """Stored (id, raw_hash) of this page's ids, and with `since` whether each was created since then (read
    from the rows the lookup visits anyway). On PostgreSQL one array parameter (= ANY) keeps it a
    unique-index lookup even under a generic prepared plan on a table without statistics yet, where
    an IN list of 1,000 parameters degrades to scanning the account's rows."""
    columns = [T.c.snaptrade_activity_id, T.c.raw_hash]
    if since is not None:
        columns.append((T.c.created_at >= since).label("fresh"))
    return sa.select(*columns).where(T.c.account_id == account_id, _ids_match(bind, ids))


def _ids_match(bind, ids: list[str]):
    if bind.dialect.name == "postgresql":
        return T.c.snaptrade_activity_id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.String)))
    return T.c.snaptrade_activity_id.in_(ids)


def _stored_raw(raw: dict, source: str | None = None) -> tuple[JSONText, str]:
    """The raw record's JSON text, hashed and stored as is: SnapTrade's own text when we have it,
    else one exact serialization. NUL and surrogate escapes (which PostgreSQL JSONB refuses) send it
    through the cleaning copy."""
    text = source if source is not None else jsonexact.dumps(raw, sort_keys=True)
    if _UNSAFE_ESCAPE.search(text):
        text = jsonexact.dumps(json_safe(raw), sort_keys=True)
    return JSONText(text), hashlib.sha256(text.encode()).hexdigest()


class _Binder:
    """The upsert compiled once per dialect, and a row dict -> driver parameters conversion equal to
    SQLAlchemy's bind processors for the values the normalizer produces, but done with C-level
    callables: rows go to the driver's executemany without SQLAlchemy's per-row machinery."""

    def __init__(self, dialect):
        columns = [c.name for c in T.columns if c.name != "id"]
        compiled = _upsert_statement(dialect).compile(dialect=dialect, column_keys=columns)
        # Reaches into SQLAlchemy (this SQL text's shape, _cached_bind_processor), guarded: docs/INTERNALS.md.
        self.sql = str(compiled)
        self.names = list(compiled.positiontup) if compiled.positional else columns
        processors = {name: T.c[name].type._cached_bind_processor(dialect) for name in columns}
        self._stamp = processors["created_at"]
        # created_at/updated_at are bound once per page by stamp(); on SQLite `raw` needs nothing: it is
        # always JSONText, which the JSON serializer (its processor there) passes through unchanged.
        done = {"created_at", "updated_at"} | ({"raw"} if dialect.name == "sqlite" else set())
        self._convert = [(i, _fast_processor(T.c[name].type, dialect, processors[name]) or processors[name])
                         for i, name in enumerate(self.names) if processors[name] is not None and name not in done]  # fmt: skip
        self._getter = itemgetter(*self.names)
        self._multi: dict[int, str] = {}

    def write(self, conn, rows: list) -> None:
        """SQLite: multi-row VALUES statements: the rows are bound in C and inserted in one step with the
        GIL released, so the prefetch thread normalizes the next page meanwhile (executemany would
        release and retake the GIL per row)."""
        per = max(1, _SQLITE_MAX_VARIABLES // len(self.names))
        for i in range(0, len(rows), per):
            chunk = rows[i : i + per]
            conn.exec_driver_sql(self._multi_sql(len(chunk)), tuple(chain.from_iterable(chunk)))

    def _multi_sql(self, n: int) -> str:
        sql = self._multi.get(n)
        if sql is None:
            head, rest = self.sql.split(" VALUES (", 1)
            group, tail = rest.split(") ON CONFLICT", 1)
            sql = f"{head} VALUES {', '.join([f'({group})'] * n)} ON CONFLICT{tail}"
            if len(self._multi) > 8:
                self._multi.clear()
            self._multi[n] = sql
        return sql

    def stamp(self, now: datetime):
        return self._stamp(now) if self._stamp else now

    def bind(self, row: dict) -> tuple:
        """The row's driver parameters, in `names` order."""
        values = list(self._getter(row))
        for i, convert in self._convert:
            v = values[i]
            if v is not None:
                values[i] = convert(v)
        return tuple(values)


def _fast_processor(type_, dialect, slow):
    """A C-speed equal of SQLite's bind processor for the exact types the normalizer produces (Decimal
    for exact decimals, date, bool), falling back to `slow` for anything else; None when there is none."""
    from core.storage.types import ExactDecimal

    if dialect.name != "sqlite":
        return None
    if isinstance(type_, ExactDecimal):
        exact, fast = Decimal, _decimal_text
    elif isinstance(type_, sa.Date) and not isinstance(type_, sa.DateTime):
        exact, fast = date, date.isoformat
    elif isinstance(type_, sa.Boolean):
        exact, fast = bool, int
    else:
        return None
    return lambda v: fast(v) if v.__class__ is exact else slow(v)


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


# SQLite's default SQLITE_MAX_VARIABLE_NUMBER since 3.32 (Debian 12 ships 3.40).
_SQLITE_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999

_binders: dict[str, _Binder] = {}


def _binder(dialect) -> _Binder | CopyPageWriter:
    binder = _binders.get(dialect.name)
    if binder is None:  # PostgreSQL: binary COPY through a stage table (core.ingest.pgcopy)
        binder = _binders[dialect.name] = CopyPageWriter(dialect) if dialect.name == "postgresql" else _Binder(dialect)
    return binder


def _maybe_id(raw) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("id"), (str, int)) and not isinstance(raw.get("id"), bool):
        return str(raw["id"])[:128]
    return None


def _id_key(activity_id: str) -> int:
    # 8-byte digests keep the seen-set small for large windows.
    return int.from_bytes(hashlib.blake2b(activity_id.encode(), digest_size=8).digest(), "big")


_MERGE_CHUNK = 5000  # ids or fingerprints per statement: under SQLite's parameter limit


def merge_rekeyed(
    session: Session, *, account: BrokerageAccount, inserted: RunInserts, seen: set[int], run_id: int | None
) -> int:
    """Rows this run inserted whose content matches an older row whose id vanished from the fetched window
    are the same activity re-keyed by SnapTrade: the old row takes the new id. Both sides are index
    lookups (the inserted ids, then their fingerprints), so a run that inserted nothing reads nothing."""
    if not inserted.ids:
        return 0
    bind, new_ids = session.get_bind(), sorted(inserted.ids)
    new_rows = []
    for i in range(0, len(new_ids), _MERGE_CHUNK):
        new_rows += session.execute(
            sa.select(T.c.id, T.c.snaptrade_activity_id, T.c.fingerprint, T.c.raw, T.c.raw_hash).where(
                T.c.account_id == account.id, _ids_match(bind, new_ids[i : i + _MERGE_CHUNK])
            )
        ).all()
    new_rows.sort(key=lambda r: r.id)
    by_fp: dict[str, list] = defaultdict(list)
    for r in new_rows:
        by_fp[r.fingerprint].append(r)
    fingerprints = sorted(by_fp)
    old_rows = []
    for i in range(0, len(fingerprints), _MERGE_CHUNK):
        old_rows += session.execute(
            sa.select(T.c.id, T.c.snaptrade_activity_id, T.c.fingerprint).where(
                T.c.account_id == account.id, T.c.fingerprint.in_(fingerprints[i : i + _MERGE_CHUNK])
            )
        ).all()
    # The older side: every match but the run's own rows (what created_at < t0 selected).
    old_rows = sorted((r for r in old_rows if r.snaptrade_activity_id not in inserted.ids), key=lambda r: r.id)
    merged = 0
    for old in old_rows:
        if _id_key(old.snaptrade_activity_id) in seen:
            continue  # the old id is still served: two genuine activities with equal content
        candidates = by_fp.get(old.fingerprint)
        if not candidates:
            continue
        new = candidates.pop(0)
        session.execute(sa.delete(T).where(T.c.id == new.id))
        session.execute(sa.update(T).where(T.c.id == old.id).values(
            snaptrade_activity_id=new.snaptrade_activity_id, raw=new.raw, raw_hash=new.raw_hash, updated_at=utcnow()))  # fmt: skip
        session.connection().execute(_ledger_statement(session.get_bind()), [{
            "user_id": account.user_id, "account_id": account.id, "run_id": run_id, "kind": "merged",
            "reason": f"SnapTrade re-keyed activity {old.snaptrade_activity_id} as {new.snaptrade_activity_id}; "
                      "the stored row took the new id instead of becoming a duplicate",
            "snaptrade_activity_id": new.snaptrade_activity_id, "matched_transaction_id": old.id,
            "raw_payload": {"old_id": old.snaptrade_activity_id, "new_id": new.snaptrade_activity_id},
            "payload_hash": _payload_hash([old.snaptrade_activity_id, new.snaptrade_activity_id]), "created_at": utcnow()}])  # fmt: skip
        merged += 1
    return merged


_END = object()


class PagePipeline:
    """Pages of one account through two background stages, fetch and prepare, each one page ahead of
    the next stage; iterating yields prepared pages in order. A stage's exception is raised to the
    consumer at that page, and StopRequested when `should_stop` turns true while a page is awaited. Leaving
    the `with` block stops both threads and waits for them (after a stop, for two seconds at most)."""

    def __init__(self, fetch: Callable[[int], ActivityPage], prepare: Callable[[ActivityPage], PreparedPage], offset: int,
                 should_stop: Callable[[], bool] = lambda: False):  # fmt: skip
        self._fetch, self._prepare, self._offset, self._should_stop = fetch, prepare, offset, should_stop
        self._fetched: queue.Queue = queue.Queue(maxsize=1)
        self._prepared: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
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

    def __iter__(self):
        while True:
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


# --------------------------------------------------------------------------- a run


class RunReporter:
    """Keeps the run row's live progress; page writes and progress commit together."""

    def __init__(self, session: Session, run: TransactionSyncLog, client: SnapTradeClient):
        self.session = session
        self.run = run
        self.client = client
        self.base_requests = run.api_requests or 0
        self.last_beat = time.monotonic()

    def update(self, *, commit: bool = True, **values) -> None:
        for k, v in values.items():
            setattr(self.run, k, v)
        self.run.api_requests = self.base_requests + self.client.requests_made
        self.run.heartbeat_at = utcnow()
        self.session.add(self.run)
        if commit:
            self.session.commit()
        self.last_beat = time.monotonic()

    def retrying(self, notice: str | None) -> None:
        """The client's retry notice (SnapTradeClient.on_retry) as the run's phase while it waits, and the
        phase back when the request is over. It may come from the prefetch thread, so it is written in its
        own short transaction, never through the run's session; on SQLite it waits at most a second for the
        write lock (that session may hold it), and a notice that cannot be written is simply skipped."""
        phase = shorten(notice, PHASE_CHARS) if notice else self.run.phase
        try:
            with self.session.get_bind().connect() as conn:
                sqlite_db = conn.dialect.name == "sqlite"
                if sqlite_db:
                    conn.exec_driver_sql("PRAGMA busy_timeout = 1000")
                try:
                    conn.execute(sa.update(TransactionSyncLog).where(TransactionSyncLog.id == self.run.id)
                                 .values(phase=phase, heartbeat_at=utcnow()))  # fmt: skip
                    conn.commit()
                finally:
                    if sqlite_db:
                        conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        except Exception as exc:  # noqa: BLE001 - progress wording must never fail a run
            log.debug("run %s: retry notice not recorded: %s", self.run.id, exc)

    def add_counts(self, c: PageCounts) -> None:
        r = self.run
        r.transactions_fetched += c.fetched
        r.transactions_new += c.new
        r.transactions_updated += c.updated
        r.transactions_unchanged += c.unchanged
        r.transactions_skipped += c.skipped


def _needs_sync(account: BrokerageAccount, full: bool) -> bool:
    if full or account.last_synced_at is None or account.has_pending_hint:
        return True
    marker, current = account.synced_snaptrade_marker, account.snaptrade_last_successful_sync
    if current is None:
        return marker is not None  # SnapTrade stopped reporting a sync date: look again
    return marker is None or current > marker


def _window_start(session: Session, account: BrokerageAccount, full: bool, overlap_days: int) -> date | None:
    if full or account.last_synced_at is None:
        return None
    anchors = [d for d in (account.synced_snaptrade_marker, account.last_synced_trade_date) if d is not None]
    if not anchors:
        return None
    return min(anchors) - timedelta(days=overlap_days)


def execute_run(
    run_id: int,
    *,
    engine: Engine | None = None,
    client: SnapTradeClient | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[TransactionSyncLog], None] | None = None,
    stop_status: str = "queued",
) -> TransactionSyncLog:
    """Run a claimed (running) sync to its end and return the finished row.

    When `should_stop` turns true the run ends with `stop_status`: "queued" (a worker shutting down: another
    worker resumes it) or "interrupted" (the CLI was told to stop: the next sync resumes from its checkpoint)."""
    engine = engine or get_engine()
    settings = get_settings()
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(TransactionSyncLog, run_id)
        if run is None:
            raise ValueError(f"run {run_id} does not exist")
        started = time.monotonic()
        prior_duration = run.duration_seconds or 0.0
        try:
            client = client or SnapTradeClient()
        except SnapTradeError as exc:
            return _finish(session, run, "failed", str(exc), {"error": exc.details()}, started, prior_duration)
        rep = RunReporter(session, run, client)
        client.on_retry = rep.retrying  # "SnapTrade answered 503 — retrying in 4 s, attempt 2 of 7" on the Sync page
        try:
            return _execute(session, rep, settings, should_stop, on_progress, started, prior_duration)
        except StopRequested:
            session.rollback()
            return _stopped(session, run_id, stop_status, prior_duration + (time.monotonic() - started))
        except Exception as exc:  # noqa: BLE001 - a run must always end with a recorded status
            log.exception("sync run %s crashed", run_id)
            try:
                session.rollback()
                run = session.get(TransactionSyncLog, run_id, populate_existing=True)
                message = describe_error(exc)  # the statement and its rows stay in the log above
                return _finish(session, run, "failed", f"Unexpected error: {message}",
                               {"error": {"type": type(exc).__name__, "message": message}}, started, prior_duration)  # fmt: skip
            except Exception:  # noqa: BLE001 - e.g. the database itself is gone
                log.error("run %s could not record its failure; it will be recovered as interrupted", run_id)
                raise RunAbandoned(run_id) from None


def _stopped(session, run_id: int, status: str, duration: float) -> TransactionSyncLog:
    run = session.get(TransactionSyncLog, run_id, populate_existing=True)
    if status == "interrupted":
        run.status, run.phase, run.completed_at = "interrupted", "interrupted", utcnow()
        run.error_message = (
            f"Stopped on request after {run.pages_done} page(s); the next sync resumes from its checkpoint."
        )
    else:
        run.status, run.phase = "queued", "queued (worker stopped; will resume)"
    run.worker_id = None
    run.duration_seconds = duration
    session.add(run)
    session.commit()
    return run


def _finish(session, run, status, message, details, started, prior_duration) -> TransactionSyncLog:
    now = utcnow()
    message = shorten(message, MAX_STORED_MESSAGE_CHARS) if message else None  # several accounts' reasons
    run.status = status
    run.phase = "done"
    run.error_message = message or None
    if details:
        run.error_details = {**(run.error_details or {}), **details}
    run.completed_at = now
    run.heartbeat_at = now
    run.duration_seconds = prior_duration + (time.monotonic() - started)
    session.add(run)
    if run.connection_id is not None:
        conn = session.get(BrokerageConnection, run.connection_id)
        if conn is not None:
            conn.last_sync_at = now
            if status == "completed":
                conn.last_successful_sync_at = now
                if conn.status == "error":
                    conn.status = "active"
                conn.error_message = None
                conn.error_details = None
            elif status == "failed" and conn.status == "active" and details and "error" in details:
                conn.error_message = message
                conn.error_details = details.get("error")
            if conn.auto_sync_enabled and conn.status != "disconnected":
                jitter = random.uniform(0, get_settings().scheduler_jitter_seconds)
                conn.next_sync_at = now + timedelta(minutes=conn.sync_frequency_minutes, seconds=jitter)
            conn.updated_at = now
            session.add(conn)
    session.commit()
    try:
        with Session(session.get_bind()) as own:  # its commit or rollback leaves `run` loaded
            fold_counts(own, run.user_id)
    except Exception:  # noqa: BLE001 - the deltas stay exact unfolded; the next run folds them
        log.warning("run %s: folding user %s's transaction counts failed; the next run retries", run.id, run.user_id)
    return run


def _execute(session, rep: RunReporter, settings, should_stop, on_progress, started, prior_duration):
    run = rep.run
    client = rep.client
    rep.update(phase="reconciling connections")
    conn = session.get(BrokerageConnection, run.connection_id) if run.connection_id else None
    if conn is None:
        return _finish(
            session, run, "failed", "The connection of this run no longer exists.", None, started, prior_duration
        )
    identity = get_snaptrade_identity(session, run.user_id)
    if identity is None:
        return _finish(
            session, run, "failed", "This user has no SnapTrade registration yet.", None, started, prior_duration
        )
    try:
        reconcile_for_run(session, run=run, client=client, identity=identity)  # not twice: see reconcile_once
    except SnapTradeError as exc:
        return _finish(session, run, "failed", f"Could not read connections from SnapTrade: {exc}",
                       {"error": exc.details()}, started, prior_duration)  # fmt: skip
    session.refresh(conn)
    if conn.status == "disconnected":
        return _finish(session, run, "failed", "This connection was deleted at SnapTrade; its history is kept.",
                       None, started, prior_duration)  # fmt: skip
    if conn.status == "needs_reconnect":
        since = conn.disabled_at.date().isoformat() if conn.disabled_at else "recently"
        return _finish(session, run, "failed", f"This connection needs to be reconnected (disabled since {since}): "
                       f"{conn.status_reason or ''}".strip(), {"error": {"code": "3003", "type": "DisabledConnectionError"}},
                       started, prior_duration)  # fmt: skip

    accounts = list(session.exec(
        select(BrokerageAccount).where(BrokerageAccount.connection_id == conn.id, BrokerageAccount.is_active.is_(True),
                                       BrokerageAccount.sync_enabled.is_(True)).order_by(BrokerageAccount.id)))  # fmt: skip
    # A deep copy: the per-account entries change in place below, and must not alias the loaded column value.
    cp_accounts: dict = copy.deepcopy((run.checkpoint or {}).get("accounts") or {})
    outcomes: list[AccountOutcome] = [_outcome_from(o) for o in (run.account_breakdown or [])]
    done_ids = {o.account_id for o in outcomes if o.status in ("synced", "skipped")}
    outcomes = [o for o in outcomes if o.account_id in done_ids]
    rep.update(phase="syncing accounts", accounts_total=len(accounts), accounts_done=len(done_ids),
               account_breakdown=[o.as_dict() for o in outcomes])  # fmt: skip

    for account in accounts:
        if account.snaptrade_account_id in done_ids:
            continue
        if should_stop():
            raise StopRequested()
        outcome = AccountOutcome(account.snaptrade_account_id, account.account_name)
        try:
            _sync_account(session, rep, settings, identity, account, outcome, cp_accounts, should_stop, on_progress)
        except DisabledConnectionError as exc:
            session.rollback()
            conn = session.get(BrokerageConnection, conn.id, populate_existing=True)
            conn.status, conn.disabled_at = "needs_reconnect", conn.disabled_at or utcnow()
            conn.status_reason = conn.status_reason or str(exc)
            session.add(conn)
            outcome.status, outcome.message = "failed", str(exc)
        except SnapTradeError as exc:
            session.rollback()
            outcome.status, outcome.message = "failed", str(exc)
            run = rep.run = session.get(TransactionSyncLog, run.id, populate_existing=True)
            run.error_details = {**(run.error_details or {}), "error": exc.details()}
        outcomes.append(outcome)
        run = rep.run = session.get(TransactionSyncLog, run.id, populate_existing=True)
        if outcome.status != "failed":
            cp_accounts.pop(account.snaptrade_account_id, None)
        rep.update(accounts_done=sum(1 for o in outcomes if o.status in ("synced", "skipped")),
                   account_breakdown=[o.as_dict() for o in outcomes], checkpoint=_checkpoint(cp_accounts))  # fmt: skip

    # The journal: broker positions where they may have moved, then the (account, instrument) pairs dirtied.
    synced = {o.account_id: o.counts.new + o.counts.updated for o in outcomes if o.status == "synced"}
    after_sync_run(session, client=client, identity=identity, accounts=accounts,
                   changed={a.id: synced[a.snaptrade_account_id] for a in accounts if a.snaptrade_account_id in synced})  # fmt: skip
    rep.update()  # counts the positions requests

    failed = [o for o in outcomes if o.status == "failed"]
    ok = [o for o in outcomes if o.status != "failed"]
    ledger = rep.run.transactions_skipped
    if not failed:
        note = f" {ledger} record(s) could not be imported and are in the issues ledger." if ledger else ""
        return _finish(session, rep.run, "completed", note.strip() or None, None, started, prior_duration)
    reasons = "; ".join(f"{o.name or o.account_id}: {o.message}" for o in failed)
    status = "partial" if ok or rep.run.transactions_fetched else "failed"
    return _finish(session, rep.run, status, f"{len(failed)} of {len(outcomes)} account(s) could not be synced — {reasons}",
                   None, started, prior_duration)  # fmt: skip


def _checkpoint(cp_accounts: dict) -> dict:
    """A new value for the JSON column each time. SQLAlchemy writes a JSON attribute only when the value
    assigned differs from the one it holds, and a value sharing `cp_accounts` (changed in place) never does:
    the resume point then stayed at the offset of the first write."""
    return {"accounts": copy.deepcopy(cp_accounts)}


def _outcome_from(d: dict) -> AccountOutcome:
    o = AccountOutcome(d.get("account_id", ""), d.get("name"), d.get("status", "pending"), d.get("message", ""),
                       start_date=d.get("start_date"), pages=d.get("pages", 0))  # fmt: skip
    o.counts = PageCounts(
        d.get("fetched", 0), d.get("new", 0), d.get("updated", 0), d.get("unchanged", 0), d.get("skipped", 0)
    )
    return o


def _sync_account(session, rep: RunReporter, settings, identity, account: BrokerageAccount, outcome: AccountOutcome,
                  cp_accounts: dict, should_stop, on_progress) -> None:  # fmt: skip
    run = rep.run
    full = run.full_sync
    if not _needs_sync(account, full):
        outcome.status, outcome.message = "skipped", "nothing new at SnapTrade since the last sync"
        return
    cp = cp_accounts.get(account.snaptrade_account_id)
    if cp is None:
        has_rows = session.execute(sa.select(T.c.id).where(T.c.account_id == account.id).limit(1)).first() is not None
        start = _window_start(session, account, full, settings.sync_overlap_days)
        cp = {"t0": utcnow().isoformat(), "offset": 0, "track": has_rows,
              "start": start.isoformat() if start else None, "marker": _iso(account.snaptrade_last_successful_sync)}  # fmt: skip
    elif cp.get("track"):
        cp["offset"] = 0  # re-key detection needs the whole window read in one attempt
    t0 = datetime.fromisoformat(cp["t0"])
    start = date.fromisoformat(cp["start"]) if cp.get("start") else None
    outcome.start_date = cp.get("start")
    seen: set[int] | None = set() if cp.get("track") else None
    inserted = RunInserts(t0) if seen is not None else None
    # Clear the webhook hint before fetching: a hint that arrives during the fetch survives for next time.
    account.has_pending_hint = False
    session.add(account)
    cp_accounts[account.snaptrade_account_id] = cp
    rep.update(phase=f"fetching {account.account_name or account.snaptrade_account_id}",
               checkpoint=_checkpoint(cp_accounts))  # fmt: skip

    offset = int(cp.get("offset") or 0)
    page_size = min(1000, settings.sync_page_size)
    max_trade: date | None = account.last_synced_trade_date
    pages_counted_for_account = 0

    # Plain values for the prefetch thread: it must not touch the session or its objects.
    dialect, track = session.get_bind().dialect, seen is not None
    ids = {"user_id": account.user_id, "account_id": account.id, "run_id": run.id}
    who = (identity.snaptrade_user_id, identity.user_secret, account.snaptrade_account_id)

    def fetch_page(at: int) -> ActivityPage:
        return rep.client.activities_page(*who, offset=at, limit=page_size, start_date=start)

    def prepare(page: ActivityPage) -> PreparedPage:
        return prepare_page(dialect, page=page, now=utcnow(), track=track, **ids)

    # Fetching, normalizing and writing run at once on consecutive pages (two threads feed this one):
    # SnapTrade's time, our CPU time and the database's time overlap. Pages are still written and
    # committed strictly in order (the checkpoint is an offset).
    open_issues = open_quarantined_ids(session, account.id)
    with PagePipeline(fetch_page, prepare, offset, should_stop) as pages:
        for prepared in pages:
            if should_stop():
                raise StopRequested()
            page = prepared.page
            pages_for_account = max(1, math.ceil(page.total / page_size)) if page.total else 1
            if pages_counted_for_account != pages_for_account:
                run.pages_total += pages_for_account - pages_counted_for_account
                pages_counted_for_account = pages_for_account
            counts = store_page(session, account.id, prepared, inserted)
            _close_fixed_issues(session, account.id, prepared, open_issues, run.id)
            if seen is not None:
                seen.update(prepared.seen)
            if counts.latest_trade_date and (max_trade is None or counts.latest_trade_date > max_trade):
                max_trade = counts.latest_trade_date
            offset += len(page.activities)
            outcome.pages += 1
            c = outcome.counts
            c.fetched += counts.fetched
            c.new += counts.new
            c.updated += counts.updated
            c.unchanged += counts.unchanged
            c.skipped += counts.skipped
            rep.add_counts(counts)
            cp["offset"] = offset
            rep.update(
                pages_done=run.pages_done + 1, checkpoint=_checkpoint(cp_accounts)
            )  # page + progress: one commit
            if on_progress:
                on_progress(run)

    if seen is not None:
        merged = merge_rekeyed(session, account=account, inserted=inserted, seen=seen, run_id=run.id)
        if merged:
            outcome.message = f"{merged} re-keyed activit{'y' if merged == 1 else 'ies'} merged"
    try:
        balances = rep.client.account_balances(
            identity.snaptrade_user_id, identity.user_secret, account.snaptrade_account_id
        )
        _apply_balances(account, balances)
    except SnapTradeError as exc:
        log.info("balances for account %s unavailable: %s", account.id, exc)
    now = utcnow()
    account.synced_snaptrade_marker = date.fromisoformat(cp["marker"]) if cp.get("marker") else None
    account.last_synced_at = now
    account.last_synced_trade_date = max_trade
    account.updated_at = now
    session.add(account)
    outcome.status = "synced"
    rep.update()


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _apply_balances(account: BrokerageAccount, balances: list) -> None:

    clean = []
    cash_total = None
    for b in balances or []:
        if not isinstance(b, dict):
            continue
        cur = (b.get("currency") or {}).get("code") if isinstance(b.get("currency"), dict) else b.get("currency")
        cash, bp = decimal_or_none(b.get("cash")), decimal_or_none(b.get("buying_power"))
        clean.append(
            {
                "currency": cur,
                "cash": None if cash is None else str(cash),
                "buying_power": None if bp is None else str(bp),
            }
        )
        if cur and (account.currency is None or cur == account.currency):
            cash_total, account.buying_power = cash, bp
            account.currency = account.currency or cur
    account.balances = clean
    if cash_total is not None:
        account.cash_balance = cash_total
    account.balance_updated_at = utcnow()
