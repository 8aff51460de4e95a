"""The audit trail of staff actions and the server-side staff check every action passes first.

An entry is opened ('started') before the action runs and closed with its outcome; its idempotency key
is unique, so the second submission of one confirmation (a double click, a resent request) finds the
first entry instead of acting again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.storage.models import AppUser, StaffAction, utcnow

CLI_ACTOR = "cli"
ACTION_LABELS = {
    "retry_sync": "Retry sync",
    "full_resync": "Re-run from scratch",
    "reconcile": "Reconcile with SnapTrade",
    "resolve_issue": "Resolve issue",
    "reprocess_webhooks": "Re-process flagged webhooks",
    "reconnect_link": "Reconnect link issued",
    "disable_auto_sync": "Disable auto-sync",
    "enable_auto_sync": "Enable auto-sync",
    "support_bundle": "Support bundle",
}


class PermissionDenied(Exception):
    """The caller is not an active staff member (checked against the database, not the session)."""


@dataclass(frozen=True)
class Staff:
    user_id: int | None
    username: str


def require_staff(session: Session, user_id: int | None) -> Staff:
    """The acting staff member, read from the database now: a forged or stale session gets nothing."""
    user = session.get(AppUser, user_id, populate_existing=True) if user_id is not None else None
    if user is None or not user.is_active or user.role != "staff":
        raise PermissionDenied("Only staff can do this.")
    return Staff(user.id, user.username)


def open_entry(
    session: Session, *, staff: Staff, action: str, idempotency_key: str | None, **subject: Any
) -> tuple[StaffAction, bool]:
    """The 'started' entry of an action, or (the existing entry, False) when its key was seen before. Commits."""
    if idempotency_key:
        existing = _by_key(session, idempotency_key)
        if existing is not None:
            return existing, False
    entry = StaffAction(actor_user_id=staff.user_id, actor_username=staff.username[:64], action=action,
                        idempotency_key=idempotency_key, outcome="started", **subject)  # fmt: skip
    try:
        with session.begin_nested():
            session.add(entry)
        session.commit()
    except IntegrityError:  # the same key, committed by a concurrent submission a moment ago
        session.rollback()
        return _by_key(session, idempotency_key), False
    return entry, True


def _by_key(session: Session, key: str | None) -> StaffAction | None:
    return session.exec(select(StaffAction).where(StaffAction.idempotency_key == key)).first()


def close_entry(
    session: Session, entry: StaffAction, *, outcome: str, message: str, details: dict | None = None,
    now: datetime | None = None,
) -> StaffAction:  # fmt: skip
    entry = session.get(StaffAction, entry.id, populate_existing=True)
    entry.outcome, entry.message, entry.finished_at = outcome, message, now or utcnow()
    if details:
        entry.details = {**(entry.details or {}), **details}
    session.add(entry)
    session.commit()
    return entry


def entries(
    session: Session, *, connection_id: int | None = None, user_id: int | None = None, limit: int = 200
) -> list[StaffAction]:
    """Audit entries newest first, for one connection, one trader, or everyone."""
    query = select(StaffAction)
    if connection_id is not None:
        query = query.where(StaffAction.connection_id == connection_id)
    if user_id is not None:
        query = query.where(StaffAction.user_id == user_id)
    return list(session.exec(query.order_by(StaffAction.created_at.desc(), StaffAction.id.desc()).limit(limit)))
