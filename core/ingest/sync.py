"""The sync engine: one run brings one connection's accounts in step with SnapTrade.

Each page is written in one transaction together with the run's progress and checkpoint, so a
crash at any moment leaves the database consistent and the next attempt resumes without duplicates.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.accounts.connections import get_snaptrade_identity
from core.gcpace import bulk_allocations
from core.ingest.account import sync_account
from core.ingest.journal_step import JournalStep
from core.ingest.pipeline import StopRequested
from core.ingest.progress import AccountOutcome, RunReporter, checkpoint, outcome_from
from core.ingest.reconcile_once import reconcile_for_run
from core.messages import MAX_STORED_MESSAGE_CHARS, describe_error, shorten
from core.settings import get_settings
from core.snaptrade.client import DisabledConnectionError, SnapTradeClient, SnapTradeError
from core.storage.counts import fold as fold_counts
from core.storage.db import get_engine
from core.storage.models import BrokerageAccount, BrokerageConnection, TransactionSyncLog, utcnow

log = logging.getLogger("tradistry.sync")


class RunAbandoned(Exception):
    """The run could not even record its failure (database unreachable); stale-run recovery requeues it."""


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
            with bulk_allocations():  # a run's pages are garbage for reference counting, not for the cycle collector
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
    rep.update(phase="reconciling connections")
    try:
        conn, identity = _connection_ready(session, rep)
    except _CannotSync as no:
        return _finish(session, run, "failed", no.message, no.details, started, prior_duration)
    accounts = list(session.exec(
        select(BrokerageAccount).where(BrokerageAccount.connection_id == conn.id, BrokerageAccount.is_active.is_(True),
                                       BrokerageAccount.sync_enabled.is_(True)).order_by(BrokerageAccount.id)))  # fmt: skip
    # The journal: broker positions where they may have moved, then the (account, instrument) pairs dirtied;
    # on PostgreSQL begun for each account beside the next one's import (core.ingest.journal_step).
    journal = JournalStep(session, rep.client, identity, accounts)
    try:
        outcomes = _sync_accounts(session, rep, settings, identity, conn, accounts, should_stop, on_progress, journal)
    except BaseException:
        journal.wait()  # a step begun early ends (and commits or rolls back) before the run does
        raise
    synced = {o.account_id: o.counts.new + o.counts.updated for o in outcomes if o.status == "synced"}
    journal.finish(
        accounts, {a.id: synced[a.snaptrade_account_id] for a in accounts if a.snaptrade_account_id in synced}
    )
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


class _CannotSync(Exception):
    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message, self.details = message, details


def _connection_ready(session, rep: RunReporter):
    """(connection, identity) after reconciling with SnapTrade; _CannotSync says why the run cannot sync."""
    run = rep.run
    conn = session.get(BrokerageConnection, run.connection_id) if run.connection_id else None
    if conn is None:
        raise _CannotSync("The connection of this run no longer exists.")
    identity = get_snaptrade_identity(session, run.user_id)
    if identity is None:
        raise _CannotSync("This user has no SnapTrade registration yet.")
    try:
        reconcile_for_run(session, run=run, client=rep.client, identity=identity)  # not twice: see reconcile_once
    except SnapTradeError as exc:
        raise _CannotSync(f"Could not read connections from SnapTrade: {exc}", {"error": exc.details()}) from exc
    session.refresh(conn)
    if conn.status == "disconnected":
        raise _CannotSync("This connection was deleted at SnapTrade; its history is kept.")
    if conn.status == "needs_reconnect":
        since = conn.disabled_at.date().isoformat() if conn.disabled_at else "recently"
        raise _CannotSync(f"This connection needs to be reconnected (disabled since {since}): {conn.status_reason or ''}".strip(),
                          {"error": {"code": "3003", "type": "DisabledConnectionError"}})  # fmt: skip
    return conn, identity


def _sync_accounts(
    session, rep: RunReporter, settings, identity, conn, accounts, should_stop, on_progress, journal: JournalStep
):
    """Each account not already done by an earlier attempt; one account's SnapTrade failure fails only it."""
    run = rep.run
    # A deep copy: the per-account entries change in place below, and must not alias the loaded column value.
    cp_accounts: dict = copy.deepcopy((run.checkpoint or {}).get("accounts") or {})
    outcomes: list[AccountOutcome] = [outcome_from(o) for o in (run.account_breakdown or [])]
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
            sync_account(session, rep, settings, identity, account, outcome, cp_accounts, should_stop, on_progress)
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
        if outcome.status == "synced":
            journal.account_imported(account, outcome.counts.new + outcome.counts.updated)
        run = rep.run = session.get(TransactionSyncLog, run.id, populate_existing=True)
        if outcome.status != "failed":
            cp_accounts.pop(account.snaptrade_account_id, None)
        rep.update(accounts_done=sum(1 for o in outcomes if o.status in ("synced", "skipped")),
                   account_breakdown=[o.as_dict() for o in outcomes], checkpoint=checkpoint(cp_accounts))  # fmt: skip
    return outcomes
