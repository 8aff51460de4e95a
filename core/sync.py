"""The sync engine: one run brings one connection's accounts in step with SnapTrade.

Each page is written in one transaction together with the run's progress and checkpoint, so a
crash at any moment leaves the database consistent and the next attempt resumes without duplicates.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import itemgetter

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core import jsonexact
from core.connections import get_snaptrade_identity, reconcile_connections
from core.db import get_engine
from core.jsonexact import JSONText
from core.models import (
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    SyncIssue,
    TransactionSyncLog,
    utcnow,
)
from core.normalize import NormalizationError, json_safe, normalize_activity
from core.settings import get_settings
from core.snaptrade import DisabledConnectionError, SnapTradeClient, SnapTradeError, redact

log = logging.getLogger("tradistry.sync")

T = BrokerageTransaction.__table__
CONTENT_COLUMNS = [c.name for c in T.columns if c.name not in ("id", "user_id", "account_id", "snaptrade_activity_id", "created_at")]


class RunAbandoned(Exception):
    """The run could not even record its failure (database unreachable); stale-run recovery requeues it."""


class StopRequested(Exception):
    """The worker is shutting down; the run goes back to the queue with its checkpoint."""


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


def write_page(
    session: Session,
    *,
    user_id: int,
    account: BrokerageAccount,
    activities: list,
    run_id: int | None,
    now: datetime,
    seen: set[int] | None = None,
    raw_texts: list[str] | None = None,
) -> PageCounts:
    """Normalize one page and write it with one bulk upsert; malformed records go to the ledger.

    The caller commits (together with the run's progress)."""
    counts = PageCounts(fetched=len(activities))
    rows: dict[str, dict] = {}
    issues: list[dict] = []
    for i, raw in enumerate(activities):
        try:
            row = normalize_activity(raw, clean_raw=False)
        except NormalizationError as exc:
            payload = json_safe(raw)
            issues.append({"user_id": user_id, "account_id": account.id, "run_id": run_id, "kind": "quarantined",
                           "reason": str(exc), "snaptrade_activity_id": _maybe_id(raw), "raw_payload": payload,
                           "payload_hash": _payload_hash(payload), "created_at": now})  # fmt: skip
            continue
        activity_id = row["snaptrade_activity_id"]
        if seen is not None:
            seen.add(_id_key(activity_id))
        if activity_id in rows:
            # Offset paging over a moving list can repeat a row within a page: keep one.
            counts.fetched -= 1
            continue
        row["raw"], row["raw_hash"] = _stored_raw(row["raw"], raw_texts[i] if raw_texts else None)
        if counts.latest_trade_date is None or row["trade_date"] > counts.latest_trade_date:
            counts.latest_trade_date = row["trade_date"]
        row["user_id"] = user_id
        row["account_id"] = account.id
        row["created_at"] = now
        row["updated_at"] = now
        rows[activity_id] = row
    counts.skipped = len(issues)
    if rows:
        existing = dict(session.execute(_existing_query(session.get_bind(), account.id, list(rows))).all())
        to_write = []
        for activity_id, row in rows.items():
            old_hash = existing.get(activity_id)
            if old_hash is None:
                counts.new += 1
                to_write.append(row)
            elif old_hash != row["raw_hash"]:
                counts.updated += 1
                to_write.append(row)
            else:
                counts.unchanged += 1
        if to_write:
            _bulk_upsert(session, to_write)
    if issues:
        session.connection().execute(_ledger_statement(session.get_bind()), issues)
    return counts


_UNSAFE_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F])")


def _existing_query(bind, account_id: int, ids: list[str]):
    """Stored (id, raw_hash) of this page's ids. On PostgreSQL one array parameter (= ANY) keeps it a
    unique-index lookup even under a generic prepared plan on a table without statistics yet, where
    an IN list of 1,000 parameters degrades to scanning the account's rows."""
    if bind.dialect.name == "postgresql":
        match = T.c.snaptrade_activity_id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.String)))
    else:
        match = T.c.snaptrade_activity_id.in_(ids)
    return sa.select(T.c.snaptrade_activity_id, T.c.raw_hash).where(T.c.account_id == account_id, match)


def _stored_raw(raw: dict, source: str | None = None) -> tuple[JSONText, str]:
    """The raw record's JSON text, hashed and stored as is: SnapTrade's own text when we have it,
    else one exact serialization. NUL and surrogate escapes (which PostgreSQL JSONB refuses) send it
    through the cleaning copy."""
    text = source if source is not None else jsonexact.dumps(raw, sort_keys=True)
    if _UNSAFE_ESCAPE.search(text):
        text = jsonexact.dumps(json_safe(raw), sort_keys=True)
    return JSONText(text), hashlib.sha256(text.encode()).hexdigest()


