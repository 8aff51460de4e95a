"""Read models for the Connections and Sync pages: connection cards with their accounts, and run
history/progress rows, as plain dataclasses so pages never touch SQL or ORM rows.

Wording that turns stored states into sentences lives here too, so every page says the same thing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from core.reads.formatting import account_short_name, clause, mask_account_number
from core.storage.models import ACTIVE_SYNC_STATUSES, BrokerageAccount, BrokerageConnection, TransactionSyncLog

__all__ = ["mask_account_number"]  # re-exported: one masking rule for Connections and Transactions


@dataclass(frozen=True)
class AccountLine:
    account_id: int
    name: str
    masked_number: str
    account_type: str | None
    currency: str | None
    total_value: Decimal | None
    cash_balance: Decimal | None
    balance_updated_at: datetime | None


@dataclass(frozen=True)
class ConnectionState:
    """A connection's state and schedule, as both a trader's card and a staff member's summary show it."""

    brokerage_name: str
    status: str
    status_reason: str | None
    disabled_at: datetime | None
    error_message: str | None
    last_sync_at: datetime | None
    last_successful_sync_at: datetime | None
    next_sync_at: datetime | None
    auto_sync_enabled: bool
    sync_frequency_minutes: int
    created_at: datetime


def connection_state(c: BrokerageConnection) -> dict[str, Any]:
    """The ConnectionState fields of a connection row, as keywords."""
    return {f.name: getattr(c, f.name) for f in fields(ConnectionState)}


@dataclass(frozen=True)
class ConnectionCard(ConnectionState):
    connection_id: int = 0
    accounts: list[AccountLine] = field(default_factory=list)
    active_run_id: int | None = None

    @property
    def can_sync(self) -> bool:
        return self.status != "disconnected"

    @property
    def next_sync_note(self) -> str | None:
        """Why no next sync time applies, or None when the schedule's time is the truth.

        The scheduler only picks active connections with auto-sync on (core.jobs.queue.connections_due)."""
        if self.status == "needs_reconnect":
            return "paused until reconnected"
        if self.status == "error":
            return "paused while the connection is in error"
        if self.status == "pending":
            return "starts once the connection is confirmed"
        if self.status == "disconnected":
            return "none (disconnected)"
        if not self.auto_sync_enabled:
            return "auto-sync is off"
        return None


@dataclass(frozen=True)
class RunRow:
    """One sync run as the Sync page shows it (progress while active, summary afterwards)."""

    run_id: int
    connection_id: int | None
    brokerage_name: str
    trigger: str
    status: str
    phase: str | None
    full_sync: bool
    accounts_done: int
    accounts_total: int
    pages_done: int
    pages_total: int
    fetched: int
    new: int
    updated: int
    unchanged: int
    skipped: int
    error_message: str | None
    queued_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    # From the run's per-account breakdown: accounts already finished (synced, skipped or failed) and
    # the pages they used, so the current account's pages can be told apart from the run-wide counters.
    accounts_finished: int = 0
    pages_finished: int = 0

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_SYNC_STATUSES

    def _current_account(self) -> tuple[int, int, int]:
        """(accounts finished, pages done and pages known of the account being read now)."""
        finished = min(max(self.accounts_finished, self.accounts_done), self.accounts_total)
        # pages_total grows as each account's first page reveals its size; pages_finished belong to earlier accounts.
        return finished, max(0, self.pages_done - self.pages_finished), max(0, self.pages_total - self.pages_finished)

    @property
    def fraction(self) -> float:
        """Progress 0..1: accounts weigh equally, pages refine the current account.

        A running sync never shows 0 (a sliver while it reads connections and accounts) and never
        100 % before it finishes, so the bar moves from the first poll instead of jumping at the end."""
        if self.status not in ACTIVE_SYNC_STATUSES:
            return 1.0
        if self.status != "running":
            return 0.0
        if self.accounts_total <= 0:
            return RUN_STARTED_FRACTION
        finished, current_done, current_total = self._current_account()
        within = current_done / current_total if current_total > 0 and current_done > 0 else 0.0
        done = finished + min(within, 0.99) if finished < self.accounts_total else finished
        return max(RUN_STARTED_FRACTION, min(0.99, done / self.accounts_total))

    @property
    def percent(self) -> int:
        """The bar's value in whole percent, rounded down (a bar never claims more than is done)."""
        return int(self.fraction * 100)

    @property
    def progress_label(self) -> str:
        """The text on the progress bar, built from the numbers the bar is computed from, so the two agree:
        'Fetching Roth IRA — 7 % · account 1 of 2 · page 23 of 150'. While SnapTrade is being retried the
        phase is the retry itself ('SnapTrade answered 503 — retrying in 4 s, attempt 2 of 7')."""
        if self.status != "running":
            return "Waiting for the worker to pick it up"
        phase = phase_label(self.phase)
        if self.accounts_total <= 0 or "retrying" in phase:
            return phase
        finished, current_done, current_total = self._current_account()
        parts = [
            f"{phase} — {self.percent} %",
            f"account {min(finished + 1, self.accounts_total)} of {self.accounts_total}",
        ]
        if current_total > 0 and finished < self.accounts_total:
            parts.append(f"page {min(current_done, current_total):,} of {current_total:,}")
        return " · ".join(parts)


