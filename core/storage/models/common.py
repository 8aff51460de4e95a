"""What the tables share: the allowed values of their status columns and the exact column types for money
and quantities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from core.storage.types import ExactDecimal, ExactNumber


def utcnow() -> datetime:
    return datetime.now(UTC)


def sql_in(values) -> str:
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
# The rows naming no instrument: the journal's "" pair (migration 0009's partial index).
NAMELESS_WHERE = "option_ticker IS NULL AND (symbol IS NULL OR security_type = 'option')"
# The stored types the journal reads (core.journal.fills: POSITION_TYPES | UNMODELLED_TYPES; a test holds them
# equal). Its partial indexes hold only these rows (migration 0012): not the dividends, fees and deposits.
JOURNAL_READ_TYPES = ("ADJUSTMENT", "BUY", "EXTERNAL_ASSET_TRANSFER_IN", "EXTERNAL_ASSET_TRANSFER_OUT",
                      "INTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_OUT", "OPTIONASSIGNMENT", "OPTIONEXERCISE",
                      "OPTIONEXPIRATION", "OTHER", "REI", "REVERSE_SPLIT", "SELL", "SPINOFF", "SPLIT", "STOCK_DIVIDEND",
                      "STOCK_MERGER", "TRANSFER")  # fmt: skip
# As the journal's partial indexes spell it, and so as each of their reads must (the same text: SQLite uses a
# partial index only for a query whose WHERE holds each of the index's terms).
JOURNAL_READ_WHERE = f"transaction_type IN ({sql_in(JOURNAL_READ_TYPES)})"
# received → processed / ignored / flagged; pending: the event's connection is not recorded yet
# (SnapTrade sends webhooks before the portal's callback), it is matched again when it is.
WEBHOOK_STATUSES = ("received", "processed", "ignored", "pending", "flagged")
STAFF_ACTIONS = ("retry_sync", "full_resync", "reconcile", "resolve_issue", "reprocess_webhooks", "reconnect_link",
                 "disable_auto_sync", "support_bundle", "enable_auto_sync")  # fmt: skip
ACTION_OUTCOMES = ("started", "done", "no_change", "failed")
ATTEMPT_OUTCOMES = ("open", "connected", "failed", "abandoned", "unknown")


def money_column() -> Any:
    return sa.Column(ExactDecimal(), nullable=True)


def number_column(nullable: bool = True) -> Any:
    return sa.Column(ExactNumber(), nullable=nullable)
