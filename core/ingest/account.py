"""One account of a run: decide whether it needs fetching, page through its activities from the checkpoint
(each page committed with the run's progress), merge what SnapTrade re-keyed, then read its balances."""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from core.ingest.binder import T
from core.ingest.page_write import (
    PageCounts,
    PreparedPage,
    RunInserts,
    close_fixed_issues,
    open_quarantined_ids,
    prepare_page,
    store_page,
)
from core.ingest.pipeline import PagePipeline, StopRequested
from core.ingest.progress import AccountOutcome, RunReporter, checkpoint
from core.ingest.rekey import merge_rekeyed
from core.snaptrade.client import ActivityPage, SnapTradeError
from core.snaptrade.values import decimal_or_none
from core.storage.models import BrokerageAccount, utcnow

log = logging.getLogger("tradistry.sync")


def sync_account(session: Session, rep: RunReporter, settings, identity, account: BrokerageAccount,
                 outcome: AccountOutcome, cp_accounts: dict, should_stop, on_progress) -> None:  # fmt: skip
    """Bring one account in step; `cp_accounts` holds every account's resume point and is saved with each page."""
    if not _needs_sync(account, rep.run.full_sync):
        outcome.status, outcome.message = "skipped", "nothing new at SnapTrade since the last sync"
        return
    cp = _resume_point(session, rep, settings, account, cp_accounts)
    outcome.start_date = cp.get("start")
    seen: set[int] | None = set() if cp.get("track") else None
    inserted = RunInserts(datetime.fromisoformat(cp["t0"])) if seen is not None else None
    # Clear the webhook hint before fetching: a hint that arrives during the fetch survives for next time.
    account.has_pending_hint = False
    session.add(account)
    rep.update(phase=f"fetching {account.account_name or account.snaptrade_account_id}",
               checkpoint=checkpoint(cp_accounts))  # fmt: skip
    max_trade = _write_pages(session, rep, settings, identity, account, outcome, cp_accounts, cp, seen, inserted,
                             should_stop, on_progress)  # fmt: skip
    if seen is not None:
        merged = merge_rekeyed(session, account=account, inserted=inserted, seen=seen, run_id=rep.run.id)
        if merged:
            outcome.message = f"{merged} re-keyed activit{'y' if merged == 1 else 'ies'} merged"
    _read_balances(rep, identity, account)
    now = utcnow()
    account.synced_snaptrade_marker = date.fromisoformat(cp["marker"]) if cp.get("marker") else None
    account.last_synced_at = now
    account.last_synced_trade_date = max_trade
    account.updated_at = now
    session.add(account)
    outcome.status = "synced"
    rep.update()


def _resume_point(session: Session, rep: RunReporter, settings, account: BrokerageAccount, cp_accounts: dict) -> dict:
    """The account's checkpoint: the saved one of an earlier attempt, or a new one (window start, marker, t0)."""
    cp = cp_accounts.get(account.snaptrade_account_id)
    if cp is None:
        has_rows = session.execute(sa.select(T.c.id).where(T.c.account_id == account.id).limit(1)).first() is not None
        start = _window_start(account, rep.run.full_sync, settings.sync_overlap_days)
        cp = {"t0": utcnow().isoformat(), "offset": 0, "track": has_rows,
              "start": start.isoformat() if start else None, "marker": _iso(account.snaptrade_last_successful_sync)}  # fmt: skip
    elif cp.get("track"):
        cp["offset"] = 0  # re-key detection needs the whole window read in one attempt
    cp_accounts[account.snaptrade_account_id] = cp
    return cp


def _write_pages(session: Session, rep: RunReporter, settings, identity, account: BrokerageAccount,
                 outcome: AccountOutcome, cp_accounts: dict, cp: dict, seen: set[int] | None,
                 inserted: RunInserts | None, should_stop, on_progress) -> date | None:  # fmt: skip
    """Every page from the checkpoint's offset, each committed with the run's progress; the latest trade date.

    Fetching, normalizing and writing run at once on consecutive pages (two threads feed this one): SnapTrade's
    time, our CPU time and the database's time overlap. Pages are still written and committed strictly in
    order (the checkpoint is an offset)."""
    run = rep.run
    page_size = min(1000, settings.sync_page_size)
    start = date.fromisoformat(cp["start"]) if cp.get("start") else None
    # Plain values for the prefetch thread: it must not touch the session or its objects.
    dialect, track = session.get_bind().dialect, seen is not None
    ids = {"user_id": account.user_id, "account_id": account.id, "run_id": run.id}
    who = (identity.snaptrade_user_id, identity.user_secret, account.snaptrade_account_id)

    def fetch_page(at: int) -> ActivityPage:
        return rep.client.activities_page(*who, offset=at, limit=page_size, start_date=start)

    def prepare(page: ActivityPage) -> PreparedPage:
        return prepare_page(dialect, page=page, now=utcnow(), track=track, **ids)

    offset = int(cp.get("offset") or 0)
    max_trade: date | None = account.last_synced_trade_date
    pages_counted = 0
    open_issues = open_quarantined_ids(session, account.id)
    with PagePipeline(fetch_page, prepare, offset, should_stop) as pages:
        for prepared in pages:
            if should_stop():
                raise StopRequested()
            page = prepared.page
            pages_for_account = max(1, math.ceil(page.total / page_size)) if page.total else 1
            if pages_counted != pages_for_account:
                run.pages_total += pages_for_account - pages_counted
                pages_counted = pages_for_account
            counts = store_page(session, account.id, prepared, inserted, pages.writer_waits)
            close_fixed_issues(session, account.id, prepared, open_issues, run.id)
            if seen is not None:
                seen.update(prepared.seen)
            if counts.latest_trade_date and (max_trade is None or counts.latest_trade_date > max_trade):
                max_trade = counts.latest_trade_date
            offset += len(page.activities)
            outcome.pages += 1
            _add(outcome.counts, counts)
            rep.add_counts(counts)
            cp["offset"] = offset
            rep.update(pages_done=run.pages_done + 1, checkpoint=checkpoint(cp_accounts))  # page + progress: one commit
            if on_progress:
                on_progress(run)
    return max_trade


def _add(total: PageCounts, page: PageCounts) -> None:
    total.fetched += page.fetched
    total.new += page.new
    total.updated += page.updated
    total.unchanged += page.unchanged
    total.skipped += page.skipped


def _read_balances(rep: RunReporter, identity, account: BrokerageAccount) -> None:
    try:
        balances = rep.client.account_balances(
            identity.snaptrade_user_id, identity.user_secret, account.snaptrade_account_id
        )
    except SnapTradeError as exc:
        log.info("balances for account %s unavailable: %s", account.id, exc)
        return
    _apply_balances(account, balances)


def _needs_sync(account: BrokerageAccount, full: bool) -> bool:
    if full or account.last_synced_at is None or account.has_pending_hint:
        return True
    marker, current = account.synced_snaptrade_marker, account.snaptrade_last_successful_sync
    if current is None:
        return marker is not None  # SnapTrade stopped reporting a sync date: look again
    return marker is None or current > marker


def _window_start(account: BrokerageAccount, full: bool, overlap_days: int) -> date | None:
    if full or account.last_synced_at is None:
        return None
    anchors = [d for d in (account.synced_snaptrade_marker, account.last_synced_trade_date) if d is not None]
    if not anchors:
        return None
    return min(anchors) - timedelta(days=overlap_days)


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
