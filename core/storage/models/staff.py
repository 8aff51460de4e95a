"""The staff console's tables: the audit trail of staff actions, portal attempts, connection state history
and each run's SnapTrade request log."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from core.storage.models.common import ACTION_OUTCOMES, ATTEMPT_OUTCOMES, STAFF_ACTIONS, sql_in, utcnow
from core.storage.types import BigIntPK, JSONType


class StaffAction(SQLModel, table=True):
    """The audit trail: one row per staff action (who, when, what, on which connection, outcome).

    A row is written only after the actor's staff role was checked against the database; its
    idempotency key makes a repeated submission (a double click) return the first outcome."""

    __tablename__ = "staff_actions"
    __table_args__ = (
        sa.CheckConstraint(f"action IN ({sql_in(STAFF_ACTIONS)})", name="ck_staff_actions_action"),
        sa.CheckConstraint(f"outcome IN ({sql_in(ACTION_OUTCOMES)})", name="ck_staff_actions_outcome"),
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
        sa.CheckConstraint(f"outcome IN ({sql_in(ATTEMPT_OUTCOMES)})", name="ck_portal_attempts_outcome"),
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
