"""The trading journal's tables, derived from brokerage_transactions by core.journal.upkeep per (account,
pair_key): pair_key is the instrument of the activities a row was built from (the option ticker for options,
else the symbol; "" for position activities without one), the unit in which the journal is rebuilt. Beside
them, the broker's own positions and each account's reconciliation against them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from core.storage.models.common import JOURNAL_DIRECTIONS, JOURNAL_STATUSES, number_column, sql_in, utcnow
from core.storage.types import BigIntPK, JSONType


class JournalDirtyPair(SQLModel, table=True):
    """(account, pair_key) pairs whose activities changed since the journal last rebuilt them.

    Database triggers (migration 0005) mark them in the same transaction as the rows, whoever writes;
    each mark raises `generation`, so a rebuild clears only the marks it has seen."""

    __tablename__ = "journal_dirty_pairs"

    account_id: int = Field(foreign_key="brokerage_accounts.id", primary_key=True, ondelete="CASCADE")
    pair_key: str = Field(max_length=64, primary_key=True)
    generation: int = Field(sa_column=Column(sa.BigInteger, nullable=False))
    # Set by an update or delete (migration 0009): the pair cannot continue from its stored state.
    rebuild: bool = Field(default=True, sa_column=Column(sa.Boolean, nullable=False, server_default=sa.true()))
    since: Optional[date] = Field(default=None)  # earliest trade date among inserted rows the engine reads


class JournalRoundTrip(SQLModel, table=True):
    """One round trip (flat to flat) of an account and instrument, as core.journal.trips builds it."""

    __tablename__ = "journal_round_trips"
    __table_args__ = (
        sa.CheckConstraint(f"direction IN ({sql_in(JOURNAL_DIRECTIONS)})", name="ck_journal_round_trips_direction"),
        sa.CheckConstraint(f"status IN ({sql_in(JOURNAL_STATUSES)})", name="ck_journal_round_trips_status"),
        sa.Index("idx_journal_round_trips_pair", "account_id", "pair_key"),
        sa.Index("idx_journal_round_trips_user_on", "user_id", "currency", "on_date"),
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
    quantity: Decimal = Field(sa_column=number_column(nullable=False))  # the largest absolute position held
    gross_pnl: Optional[Decimal] = Field(default=None, sa_column=number_column())
    fees: Decimal = Field(sa_column=number_column(nullable=False))
    net_pnl: Optional[Decimal] = Field(default=None, sa_column=number_column())
    flags: list = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    counts_in_metrics: bool  # closed and unflagged
    activity_ids: list = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))  # engine order
    on_date: date  # the close date, else the open date: the table's date sort and period (migration 0009)
    outcome: str = Field(max_length=8)  # win / loss / scratch / open / flagged


class JournalPairState(SQLModel, table=True):
    """Where the engine stopped in one (account, pair): what core.journal.state needs to continue it."""

    __tablename__ = "journal_pair_states"

    account_id: int = Field(foreign_key="brokerage_accounts.id", primary_key=True, ondelete="CASCADE")
    pair_key: str = Field(max_length=64, primary_key=True)
    state: dict = Field(sa_column=Column(JSONType, nullable=False))


class JournalDaily(SQLModel, table=True):
    """Per account, currency and day: the round trips on that day and the metric sums of the closed,
    unflagged ones closed that day (core.journal.daily), which the summary tiles add up."""

    __tablename__ = "journal_daily"
    __table_args__ = (
        sa.Index("idx_journal_daily_user_day", "user_id", "day"),
        sa.Index("idx_journal_daily_account_day", "account_id", "day"),
    )

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", ondelete="CASCADE")
    account_id: int = Field(foreign_key="brokerage_accounts.id", ondelete="CASCADE")
    currency: Optional[str] = Field(default=None, max_length=8)
    day: date
    trips: int  # every round trip whose close (else open) date is this day
    closed: int  # closed and unflagged, closed this day
    wins: int
    losses: int
    holding_days: int
    net: Decimal = Field(sa_column=number_column(nullable=False))
    gross_profit: Decimal = Field(sa_column=number_column(nullable=False))
    gross_loss: Decimal = Field(sa_column=number_column(nullable=False))
    largest_win: Optional[Decimal] = Field(default=None, sa_column=number_column())
    largest_loss: Optional[Decimal] = Field(default=None, sa_column=number_column())


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
    quantity: Decimal = Field(sa_column=number_column(nullable=False))  # negative = short
    cost_basis: Optional[Decimal] = Field(default=None, sa_column=number_column())  # None when a lot's cost is unknown


class JournalOpenLot(SQLModel, table=True):
    """The FIFO lots of an open position, oldest first (`seq`)."""

    __tablename__ = "journal_open_lots"
    # seq last: a continuation reads a book's oldest lots in seq order and stops (migration 0011).
    __table_args__ = (sa.Index("idx_journal_open_lots_pair_seq", "account_id", "pair_key", "seq"),)

    id: Optional[int] = Field(default=None, sa_column=Column(BigIntPK, primary_key=True, autoincrement=True))
    user_id: int = Field(foreign_key="app_users.id", ondelete="CASCADE")
    account_id: int = Field(foreign_key="brokerage_accounts.id", ondelete="CASCADE")
    pair_key: str = Field(max_length=64)
    instrument: str = Field(max_length=64)
    currency: Optional[str] = Field(default=None, max_length=8)
    seq: int
    activity_id: str = Field(max_length=128)  # the activity that opened the lot
    opened_on: date
    quantity: Decimal = Field(sa_column=number_column(nullable=False))  # signed like the position
    cost: Optional[Decimal] = Field(default=None, sa_column=number_column())


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
    units: Decimal = Field(sa_column=number_column(nullable=False))  # signed: negative = short
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
