"""The tables: app users, SnapTrade users, connections, accounts, transactions, sync runs,
webhook events, the sync issues ledger; the trading journal built from the transactions (round trips, open
positions and lots, unplaceable activities, the broker's positions and their reconciliation); and for staff, the
audit trail, portal attempts, connection state history and each run's SnapTrade request log. Names follow the
original integration guide.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from core.snaptrade.activity_types import NORMALIZED_TYPES
from core.storage.types import BigIntPK, ExactDecimal, ExactNumber, JSONType


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


USER_ROLES = ("trader", "staff")
CONNECTION_STATUSES = ("pending", "active", "needs_reconnect", "error", "disconnected")
SNAPTRADE_USER_STATUSES = ("active", "needs_attention")
SYNC_TRIGGERS = ("manual", "scheduled", "webhook", "initial")
SYNC_STATUSES = ("queued", "running", "completed", "partial", "failed", "interrupted")
ACTIVE_SYNC_STATUSES = ("queued", "running")
FINAL_SYNC_STATUSES = ("completed", "partial", "failed")  # will not write again (an interrupted run resumes)
ISSUE_KINDS = ("quarantined", "skipped", "merged", "flagged")
JOURNAL_DIRECTIONS = ("long", "short")
JOURNAL_STATUSES = ("open", "closed")
# received → processed / ignored / flagged; pending: the event's connection is not recorded yet
# (SnapTrade sends webhooks before the portal's callback), it is matched again when it is.
WEBHOOK_STATUSES = ("received", "processed", "ignored", "pending", "flagged")
STAFF_ACTIONS = ("retry_sync", "full_resync", "reconcile", "resolve_issue", "reprocess_webhooks", "reconnect_link",
                 "disable_auto_sync", "support_bundle")  # fmt: skip
ACTION_OUTCOMES = ("started", "done", "no_change", "failed")
ATTEMPT_OUTCOMES = ("open", "connected", "failed", "abandoned", "unknown")


def _money() -> Any:
    return sa.Column(ExactDecimal(), nullable=True)


def _number(nullable: bool = True) -> Any:
    return sa.Column(ExactNumber(), nullable=nullable)


class AppUser(SQLModel, table=True):
    __tablename__ = "app_users"
    __table_args__ = (sa.CheckConstraint(f"role IN ({_in(USER_ROLES)})", name="ck_app_users_role"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    email: Optional[str] = Field(default=None, max_length=255)
    name: Optional[str] = Field(default=None, max_length=255)
    password_hash: str = Field(max_length=255)
    role: str = Field(default="trader", max_length=16)
    is_active: bool = Field(default=True)
    # Bumped on logout / password change: a cookie issued under an older epoch stops working.
    session_epoch: int = Field(default=0)
    failed_login_count: int = Field(default=0)
    failed_login_window_start: Optional[datetime] = Field(default=None)
    locked_until: Optional[datetime] = Field(default=None)
    timezone: Optional[str] = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SnapTradeUser(SQLModel, table=True):
    __tablename__ = "snaptrade_users"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({_in(SNAPTRADE_USER_STATUSES)})", name="ck_snaptrade_users_status"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_users.id", unique=True, ondelete="CASCADE")
    # Opaque random id: no e-mail or name ever goes to SnapTrade.
    snaptrade_user_id: str = Field(max_length=64, unique=True)
    user_secret_encrypted: str = Field(max_length=1024)
    # needs_attention once SnapTrade refuses the stored secret (401, code 1083): every call for the user
    # would fail the same way until the secret is reset or the user is registered again (core.accounts.user_secrets).
    status: str = Field(default="active", max_length=16, sa_column_kwargs={"server_default": "active"})
    status_reason: Optional[str] = Field(default=None)
    status_changed_at: Optional[datetime] = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class BrokerageConnection(SQLModel, table=True):
    __tablename__ = "brokerage_connections"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({_in(CONNECTION_STATUSES)})", name="ck_brokerage_connections_status"),
        sa.Index(
            "idx_brokerage_connections_next_sync",
            "next_sync_at",
            postgresql_where=sa.text("status = 'active' AND auto_sync_enabled"),
            sqlite_where=sa.text("status = 'active' AND auto_sync_enabled"),
        ),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_users.id", index=True, ondelete="CASCADE")
    authorization_id: str = Field(max_length=64, unique=True)
    brokerage_slug: Optional[str] = Field(default=None, max_length=64)
    brokerage_name: str = Field(default="", max_length=255)
    connection_type: Optional[str] = Field(default=None, max_length=32)
    status: str = Field(default="active", max_length=32, index=True)
    status_reason: Optional[str] = Field(default=None)
    disabled_at: Optional[datetime] = Field(default=None)
    error_message: Optional[str] = Field(default=None)
    error_details: Optional[dict] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    last_sync_at: Optional[datetime] = Field(default=None)
    last_successful_sync_at: Optional[datetime] = Field(default=None)
    next_sync_at: Optional[datetime] = Field(default=None)
    sync_frequency_minutes: int = Field(default=24 * 60)
    auto_sync_enabled: bool = Field(default=True)
    extra: Optional[dict] = Field(default=None, sa_column=Column("metadata", JSONType, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class BrokerageAccount(SQLModel, table=True):
    __tablename__ = "brokerage_accounts"

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_users.id", index=True, ondelete="CASCADE")
    connection_id: int = Field(foreign_key="brokerage_connections.id", index=True, ondelete="CASCADE")
    snaptrade_account_id: str = Field(max_length=64, unique=True)
    account_name: Optional[str] = Field(default=None, max_length=255)
    account_number: Optional[str] = Field(default=None, max_length=64)  # masked, e.g. ****1234
    account_type: Optional[str] = Field(default=None, max_length=64)
    institution_name: Optional[str] = Field(default=None, max_length=255)
    currency: Optional[str] = Field(default=None, max_length=8)
    cash_balance: Optional[Decimal] = Field(default=None, sa_column=_money())
    total_value: Optional[Decimal] = Field(default=None, sa_column=_money())
    buying_power: Optional[Decimal] = Field(default=None, sa_column=_money())
    balances: Optional[list] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    is_active: bool = Field(default=True)
    sync_enabled: bool = Field(default=True)
    # SnapTrade's sync_status.transactions as last read.
    snaptrade_initial_sync_completed: Optional[bool] = Field(default=None)
    snaptrade_last_successful_sync: Optional[date] = Field(default=None)
    first_transaction_date: Optional[date] = Field(default=None)
    # SnapTrade's last_successful_sync as it was when our last successful sync finished:
    # unchanged + no webhook hint means there is nothing new to fetch.
    synced_snaptrade_marker: Optional[date] = Field(default=None)
    last_synced_trade_date: Optional[date] = Field(default=None)
    has_pending_hint: bool = Field(default=False)
    extra: Optional[dict] = Field(default=None, sa_column=Column("metadata", JSONType, nullable=True))
    balance_updated_at: Optional[datetime] = Field(default=None)
    last_synced_at: Optional[datetime] = Field(default=None)
    removed_at: Optional[datetime] = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class BrokerageTransaction(SQLModel, table=True):
    __tablename__ = "brokerage_transactions"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "snaptrade_activity_id", name="uq_brokerage_transactions_account_activity"),
        sa.CheckConstraint(f"transaction_type IN ({_in(NORMALIZED_TYPES)})", name="ck_brokerage_transactions_type"),
        sa.Index("idx_brokerage_transactions_user_trade_date", "user_id", "trade_date", "id"),
        # Symbol filter newest first and the symbol sort (ties by date, id) are index range scans.
        sa.Index("idx_brokerage_transactions_user_symbol", "user_id", "symbol", "trade_date", "id"),
        # Type/date filters; with amount and id, "sort by amount" finds its page without reading rows.
        sa.Index(
            "idx_brokerage_transactions_user_type_date", "user_id", "transaction_type", "trade_date", "amount", "id"
        ),
        sa.Index("idx_brokerage_transactions_fingerprint", "account_id", "fingerprint"),
        # One option contract's rows for a journal rebuild (core.journal.upkeep), without scanning the account.
        sa.Index(
            "idx_brokerage_transactions_account_option",
            "account_id",
            "option_ticker",
            postgresql_where=sa.text("option_ticker IS NOT NULL"),
            sqlite_where=sa.text("option_ticker IS NOT NULL"),
        ),
        # One stock symbol's rows in one account, for the same rebuild: not the user's other accounts, not
        # the underlying's option rows (migration 0008).
        sa.Index(
            "idx_brokerage_transactions_account_symbol",
            "account_id",
            "symbol",
            postgresql_where=sa.text("option_ticker IS NULL"),
            sqlite_where=sa.text("option_ticker IS NULL"),
        ),
        # Every column a total, a filter-options pass or an Analytics aggregation reads: they scan this
        # (about a tenth of a row's width, the raw JSON stays out) instead of the user's rows. Grouping
        # by currency, then type, follows its order. Every column is bounded (description is cut at
        # 500 characters by the normalizer) so no entry can exceed PostgreSQL's B-tree tuple limit.
        sa.Index(
            "idx_brokerage_transactions_user_aggregates",
            "user_id",
            "currency",
            "transaction_type",
            "trade_date",
            "symbol",
            "account_id",
            "amount",
            "fee",
            "description",
        ),  # fmt: skip
    )

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", ondelete="CASCADE")
    account_id: int = Field(foreign_key="brokerage_accounts.id", ondelete="CASCADE")
    snaptrade_activity_id: str = Field(max_length=128)
    transaction_type: str = Field(max_length=40)
    raw_type: Optional[str] = Field(default=None, max_length=128)
    symbol: Optional[str] = Field(default=None, max_length=64)
    symbol_id: Optional[str] = Field(default=None, max_length=64)
    security_name: Optional[str] = Field(default=None)
    security_type: Optional[str] = Field(default=None, max_length=32)
    option_ticker: Optional[str] = Field(default=None, max_length=32)  # canonical OCC, space-padded root
    option_underlying: Optional[str] = Field(default=None, max_length=16)
    option_right: Optional[str] = Field(default=None, max_length=4)  # CALL / PUT
    option_strike: Optional[Decimal] = Field(default=None, sa_column=_money())
    option_expiration: Optional[date] = Field(default=None)
    option_action: Optional[str] = Field(default=None, max_length=16)  # BUY_TO_OPEN …
    quantity: Optional[Decimal] = Field(default=None, sa_column=_money())
    price: Optional[Decimal] = Field(default=None, sa_column=_money())
    amount: Optional[Decimal] = Field(default=None, sa_column=_money())
    fee: Optional[Decimal] = Field(default=None, sa_column=_money())
    currency: Optional[str] = Field(default=None, max_length=8)
    fx_rate: Optional[Decimal] = Field(default=None, sa_column=_money())
    trade_date: date
    trade_timestamp: Optional[str] = Field(default=None, max_length=64)  # as SnapTrade wrote it
    trade_date_from_settlement: bool = Field(default=False)
    settlement_date: Optional[date] = Field(default=None)
    description: Optional[str] = Field(default=None)
    institution: Optional[str] = Field(default=None, max_length=255)
    external_reference_id: Optional[str] = Field(default=None, max_length=128)
    fingerprint: str = Field(max_length=64)
    # Hash of the whole raw record: a re-fetched row whose hash matches is not rewritten.
    raw_hash: str = Field(max_length=64)
    raw: Optional[dict] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class UserTransactionCount(SQLModel, table=True):
    """Each user's transaction count as deltas kept by database triggers (migration 0004), in the same
    transaction as the rows, whoever writes them: the user's count is the sum of their deltas, and
    (count, newest delta's id) moves with every change to their rows (core.storage.counts reads and folds them).

    PostgreSQL appends one delta per user per write statement (one per sync page): appends take no row
    lock two syncs could wait on and leave no version chain to walk, as updating one row per user would.
    SQLite keeps one row per user: inserts add to it in place, updates and deletes give it a new id."""

    __tablename__ = "user_transaction_counts"
    # A user's deltas are one index range (the delta itself is not in the index: SQLite updates it in place).
    __table_args__ = (sa.Index("idx_user_transaction_counts_user", "user_id", "id"),)

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", ondelete="CASCADE")
    delta: int = Field(sa_column=Column(sa.BigInteger, nullable=False))


class TransactionSyncLog(SQLModel, table=True):
    """A sync run and the job queue at once: queued rows are work, finished rows are history."""

    __tablename__ = "transaction_sync_log"
    __table_args__ = (
        sa.CheckConstraint(f"trigger IN ({_in(SYNC_TRIGGERS)})", name="ck_transaction_sync_log_trigger"),
        sa.CheckConstraint(f"status IN ({_in(SYNC_STATUSES)})", name="ck_transaction_sync_log_status"),
        # At most one queued-or-running sync per connection, enforced by the database.
        sa.Index(
            "uq_transaction_sync_log_active_connection",
            "connection_id",
            unique=True,
            postgresql_where=sa.text("status IN ('queued', 'running')"),
            sqlite_where=sa.text("status IN ('queued', 'running')"),
        ),
        sa.Index("idx_transaction_sync_log_status_queued", "status", "queued_at"),
        # "Superseded by #N": a connection's later runs by outcome, one index range per problem run.
        sa.Index("idx_transaction_sync_log_connection", "connection_id", "status", "id"),
        sa.Index("idx_transaction_sync_log_user_started", "user_id", "queued_at"),
        # data_version's "last finished run": one index probe however many runs a user has had.
        sa.Index(
            "idx_transaction_sync_log_user_finished",
            "user_id",
            "id",
            postgresql_where=sa.text(f"status IN ({_in(FINAL_SYNC_STATUSES)})"),
            sqlite_where=sa.text(f"status IN ({_in(FINAL_SYNC_STATUSES)})"),
        ),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_users.id", ondelete="CASCADE")
    connection_id: Optional[int] = Field(default=None, foreign_key="brokerage_connections.id", ondelete="SET NULL")
    trigger: str = Field(max_length=16)
    status: str = Field(default="queued", max_length=16)
    full_sync: bool = Field(default=False)
    phase: Optional[str] = Field(default=None, max_length=64)
    accounts_total: int = Field(default=0)
    accounts_done: int = Field(default=0)
    pages_total: int = Field(default=0)
    pages_done: int = Field(default=0)
    transactions_fetched: int = Field(default=0)
    transactions_new: int = Field(default=0)
    transactions_updated: int = Field(default=0)
    transactions_unchanged: int = Field(default=0)
    transactions_skipped: int = Field(default=0)
    api_requests: int = Field(default=0)
    attempts: int = Field(default=0)
    worker_id: Optional[str] = Field(default=None, max_length=128)
    checkpoint: Optional[dict] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    reconciled_at: Optional[datetime] = Field(default=None)  # the reconcile that queued it (core.ingest.reconcile_once)
    account_breakdown: Optional[list] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    start_date: Optional[date] = Field(default=None)
    end_date: Optional[date] = Field(default=None)
    error_message: Optional[str] = Field(default=None)
    error_details: Optional[dict] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    queued_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = Field(default=None)
    heartbeat_at: Optional[datetime] = Field(default=None)
    completed_at: Optional[datetime] = Field(default=None)
    duration_seconds: Optional[float] = Field(default=None)


class ManualSyncRequest(SQLModel, table=True):
    """One row per accepted "Sync now": the per-user manual-sync limit counts these."""

    __tablename__ = "manual_sync_requests"

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_users.id", index=True, ondelete="CASCADE")
    requested_at: datetime = Field(default_factory=utcnow, index=True)


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_events"
    __table_args__ = (
        # Pending events are few and re-checked often (every reconcile, every worker maintenance tick).
        sa.Index(
            "idx_webhook_events_pending",
            "user_id",
            "received_at",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        ),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    webhook_id: str = Field(max_length=128, unique=True)
    event_type: str = Field(max_length=64, index=True)
    client_id: Optional[str] = Field(default=None, max_length=128)
    snaptrade_user_id: Optional[str] = Field(default=None, max_length=128)
    user_id: Optional[int] = Field(default=None, foreign_key="app_users.id", ondelete="SET NULL")
    authorization_id: Optional[str] = Field(default=None, max_length=64)
    account_id: Optional[str] = Field(default=None, max_length=64)
    event_timestamp: Optional[datetime] = Field(default=None)
    payload: Optional[dict] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    status: str = Field(default="received", max_length=16)  # one of WEBHOOK_STATUSES
    note: Optional[str] = Field(default=None)
    received_at: datetime = Field(default_factory=utcnow, index=True)
    processed_at: Optional[datetime] = Field(default=None)


class SyncIssue(SQLModel, table=True):
    """Ledger of records a sync quarantined, skipped or merged, with the raw payload and why."""

    __tablename__ = "sync_issues"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN ({_in(ISSUE_KINDS)})", name="ck_sync_issues_kind"),
        # The same bad record fetched again by a later sync is one ledger entry, not one per run.
        sa.UniqueConstraint("kind", "account_id", "payload_hash", name="uq_sync_issues_payload"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: Optional[int] = Field(default=None, foreign_key="app_users.id", index=True, ondelete="CASCADE")
    account_id: Optional[int] = Field(default=None, foreign_key="brokerage_accounts.id", ondelete="SET NULL")
    run_id: Optional[int] = Field(default=None, foreign_key="transaction_sync_log.id", ondelete="SET NULL")
    kind: str = Field(max_length=16)
    reason: str
    snaptrade_activity_id: Optional[str] = Field(default=None, max_length=128)
    matched_transaction_id: Optional[int] = Field(default=None)
    payload_hash: str = Field(max_length=64)
    raw_payload: Optional[Any] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    resolved_at: Optional[datetime] = Field(default=None)
    resolved_by: Optional[str] = Field(default=None, max_length=64)
    resolution_note: Optional[str] = Field(default=None)


# --------------------------------------------------------------------------- the trading journal
# Derived from brokerage_transactions by core.journal.upkeep, per (account, pair_key): pair_key is the
# instrument of the activities a row was built from (the option ticker for options, else the symbol; ""
# for position activities without one), the unit in which the journal is rebuilt.


class JournalDirtyPair(SQLModel, table=True):
    """(account, pair_key) pairs whose activities changed since the journal last rebuilt them.

    Database triggers (migration 0005) mark them in the same transaction as the rows, whoever writes;
    each mark raises `generation`, so a rebuild clears only the marks it has seen."""

    __tablename__ = "journal_dirty_pairs"

    account_id: int = Field(foreign_key="brokerage_accounts.id", primary_key=True, ondelete="CASCADE")
    pair_key: str = Field(max_length=64, primary_key=True)
    generation: int = Field(sa_column=Column(sa.BigInteger, nullable=False))


class JournalRoundTrip(SQLModel, table=True):
    """One round trip (flat to flat) of an account and instrument, as core.journal.trips builds it."""

    __tablename__ = "journal_round_trips"
    __table_args__ = (
        sa.CheckConstraint(f"direction IN ({_in(JOURNAL_DIRECTIONS)})", name="ck_journal_round_trips_direction"),
        sa.CheckConstraint(f"status IN ({_in(JOURNAL_STATUSES)})", name="ck_journal_round_trips_status"),
        sa.Index("idx_journal_round_trips_pair", "account_id", "pair_key"),
        sa.Index("idx_journal_round_trips_user_closed", "user_id", "closed_on"),
    )

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", ondelete="CASCADE")
    account_id: int = Field(foreign_key="brokerage_accounts.id", ondelete="CASCADE")
    pair_key: str = Field(max_length=64)
    seq: int  # engine order within its book (account, instrument, currency)
    instrument: str = Field(max_length=64)
    symbol: Optional[str] = Field(default=None, max_length=64)  # the stored symbol: an option's underlying
    currency: Optional[str] = Field(default=None, max_length=8)
    direction: str = Field(max_length=8)
    status: str = Field(max_length=8)
    opened_on: date
    closed_on: Optional[date] = Field(default=None)
    quantity: Decimal = Field(sa_column=_number(nullable=False))  # the largest absolute position held
    gross_pnl: Optional[Decimal] = Field(default=None, sa_column=_number())
    fees: Decimal = Field(sa_column=_number(nullable=False))
    net_pnl: Optional[Decimal] = Field(default=None, sa_column=_number())
    flags: list = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    counts_in_metrics: bool  # closed and unflagged
    activity_ids: list = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))  # engine order


class JournalPosition(SQLModel, table=True):
    """What the history holds now in one account and instrument: signed quantity and FIFO cost basis."""

    __tablename__ = "journal_positions"
    __table_args__ = (sa.Index("idx_journal_positions_pair", "account_id", "pair_key"),)

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", index=True, ondelete="CASCADE")
    account_id: int = Field(foreign_key="brokerage_accounts.id", ondelete="CASCADE")
    pair_key: str = Field(max_length=64)
    instrument: str = Field(max_length=64)
    symbol: Optional[str] = Field(default=None, max_length=64)
    currency: Optional[str] = Field(default=None, max_length=8)
    quantity: Decimal = Field(sa_column=_number(nullable=False))  # negative = short
    cost_basis: Optional[Decimal] = Field(default=None, sa_column=_number())  # None when a lot's cost is unknown


class JournalOpenLot(SQLModel, table=True):
    """The FIFO lots of an open position, oldest first (`seq`)."""

    __tablename__ = "journal_open_lots"
    __table_args__ = (sa.Index("idx_journal_open_lots_pair", "account_id", "pair_key"),)

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", ondelete="CASCADE")
    account_id: int = Field(foreign_key="brokerage_accounts.id", ondelete="CASCADE")
    pair_key: str = Field(max_length=64)
    instrument: str = Field(max_length=64)
    currency: Optional[str] = Field(default=None, max_length=8)
    seq: int
    activity_id: str = Field(max_length=128)  # the activity that opened the lot
    opened_on: date
    quantity: Decimal = Field(sa_column=_number(nullable=False))  # signed like the position
    cost: Optional[Decimal] = Field(default=None, sa_column=_number())


class JournalUnplaceable(SQLModel, table=True):
    """An activity the engine could not place, with the reason: listed on the Operations page, never dropped."""

    __tablename__ = "journal_unplaceable"
    __table_args__ = (sa.Index("idx_journal_unplaceable_pair", "account_id", "pair_key"),)

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", index=True, ondelete="CASCADE")
    account_id: int = Field(foreign_key="brokerage_accounts.id", ondelete="CASCADE")
    pair_key: str = Field(max_length=64)
    activity_id: str = Field(max_length=128)
    instrument: Optional[str] = Field(default=None, max_length=64)
    currency: Optional[str] = Field(default=None, max_length=8)
    transaction_type: str = Field(max_length=40)
    trade_date: date
    reason: str
    flagged_at: datetime = Field(default_factory=utcnow)


class BrokeragePosition(SQLModel, table=True):
    """Units of one instrument the broker reported for an account (`/accounts/{id}/positions/all`) at `read_at`.

    Replaced as a whole by each successful read; a failed read leaves the last good one in place."""

    __tablename__ = "brokerage_positions"
    __table_args__ = (sa.Index("idx_brokerage_positions_account", "account_id", "instrument"),)

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", index=True, ondelete="CASCADE")
    account_id: int = Field(foreign_key="brokerage_accounts.id", ondelete="CASCADE")
    instrument: str = Field(max_length=64)  # the symbol, or the canonical option ticker (as activities store them)
    symbol: Optional[str] = Field(default=None, max_length=64)  # an option's underlying
    kind: Optional[str] = Field(default=None, max_length=32)  # SnapTrade's instrument.kind: stock, option, crypto…
    currency: Optional[str] = Field(default=None, max_length=8)
    units: Decimal = Field(sa_column=_number(nullable=False))  # signed: negative = short
    read_at: datetime


class JournalReconciliation(SQLModel, table=True):
    """Per account: the last positions read (good or failed) and how many holdings the history fails to explain."""

    __tablename__ = "journal_reconciliations"
    __table_args__ = (sa.Index("idx_journal_reconciliations_differs", "differs_since"),)

    account_id: int = Field(foreign_key="brokerage_accounts.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="app_users.id", index=True, ondelete="CASCADE")
    positions_read_at: Optional[datetime] = Field(default=None)  # the last good read (its rows are current)
    positions_attempted_at: Optional[datetime] = Field(default=None)
    positions_error: Optional[str] = Field(default=None)  # why the last attempt failed; None after a good one
    differences: Optional[int] = Field(default=None)  # holdings not matched; None before any good read
    differs_since: Optional[datetime] = Field(default=None)  # when differences last went from 0 to more
    checked_at: Optional[datetime] = Field(default=None)


class StaffAction(SQLModel, table=True):
    """The audit trail: one row per staff action (who, when, what, on which connection, outcome).

    A row is written only after the actor's staff role was checked against the database; its
    idempotency key makes a repeated submission (a double click) return the first outcome."""

    __tablename__ = "staff_actions"
    __table_args__ = (
        sa.CheckConstraint(f"action IN ({_in(STAFF_ACTIONS)})", name="ck_staff_actions_action"),
        sa.CheckConstraint(f"outcome IN ({_in(ACTION_OUTCOMES)})", name="ck_staff_actions_outcome"),
        sa.Index("idx_staff_actions_connection", "connection_id", "created_at"),
        sa.Index("idx_staff_actions_user", "user_id", "created_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    actor_user_id: Optional[int] = Field(default=None, foreign_key="app_users.id", ondelete="SET NULL")
    actor_username: str = Field(max_length=64)  # kept when the staff user is deleted; "cli" for the command line
    action: str = Field(max_length=32)
    user_id: Optional[int] = Field(default=None, foreign_key="app_users.id", ondelete="SET NULL")  # the trader
    connection_id: Optional[int] = Field(default=None, foreign_key="brokerage_connections.id", ondelete="SET NULL")
    run_id: Optional[int] = Field(default=None)
    issue_id: Optional[int] = Field(default=None)
    note: Optional[str] = Field(default=None)
    outcome: str = Field(default="started", max_length=16)
    message: Optional[str] = Field(default=None)
    details: Optional[dict] = Field(default=None, sa_column=Column(JSONType, nullable=True))
    idempotency_key: Optional[str] = Field(default=None, max_length=64, unique=True)
    finished_at: Optional[datetime] = Field(default=None)


class PortalAttempt(SQLModel, table=True):
    """One pass through SnapTrade's connection portal: the link we issued, the CONNECTION_ATTEMPTED
    webhook and the browser's return to /callback, whichever of them we saw."""

    __tablename__ = "portal_attempts"
    __table_args__ = (
        sa.CheckConstraint(f"outcome IN ({_in(ATTEMPT_OUTCOMES)})", name="ck_portal_attempts_outcome"),
        sa.Index("idx_portal_attempts_user", "user_id", "created_at"),
        sa.Index("idx_portal_attempts_connection", "connection_id", "created_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_users.id", ondelete="CASCADE")
    connection_id: Optional[int] = Field(default=None, foreign_key="brokerage_connections.id", ondelete="SET NULL")
    purpose: str = Field(default="connect", max_length=16)  # connect / reconnect
    broker: Optional[str] = Field(default=None, max_length=64)
    requested_by: Optional[str] = Field(default=None, max_length=64)  # a staff username when staff issued the link
    link_created_at: Optional[datetime] = Field(default=None)
    link_expires_at: Optional[datetime] = Field(default=None)
    webhook_event_id: Optional[int] = Field(default=None)
    webhook_result: Optional[str] = Field(default=None, max_length=64)  # connectionAttemptedResult
    callback_status: Optional[str] = Field(default=None, max_length=16)  # SUCCESS / ERROR / ABANDONED
    callback_at: Optional[datetime] = Field(default=None)
    error_code: Optional[str] = Field(default=None, max_length=16)
    outcome: str = Field(default="open", max_length=16)
    message: Optional[str] = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ConnectionStateChange(SQLModel, table=True):
    """A connection's status history, written by database triggers (migration 0007) whatever code
    changes the status: webhooks, reconcile, a sync, a disconnect."""

    __tablename__ = "connection_state_changes"
    __table_args__ = (sa.Index("idx_connection_state_changes_connection", "connection_id", "changed_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="brokerage_connections.id", ondelete="CASCADE")
    from_status: Optional[str] = Field(default=None, max_length=32)  # None: the connection was recorded
    to_status: str = Field(max_length=32)
    reason: Optional[str] = Field(default=None)
    changed_at: datetime = Field(default_factory=utcnow)


class SyncRunRequest(SQLModel, table=True):
    """Metadata of the SnapTrade requests a run made (the last ones, when there were many): what, the
    path without its query, status, time taken and SnapTrade's request id. Never a body or a secret."""

    __tablename__ = "sync_run_requests"
    __table_args__ = (sa.Index("idx_sync_run_requests_run", "run_id", "seq"),)

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    run_id: int = Field(foreign_key="transaction_sync_log.id", ondelete="CASCADE")
    seq: int
    at: datetime
    operation: str = Field(max_length=64)
    method: Optional[str] = Field(default=None, max_length=8)
    path: Optional[str] = Field(default=None, max_length=255)
    status: Optional[int] = Field(default=None)
    duration_ms: Optional[float] = Field(default=None)
    attempt: int = Field(default=1)
    request_id: Optional[str] = Field(default=None, max_length=128)
    error: Optional[str] = Field(default=None, max_length=255)