RUN_STARTED_FRACTION = 0.02


def connection_cards(session: Session, user_id: int, *, include_disconnected: bool = False) -> list[ConnectionCard]:
    query = select(BrokerageConnection).where(BrokerageConnection.user_id == user_id)
    if not include_disconnected:
        query = query.where(BrokerageConnection.status != "disconnected")
    connections = session.exec(query.order_by(BrokerageConnection.created_at, BrokerageConnection.id)).all()
    if not connections:
        return []
    ids = [c.id for c in connections]
    accounts = session.exec(
        select(BrokerageAccount)
        .where(BrokerageAccount.connection_id.in_(ids), BrokerageAccount.removed_at.is_(None))
        .order_by(BrokerageAccount.id)
    ).all()
    by_connection: dict[int, list[AccountLine]] = defaultdict(list)
    for a in accounts:
        by_connection[a.connection_id].append(
            AccountLine(
                account_id=a.id,
                name=account_short_name(a),
                masked_number=mask_account_number(a.account_number),
                account_type=a.account_type,
                currency=a.currency,
                total_value=a.total_value,
                cash_balance=a.cash_balance,
                balance_updated_at=a.balance_updated_at,
            )
        )
    active = dict(
        session.exec(
            select(TransactionSyncLog.connection_id, TransactionSyncLog.id).where(
                TransactionSyncLog.connection_id.in_(ids),
                TransactionSyncLog.status.in_(ACTIVE_SYNC_STATUSES),
            )
        ).all()
    )
    return [
        ConnectionCard(
            **{**connection_state(c), "brokerage_name": c.brokerage_name or c.brokerage_slug or "Brokerage"},
            connection_id=c.id,
            accounts=by_connection.get(c.id, []),
            active_run_id=active.get(c.id),
        )
        for c in connections
    ]


def _run_row(run: TransactionSyncLog, names: dict[int, str]) -> RunRow:
    breakdown = [o for o in (run.account_breakdown or []) if isinstance(o, dict)]
    return RunRow(
        run_id=run.id,
        connection_id=run.connection_id,
        brokerage_name=names.get(run.connection_id, "Removed connection") if run.connection_id else "—",
        trigger=run.trigger,
        status=run.status,
        phase=run.phase,
        full_sync=run.full_sync,
        accounts_done=run.accounts_done,
        accounts_total=run.accounts_total,
        pages_done=run.pages_done,
        pages_total=run.pages_total,
        fetched=run.transactions_fetched,
        new=run.transactions_new,
        updated=run.transactions_updated,
        unchanged=run.transactions_unchanged,
        skipped=run.transactions_skipped,
        error_message=run.error_message,
        queued_at=run.queued_at,
        started_at=run.started_at,
        completed_at=run.completed_at,
        duration_seconds=run.duration_seconds,
        accounts_finished=len(breakdown),
        pages_finished=sum(int(o.get("pages") or 0) for o in breakdown),
    )


def _connection_names(session: Session, user_id: int) -> dict[int, str]:
    rows = session.exec(
        select(BrokerageConnection.id, BrokerageConnection.brokerage_name, BrokerageConnection.brokerage_slug).where(
            BrokerageConnection.user_id == user_id
        )
    ).all()
    return {i: (name or slug or "Brokerage") for i, name, slug in rows}