_bulk_plans: dict[str, tuple] = {}


def _bulk_plan(dialect):
    """The upsert compiled once per dialect, with each column's bind processor: rows then go to the
    driver's executemany directly, skipping SQLAlchemy's per-row parameter machinery."""
    plan = _bulk_plans.get(dialect.name)
    if plan is None:
        columns = [c.name for c in T.columns if c.name != "id"]
        compiled = _upsert_statement(dialect).compile(dialect=dialect, column_keys=columns)
        processors = {name: T.c[name].type._cached_bind_processor(dialect) for name in columns}
        order = list(compiled.positiontup) if compiled.positional else None
        plan = _bulk_plans[dialect.name] = (str(compiled), columns, processors, order)
    return plan


def _bulk_upsert(session: Session, rows: list[dict]) -> None:
    conn = session.connection()
    sql, columns, processors, order = _bulk_plan(conn.dialect)
    names = order or columns
    getter = itemgetter(*names)
    convert = [(i, processors[name]) for i, name in enumerate(names) if processors[name] is not None]
    params = []
    for r in rows:
        values = list(getter(r))
        for i, p in convert:
            v = values[i]
            if v is not None:
                values[i] = p(v)
        params.append(tuple(values) if order is not None else dict(zip(names, values)))
    conn.exec_driver_sql(sql, params)


def _maybe_id(raw) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("id"), (str, int)) and not isinstance(raw.get("id"), bool):
        return str(raw["id"])[:128]
    return None


def _id_key(activity_id: str) -> int:
    # 8-byte digests keep the seen-set small for large windows.
    return int.from_bytes(hashlib.blake2b(activity_id.encode(), digest_size=8).digest(), "big")


def merge_rekeyed(session: Session, *, account: BrokerageAccount, since: datetime, seen: set[int], run_id: int | None) -> int:
    """Rows inserted since `since` whose content matches an older row whose id vanished from the
    fetched window are the same activity re-keyed by SnapTrade: the old row takes the new id."""
    new_rows = session.execute(
        sa.select(T.c.id, T.c.snaptrade_activity_id, T.c.fingerprint, T.c.raw, T.c.raw_hash).where(
            T.c.account_id == account.id, T.c.created_at >= since
        )
    ).all()
    if not new_rows:
        return 0
    by_fp: dict[str, list] = defaultdict(list)
    for r in new_rows:
        by_fp[r.fingerprint].append(r)
    old_rows = session.execute(
        sa.select(T.c.id, T.c.snaptrade_activity_id, T.c.fingerprint).where(
            T.c.account_id == account.id, T.c.created_at < since, T.c.fingerprint.in_(list(by_fp))
        ).order_by(T.c.id)
    ).all()
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
) -> TransactionSyncLog:
    """Run a claimed (running) sync to its end and return the finished row."""
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
        try:
            return _execute(session, rep, settings, should_stop, on_progress, started, prior_duration)
        except StopRequested:
            session.rollback()
            run = session.get(TransactionSyncLog, run_id, populate_existing=True)
            run.status, run.phase, run.worker_id = "queued", "queued (worker stopped; will resume)", None
            run.duration_seconds = prior_duration + (time.monotonic() - started)
            session.add(run)
            session.commit()
            return run
        except Exception as exc:  # noqa: BLE001 - a run must always end with a recorded status
            log.exception("sync run %s crashed", run_id)
            try:
                session.rollback()
                run = session.get(TransactionSyncLog, run_id, populate_existing=True)
                return _finish(session, run, "failed", f"Unexpected error: {redact(exc)}",
                               {"error": {"type": type(exc).__name__, "message": redact(exc)}}, started, prior_duration)  # fmt: skip
            except Exception:  # noqa: BLE001 - e.g. the database itself is gone
                log.error("run %s could not record its failure; it will be recovered as interrupted", run_id)
                raise RunAbandoned(run_id) from None


def _finish(session, run, status, message, details, started, prior_duration) -> TransactionSyncLog:
    now = utcnow()
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
    return run


