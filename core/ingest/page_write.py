"""One page of activities into the database: normalized off the writing thread (`prepare_page`), then
written with one bulk upsert of its new or changed rows and its ledger entries (`store_page`); and the
quarantine entries a clean import closes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.ingest.binder import T, binder_for
from core.ingest.normalize import json_safe, normalize_activity
from core.snaptrade.client import ActivityPage
from core.snaptrade.values import NormalizationError
from core.storage import jsonexact
from core.storage.jsonexact import JSONText
from core.storage.models import BrokerageAccount, SyncIssue, utcnow


@dataclass
class PageCounts:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    latest_trade_date: date | None = None


def payload_hash(payload) -> str:
    try:
        text = jsonexact.dumps(payload, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(payload)
    return hashlib.sha256(text.encode()).hexdigest()


def ledger_statement(bind):
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
    binder = binder_for(dialect)
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
                           "payload_hash": payload_hash(payload), "created_at": now})  # fmt: skip
            continue
        activity_id = row["snaptrade_activity_id"]
        if track:
            seen.append(id_key(activity_id))
        if activity_id in params:
            # Offset paging over a moving list can repeat a row within a page: keep one.
            counts.fetched -= 1
            continue
        row["raw"], row["raw_hash"] = stored_raw(row["raw"], raw_texts[i] if raw_texts else None)
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
    session: Session,
    account_id: int,
    prepared: PreparedPage,
    inserted: RunInserts | None = None,
    waiting: Callable[[], None] | None = None,
) -> PageCounts:
    """Write a prepared page with one bulk upsert (only new or changed rows) and its ledger entries;
    `inserted` collects the page's rows that this run inserted; `waiting` is called once the rows are with the
    database (core.ingest.pipeline.PagePipeline.writer_waits).

    The caller commits (together with the run's progress)."""
    counts = prepared.counts
    rows = prepared.params
    if rows and inserted is None and session.get_bind().dialect.name == "postgresql":
        binder_for(session.get_bind().dialect).write_counting(session.connection(), rows, counts, waiting)
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
            binder_for(session.get_bind().dialect).write(session.connection(), to_write, waiting)
    if prepared.issues:
        session.connection().execute(ledger_statement(session.get_bind()), prepared.issues)
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


def close_fixed_issues(
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
    an IN list of 1,000 parameters degrades to scanning the account's rows; on SQLite, one JSON array."""
    columns = [T.c.snaptrade_activity_id, T.c.raw_hash]
    if since is not None:
        columns.append((T.c.created_at >= since).label("fresh"))
    return sa.select(*columns).where(T.c.account_id == account_id, ids_match(bind, ids))


def ids_match(bind, ids: list[str]):
    """`snaptrade_activity_id` is one of `ids`, as one parameter: a statement the same for every page. On SQLite
    json_each reads a JSON array (still a unique-index lookup): an IN list had SQLAlchemy render a
    thousand parameters at every execution, some 7 ms a page under cProfile."""
    if bind.dialect.name == "postgresql":
        return T.c.snaptrade_activity_id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.String)))
    listed = sa.func.json_each(sa.bindparam("ids", json.dumps(ids, ensure_ascii=False), type_=sa.String))
    return T.c.snaptrade_activity_id.in_(sa.select(sa.literal_column("value")).select_from(listed))


def stored_raw(raw: dict, source: str | None = None) -> tuple[JSONText, str]:
    """The raw record's JSON text, hashed and stored as is: SnapTrade's own text when we have it,
    else one exact serialization. NUL and surrogate escapes (which PostgreSQL JSONB refuses) send it
    through the cleaning copy."""
    text = source if source is not None else jsonexact.dumps(raw, sort_keys=True)
    if _UNSAFE_ESCAPE.search(text):
        text = jsonexact.dumps(json_safe(raw), sort_keys=True)
    return JSONText(text), hashlib.sha256(text.encode()).hexdigest()


def _maybe_id(raw) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("id"), (str, int)) and not isinstance(raw.get("id"), bool):
        return str(raw["id"])[:128]
    return None


def id_key(activity_id: str) -> int:
    # 8-byte digests keep the seen-set small for large windows.
    return int.from_bytes(hashlib.blake2b(activity_id.encode(), digest_size=8).digest(), "big")
