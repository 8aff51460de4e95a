"""The tables the import writes: app users, SnapTrade users, connections, accounts, transactions, per-user
counts, sync runs and manual requests, webhook events and the sync issues ledger. Names follow the original
integration guide."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from core.snaptrade.activity_types import NORMALIZED_TYPES
from core.storage.models.common import (
    CONNECTION_STATUSES,
    FINAL_SYNC_STATUSES,
    ISSUE_KINDS,
    JOURNAL_READ_WHERE,
    NAMELESS_WHERE,
    SNAPTRADE_USER_STATUSES,
    SYNC_STATUSES,
    SYNC_TRIGGERS,
    USER_ROLES,
    money_column,
    sql_in,
    utcnow,
)
from core.storage.types import BigIntPK, JSONType


class AppUser(SQLModel, table=True):
    __tablename__ = "app_users"
    __table_args__ = (sa.CheckConstraint(f"role IN ({sql_in(USER_ROLES)})", name="ck_app_users_role"),)

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
        sa.CheckConstraint(f"status IN ({sql_in(SNAPTRADE_USER_STATUSES)})", name="ck_snaptrade_users_status"),
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
        sa.CheckConstraint(f"status IN ({sql_in(CONNECTION_STATUSES)})", name="ck_brokerage_connections_status"),
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
    cash_balance: Optional[Decimal] = Field(default=None, sa_column=money_column())
    total_value: Optional[Decimal] = Field(default=None, sa_column=money_column())
    buying_power: Optional[Decimal] = Field(default=None, sa_column=money_column())
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


# The columns the journal reads of a stored activity (core.journal.rows), in its Row's order.
JOURNAL_READ_COLUMNS = ("snaptrade_activity_id", "transaction_type", "symbol", "security_type", "option_ticker",
                        "option_action", "quantity", "price", "fee", "currency", "trade_date", "trade_timestamp",
                        "raw_type", "option_mini")  # fmt: skip


def journal_indexes(name: str, keys: tuple[str, ...], where: str) -> tuple[sa.Index, sa.Index]:
    """One partial index of the journal's reads, of the rows of the types it reads only (JOURNAL_READ_WHERE:
    no dividends, fees or deposits, 40% of the benchmark's history), declared per database (`info["dialect"]` tells
    core.storage.migrate.include_object which one a database has). On SQLite it carries every column the
    journal reads, so a rebuild reads the index alone instead of looking up each row in the table (about 800
    bytes each, five to a page): reading a 200,000-activity history went from 1.09 to 0.46 s, and a 10,000-activity
    import cost what it did (docs/PERFORMANCE.md section 7; migration 0012). On PostgreSQL the keys alone: an
    import's table pages are not yet all-visible, so an index-only scan would visit the table anyway.
    """
    covering = (*keys, *(c for c in JOURNAL_READ_COLUMNS if c not in keys))
    where_clause = sa.text(f"{where} AND {JOURNAL_READ_WHERE}")
    return (
        sa.Index(f"idx_brokerage_transactions_{name}_rows", *covering, sqlite_where=where_clause,
                 info={"dialect": "sqlite"}).ddl_if(dialect="sqlite"),
        sa.Index(f"idx_brokerage_transactions_{name}", *keys, postgresql_where=where_clause,
                 info={"dialect": "postgresql"}).ddl_if(dialect="postgresql"),
    )  # fmt: skip


class BrokerageTransaction(SQLModel, table=True):
    __tablename__ = "brokerage_transactions"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "snaptrade_activity_id", name="uq_brokerage_transactions_account_activity"),
        sa.CheckConstraint(f"transaction_type IN ({sql_in(NORMALIZED_TYPES)})", name="ck_brokerage_transactions_type"),
        sa.Index("idx_brokerage_transactions_user_trade_date", "user_id", "trade_date", "id"),
        # Symbol filter newest first and the symbol sort (ties by date, id) are index range scans.
        sa.Index("idx_brokerage_transactions_user_symbol", "user_id", "symbol", "trade_date", "id"),
        # Type/date filters; with amount and id, "sort by amount" finds its page without reading rows.
        sa.Index(
            "idx_brokerage_transactions_user_type_date", "user_id", "transaction_type", "trade_date", "amount", "id"
        ),
        sa.Index("idx_brokerage_transactions_fingerprint", "account_id", "fingerprint"),
        # A pair's rows for the journal (core.journal.rows), each kind of pair through its own partial index,
        # without reading the account's other rows: option contracts, stock symbols (not the underlying's
        # option rows), and the rows naming no instrument. A continuation reads from a date on (0009).
        *journal_indexes(
            "account_option_date", ("account_id", "option_ticker", "trade_date"), "option_ticker IS NOT NULL"
        ),
        *journal_indexes("account_symbol_date", ("account_id", "symbol", "trade_date"), "option_ticker IS NULL"),
        *journal_indexes("account_nameless", ("account_id", "trade_date"), NAMELESS_WHERE),
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
    option_strike: Optional[Decimal] = Field(default=None, sa_column=money_column())
    option_expiration: Optional[date] = Field(default=None)
    option_action: Optional[str] = Field(default=None, max_length=16)  # BUY_TO_OPEN …
    # raw.option_symbol.is_mini_option of an option row, as the journal's multiplier reads it: "true",
    # "false", "null", "other" (an unusual value), NULL when absent or not an option (migration 0012).
    option_mini: Optional[str] = Field(default=None, max_length=8)
    quantity: Optional[Decimal] = Field(default=None, sa_column=money_column())
    price: Optional[Decimal] = Field(default=None, sa_column=money_column())
    amount: Optional[Decimal] = Field(default=None, sa_column=money_column())
    fee: Optional[Decimal] = Field(default=None, sa_column=money_column())
    currency: Optional[str] = Field(default=None, max_length=8)
    fx_rate: Optional[Decimal] = Field(default=None, sa_column=money_column())
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
        sa.CheckConstraint(f"trigger IN ({sql_in(SYNC_TRIGGERS)})", name="ck_transaction_sync_log_trigger"),
        sa.CheckConstraint(f"status IN ({sql_in(SYNC_STATUSES)})", name="ck_transaction_sync_log_status"),
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
            postgresql_where=sa.text(f"status IN ({sql_in(FINAL_SYNC_STATUSES)})"),
            sqlite_where=sa.text(f"status IN ({sql_in(FINAL_SYNC_STATUSES)})"),
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
        sa.CheckConstraint(f"kind IN ({sql_in(ISSUE_KINDS)})", name="ck_sync_issues_kind"),
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