def _execute(session, rep: RunReporter, settings, should_stop, on_progress, started, prior_duration):
    run = rep.run
    client = rep.client
    rep.update(phase="reconciling connections")
    conn = session.get(BrokerageConnection, run.connection_id) if run.connection_id else None
    if conn is None:
        return _finish(session, run, "failed", "The connection of this run no longer exists.", None, started, prior_duration)
    identity = get_snaptrade_identity(session, run.user_id)
    if identity is None:
        return _finish(session, run, "failed", "This user has no SnapTrade registration yet.", None, started, prior_duration)
    try:
        reconcile_connections(session, user_id=run.user_id, client=client, identity=identity)
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
    checkpoint = dict(run.checkpoint or {})
    cp_accounts: dict = dict(checkpoint.get("accounts") or {})
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
                   account_breakdown=[o.as_dict() for o in outcomes], checkpoint={"accounts": cp_accounts})  # fmt: skip

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


def _outcome_from(d: dict) -> AccountOutcome:
    o = AccountOutcome(d.get("account_id", ""), d.get("name"), d.get("status", "pending"), d.get("message", ""),
                       start_date=d.get("start_date"), pages=d.get("pages", 0))  # fmt: skip
    o.counts = PageCounts(d.get("fetched", 0), d.get("new", 0), d.get("updated", 0), d.get("unchanged", 0), d.get("skipped", 0))
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
    # Clear the webhook hint before fetching: a hint that arrives during the fetch survives for next time.
    account.has_pending_hint = False
    session.add(account)
    cp_accounts[account.snaptrade_account_id] = cp
    rep.update(phase=f"fetching {account.account_name or account.snaptrade_account_id}",
               checkpoint={"accounts": cp_accounts})  # fmt: skip

    offset = int(cp.get("offset") or 0)
    page_size = min(1000, settings.sync_page_size)
    max_trade: date | None = account.last_synced_trade_date
    pages_counted_for_account = 0

    def fetch(at: int):
        return rep.client.activities_page(identity.snaptrade_user_id, identity.user_secret, account.snaptrade_account_id,
                                          offset=at, limit=page_size, start_date=start)  # fmt: skip

    # The next page is fetched while this one is normalized and written: network and sandbox/SnapTrade
    # time overlap our CPU time. Pages are still committed strictly in order (the checkpoint is an offset).
    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
    try:
        pending = prefetch.submit(fetch, offset)
        while True:
            if should_stop():
                raise StopRequested()
            page = pending.result()
            next_offset = offset + len(page.activities)
            more = bool(page.activities) and next_offset < page.total
            if more:
                pending = prefetch.submit(fetch, next_offset)
            pages_for_account = max(1, math.ceil(page.total / page_size)) if page.total else 1
            if pages_counted_for_account != pages_for_account:
                run.pages_total += pages_for_account - pages_counted_for_account
                pages_counted_for_account = pages_for_account
            now = utcnow()
            counts = write_page(session, user_id=account.user_id, account=account, activities=page.activities,
                                run_id=run.id, now=now, seen=seen, raw_texts=page.raw_texts)  # fmt: skip
            if counts.latest_trade_date and (max_trade is None or counts.latest_trade_date > max_trade):
                max_trade = counts.latest_trade_date
            offset = next_offset
            outcome.pages += 1
            c = outcome.counts
            c.fetched += counts.fetched
            c.new += counts.new
            c.updated += counts.updated
            c.unchanged += counts.unchanged
            c.skipped += counts.skipped
            rep.add_counts(counts)
            cp["offset"] = offset
            rep.update(pages_done=run.pages_done + 1, checkpoint={"accounts": cp_accounts})  # page + progress: one commit
            if on_progress:
                on_progress(run)
            if not more:
                break
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)

    if seen is not None:
        merged = merge_rekeyed(session, account=account, since=t0, seen=seen, run_id=run.id)
        if merged:
            outcome.message = f"{merged} re-keyed activit{'y' if merged == 1 else 'ies'} merged"
    try:
        balances = rep.client.account_balances(identity.snaptrade_user_id, identity.user_secret, account.snaptrade_account_id)
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
    from core.connections import _dec

    clean = []
    cash_total = None
    for b in balances or []:
        if not isinstance(b, dict):
            continue
        cur = (b.get("currency") or {}).get("code") if isinstance(b.get("currency"), dict) else b.get("currency")
        cash, bp = _dec(b.get("cash")), _dec(b.get("buying_power"))
        clean.append({"currency": cur, "cash": None if cash is None else str(cash), "buying_power": None if bp is None else str(bp)})
        if cur and (account.currency is None or cur == account.currency):
            cash_total, account.buying_power = cash, bp
            account.currency = account.currency or cur
    account.balances = clean
    if cash_total is not None:
        account.cash_balance = cash_total
    account.balance_updated_at = utcnow()
