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
# received → processed / ignored / flagged; pending: the event's connection is not recorded yet
# (SnapTrade sends webhooks before the portal's callback), it is matched again when it is.
WEBHOOK_STATUSES = ("received", "processed", "ignored", "pending", "flagged")
STAFF_ACTIONS = ("retry_sync", "full_resync", "reconcile", "resolve_issue", "reprocess_webhooks", "reconnect_link",
                 "disable_auto_sync", "support_bundle")  # fmt: skip
ACTION_OUTCOMES = ("started", "done", "no_change", "failed")
ATTEMPT_OUTCOMES = ("open", "connected", "failed", "abandoned", "unknown")


def money_column() -> Any:
    return sa.Column(ExactDecimal(), nullable=True)


def number_column(nullable: bool = True) -> Any:
    return sa.Column(ExactNumber(), nullable=nullable)