def run_rows(session: Session, user_id: int, *, run_ids: list[int] | None = None, limit: int = 20) -> list[RunRow]:
    """The user's runs, newest first; restricted to `run_ids` when given (the ones a click started)."""
    query = select(TransactionSyncLog).where(TransactionSyncLog.user_id == user_id)
    if run_ids is not None:
        if not run_ids:
            return []
        query = query.where(TransactionSyncLog.id.in_(run_ids))
    runs = session.exec(
        query.order_by(TransactionSyncLog.queued_at.desc(), TransactionSyncLog.id.desc()).limit(limit)
    ).all()
    names = _connection_names(session, user_id)
    return [_run_row(r, names) for r in runs]


def active_run_rows(session: Session, user_id: int) -> list[RunRow]:
    runs = session.exec(
        select(TransactionSyncLog)
        .where(TransactionSyncLog.user_id == user_id, TransactionSyncLog.status.in_(ACTIVE_SYNC_STATUSES))
        .order_by(TransactionSyncLog.queued_at, TransactionSyncLog.id)
    ).all()
    names = _connection_names(session, user_id)
    return [_run_row(r, names) for r in runs]


# --- wording -------------------------------------------------------------------------------------

STATUS_LABELS = {
    "pending": "Connecting",
    "active": "Active",
    "needs_reconnect": "Needs reconnect",
    "error": "Error",
    "disconnected": "Disconnected",
}

RUN_STATUS_LABELS = {
    "queued": "Waiting to start",
    "running": "Running",
    "completed": "Completed",
    "partial": "Partly completed",
    "failed": "Failed",
    "interrupted": "Interrupted",
}

TRIGGER_LABELS = {
    "manual": "Sync now",
    "scheduled": "Scheduled",
    "webhook": "Broker update",
    "initial": "After connecting",  # the portal callback: a first import, or one sync after a reconnect
}


def trigger_label(trigger: str, full_sync: bool) -> str:
    """What started a run, in words; a run that re-reads everything says so."""
    return TRIGGER_LABELS.get(trigger, trigger) + (" (whole history)" if full_sync else "")


PHASE_LABELS = {
    "queued": "Waiting for the worker",
    "starting": "Starting",
    "reconciling connections": "Checking the connection with SnapTrade",
    "syncing accounts": "Reading accounts",
    "accounts": "Reading accounts",
    "balances": "Reading balances",
    "transactions": "Fetching transactions",
    "activities": "Fetching transactions",
    "saving": "Saving",
    "finishing": "Finishing",
    "done": "Done",
}


def phase_label(phase: str | None) -> str:
    if not phase:
        return "Waiting for the worker"
    label = PHASE_LABELS.get(phase, phase.replace("_", " "))
    return label[:1].upper() + label[1:]


def frequency_label(minutes: int) -> str:
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return "daily" if days == 1 else f"every {days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "hourly" if hours == 1 else f"every {hours} hours"
    return f"every {minutes} minutes"


def run_result_brief(row: RunRow) -> str:
    """The outcome in a table cell, next to a status column that already says "Completed": the
    counts that matter for a completed run, the full sentence for anything else."""
    if row.status != "completed":
        return run_outcome_sentence(row)
    if row.fetched == 0:
        return "Nothing new at SnapTrade"
    changes = [
        f"{n:,} {label}" for n, label in ((row.new, "new"), (row.updated, "updated"), (row.skipped, "skipped")) if n
    ]
    return f"{row.fetched:,} fetched: {', '.join(changes) if changes else 'all unchanged'}"


def run_outcome_sentence(row: RunRow) -> str:
    """A run's result in words (used by the summary and the history table)."""
    counts = f"{row.new:,} new, {row.updated:,} updated, {row.unchanged:,} unchanged, {row.skipped:,} skipped"
    if row.status == "completed":
        if row.fetched == 0:
            return "Completed: SnapTrade had nothing new since the last sync."
        return f"Completed: {row.fetched:,} transactions fetched ({counts})."
    if row.status == "partial":
        reason = clause(row.error_message or "some accounts could not be read")
        return f"Partly completed: {reason}. Imported so far: {counts}."
    if row.status == "failed":
        return f"Failed: {clause(row.error_message or 'the sync stopped with an unknown error')}."
    if row.status == "interrupted":
        return "Interrupted (the app restarted during the sync); it will be resumed from its checkpoint."
    if row.status == "queued":
        return "Waiting for the worker to pick it up."
    return f"{phase_label(row.phase)}…"
