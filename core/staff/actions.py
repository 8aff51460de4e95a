"""What staff can do where a problem is shown: retry a sync (resuming an interrupted or failed run from its
checkpoint), re-run from scratch, reconcile with SnapTrade now, resolve an issue with a note, re-process
flagged webhooks, issue a fresh reconnect link for the trader, disable auto-sync, prepare a support bundle.

Every action goes through `perform`: the actor's staff role is checked against the database first (a
trader's forged call gets PermissionDenied and leaves no audit entry), then an audit entry is opened under
the confirmation's idempotency key (a double click acts once), the action runs, and the entry is closed
with its outcome. A reconnect link is returned to the caller only, never stored or logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts import audit
from core.accounts.audit import PermissionDenied, Staff
from core.jobs.queue import enqueue_sync
from core.logs import log_context, log_event
from core.reads.operations import PROBLEM_RUN_STATUSES
from core.reads.timeline import webhook_events
from core.reads.views import STATUS_LABELS
from core.snaptrade.client import SnapTradeError
from core.storage.models import (
    ACTIVE_SYNC_STATUSES,
    BrokerageAccount,
    BrokerageConnection,
    SnapTradeUser,
    StaffAction,
    SyncIssue,
    TransactionSyncLog,
    WebhookEvent,
    utcnow,
)
from core.web.webhooks import WebhookResult, apply_event

log = logging.getLogger("tradistry.staff")

__all__ = ["ACTIONS", "ActionRefused", "ActionResult", "PermissionDenied", "perform"]


@dataclass
class ActionResult:
    action_id: int
    action: str
    outcome: str  # done / no_change / failed (started: another submission of it is still running)
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    repeated: bool = False  # this key was submitted before: nothing was done again
    link: str | None = None  # reconnect_link only, to the staff member who asked; never stored
    link_expires_at: datetime | None = None
    data: bytes | None = None  # support_bundle only

    @property
    def ok(self) -> bool:
        return self.outcome in ("done", "no_change")


@dataclass
class _Done:
    outcome: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    link: str | None = None
    link_expires_at: datetime | None = None
    data: bytes | None = None


class ActionRefused(ValueError):
    """The action makes no sense here (a disconnected connection, an empty note); the message says why."""


# --------------------------------------------------------------------------- the actions


def _active_run(session: Session, connection_id: int) -> TransactionSyncLog | None:
    return session.exec(select(TransactionSyncLog).where(TransactionSyncLog.connection_id == connection_id,
                                                         TransactionSyncLog.status.in_(ACTIVE_SYNC_STATUSES))).first()  # fmt: skip


def _syncable(conn: BrokerageConnection) -> None:
    if conn.status == "disconnected":
        raise ActionRefused(
            "This connection is disconnected: there is nothing to sync until the trader connects again."
        )


def _run_to_retry(session: Session, conn: BrokerageConnection, run_id: int | None) -> TransactionSyncLog | None:
    if run_id is not None:
        run = session.get(TransactionSyncLog, run_id)
        if run is None or run.connection_id != conn.id:
            raise ActionRefused(f"Run #{run_id} is not a run of this connection.")
        return run
    return session.exec(select(TransactionSyncLog).where(TransactionSyncLog.connection_id == conn.id,
                                                         TransactionSyncLog.status.in_(PROBLEM_RUN_STATUSES))
                        .order_by(TransactionSyncLog.id.desc())).first()  # fmt: skip


def _retry_sync(session: Session, staff: Staff, entry: StaffAction, conn: BrokerageConnection, *,
                run_id: int | None = None, **_: Any) -> _Done:  # fmt: skip
    """One retry for both old buttons: a new run, resuming the failed or interrupted run's checkpoint."""
    _syncable(conn)
    failed = _run_to_retry(session, conn, run_id)
    resume = failed is not None and failed.status in PROBLEM_RUN_STATUSES and bool(failed.checkpoint)
    details = {"requested_by": staff.username, "staff_action_id": entry.id}
    if failed is not None:
        details["retry_of"] = failed.id
    run, created = enqueue_sync(session, user_id=conn.user_id, connection_id=conn.id, trigger="manual",
                                full=bool(failed and failed.full_sync), checkpoint=failed.checkpoint if resume else None,
                                error_details=details)  # fmt: skip
    if not created:
        return _Done("no_change", f"A sync of this connection is already {run.status} (run #{run.id}); the retry joins it.",
                     {"run_id": run.id})  # fmt: skip
    what = f"Retry of run #{failed.id}" if failed else "Sync"
    how = " resuming from its checkpoint" if resume else ""
    return _Done("done", f"{what} queued as run #{run.id}{how}.", {"run_id": run.id, "retry_of": failed and failed.id})


def _full_resync(session: Session, staff: Staff, entry: StaffAction, conn: BrokerageConnection, **_: Any) -> _Done:
    _syncable(conn)
    active = _active_run(session, conn.id)
    if active is not None and active.status == "running":
        return _Done("no_change", f"Run #{active.id} is running; re-run from scratch once it has finished.",
                     {"run_id": active.id})  # fmt: skip
    details = {"requested_by": staff.username, "staff_action_id": entry.id}
    run, created = enqueue_sync(session, user_id=conn.user_id, connection_id=conn.id, trigger="manual", full=True,
                                error_details=details)  # fmt: skip
    if created:
        return _Done(
            "done", f"Full re-import queued as run #{run.id}: the whole history is read again.", {"run_id": run.id}
        )
    return _Done("done", f"The queued run #{run.id} now reads the whole history.", {"run_id": run.id})


def _reconcile(session: Session, staff: Staff, entry: StaffAction, conn: BrokerageConnection, **_: Any) -> _Done:
    from core.accounts.connections import reconcile_connections

    before = conn.status
    result = reconcile_connections(session, user_id=conn.user_id)
    session.refresh(conn)
    said, now = STATUS_LABELS.get(before, before), STATUS_LABELS.get(conn.status, conn.status)
    parts = [f"Status {said} → {now}" if conn.status != before else f"Status {now}, unchanged"]
    if result.new_connection_ids:
        parts.append(f"{len(result.new_connection_ids)} new connection(s) recorded")
    if result.matched_webhook_ids:
        parts.append(f"{len(result.matched_webhook_ids)} early webhook(s) matched")
    details = {"status_before": before, "status_after": conn.status, "new_connection_ids": result.new_connection_ids,
               "fixed_connection_ids": result.fixed_connection_ids, "matched_webhook_ids": result.matched_webhook_ids,
               "requests": result.requests}  # fmt: skip
    changed = conn.status != before or result.new_connection_ids or result.matched_webhook_ids
    return _Done("done" if changed else "no_change", "; ".join(parts) + ".", details)


def _resolve_issue(session: Session, staff: Staff, entry: StaffAction, conn: BrokerageConnection | None, *,
                   issue_id: int | None = None, note: str | None = None, **_: Any) -> _Done:  # fmt: skip
    if not (note or "").strip():
        raise ActionRefused("Write a note saying why the issue is resolved.")
    issue = session.get(SyncIssue, issue_id) if issue_id is not None else None
    if issue is None:
        raise ActionRefused(f"Issue #{issue_id} does not exist.")
    if issue.resolved_at is not None:
        return _Done("no_change", f"Issue #{issue.id} was already resolved by {issue.resolved_by}.")
    issue.resolved_at, issue.resolved_by, issue.resolution_note = utcnow(), staff.username[:64], note.strip()
    session.add(issue)
    session.commit()
    return _Done("done", f"Issue #{issue.id} marked resolved by {staff.username}.")


def _reprocess_event(session: Session, event_id: int, now: datetime) -> WebhookResult | None:
    """Apply one flagged (or still pending) event again, as on arrival; one that still cannot be matched
    stays flagged, with a fresh note. None when it is neither any more."""
    event = session.get(WebhookEvent, event_id, populate_existing=True)
    if event is None or event.status not in ("pending", "flagged"):
        return None
    if event.user_id is None and event.snaptrade_user_id:  # the SnapTrade user may have been registered since
        event.user_id = session.exec(
            select(SnapTradeUser.user_id).where(SnapTradeUser.snaptrade_user_id == event.snaptrade_user_id)
        ).first()
        session.add(event)
        session.commit()
    payload = {"webhookId": event.webhook_id, "eventType": event.event_type, **(event.payload or {})}
    result = apply_event(session, event.id, payload, event.user_id, now=now)
    if result.event_status in ("pending", "flagged"):
        result.event_status, note = "flagged", f"re-processed at {now:%Y-%m-%d %H:%M} UTC: {result.note}"
    else:
        note = "re-processed by staff" + (f"; {result.note}" if result.note else "")
    session.execute(sa.update(WebhookEvent).where(WebhookEvent.id == event.id)
                    .values(status=result.event_status, note=note[:1000], processed_at=now))  # fmt: skip
    session.commit()
    return result


def _reprocess_webhooks(session: Session, staff: Staff, entry: StaffAction, conn: BrokerageConnection | None, *,
                        event_ids: list[int] | None = None, user_id: int | None = None, **_: Any) -> _Done:  # fmt: skip
    if event_ids is None:
        scope = {"connection_id": conn.id} if conn is not None else {"user_id": user_id}
        event_ids = [e.id for e in webhook_events(session, statuses=("flagged",), **scope)]
    now = utcnow()
    results = [r for r in (_reprocess_event(session, i, now) for i in event_ids) if r is not None]
    if not results:
        return _Done("no_change", "No flagged webhook events to re-process.")
    took = [r for r in results if r.event_status != "flagged"]
    runs = sorted({r.run_id for r in took if r.run_id is not None})
    message = f"Re-processed {len(results)} flagged event(s): {len(took)} took effect, {len(results) - len(took)} still flagged"
    if runs:
        message += f"; sync run(s) {', '.join(f'#{i}' for i in runs)} queued or joined"
    return _Done("done" if took else "no_change", message + ".",
                 {"event_ids": event_ids, "applied": [r.event_id for r in took], "run_ids": runs})  # fmt: skip


def _reconnect_link(session: Session, staff: Staff, entry: StaffAction, conn: BrokerageConnection, *,
                    redirect_url: str | None = None, **_: Any) -> _Done:  # fmt: skip
    from core.accounts.attempts import PORTAL_LINK_SECONDS
    from core.accounts.connections import create_portal_link

    _syncable(conn)
    url = create_portal_link(session, user_id=conn.user_id, reconnect_connection_id=conn.id, redirect_url=redirect_url,
                             requested_by=staff.username)  # fmt: skip
    expires = utcnow() + timedelta(seconds=PORTAL_LINK_SECONDS)
    return _Done("done", f"Reconnect link issued for the trader; it expires at {expires:%H:%M} UTC and works once.",
                 {"expires_at": expires.isoformat()}, link=url, link_expires_at=expires)  # fmt: skip


def _set_auto_sync(session: Session, staff: Staff, entry: StaffAction, conn: BrokerageConnection, *, enabled: bool,
                   **_: Any) -> _Done:  # fmt: skip
    """Staff's "Disable auto-sync" and "Enable auto-sync": the trader's own card setting, at its frequency."""
    from core.accounts.connections import set_auto_sync

    if conn.auto_sync_enabled == enabled:
        return _Done("no_change", f"Auto-sync was already {'on' if enabled else 'off'} for this connection.")
    if enabled:
        _syncable(conn)
    conn = set_auto_sync(session, user_id=conn.user_id, connection_id=conn.id, enabled=enabled,
                         frequency_minutes=conn.sync_frequency_minutes)  # fmt: skip
    if not enabled:
        return _Done("done", "Auto-sync is off: only manual and webhook syncs run for this connection now.")
    return _Done("done", f"Auto-sync is on again: the next scheduled sync is at {conn.next_sync_at:%Y-%m-%d %H:%M} UTC.",
                 {"next_sync_at": conn.next_sync_at.isoformat()})  # fmt: skip


def _support_bundle(session: Session, staff: Staff, entry: StaffAction, conn: BrokerageConnection, **_: Any) -> _Done:
    from core.reads.support_bundle import build_support_bundle

    data = build_support_bundle(session, conn.id, generated_by=staff.username)
    return _Done("done", f"Support bundle prepared ({len(data) / 1024:.0f} kB).", {"bytes": len(data)}, data=data)


ACTIONS: dict[str, Callable[..., _Done]] = {
    "retry_sync": _retry_sync,
    "full_resync": _full_resync,
    "reconcile": _reconcile,
    "resolve_issue": _resolve_issue,
    "reprocess_webhooks": _reprocess_webhooks,
    "reconnect_link": _reconnect_link,
    "disable_auto_sync": partial(_set_auto_sync, enabled=False),
    "enable_auto_sync": partial(_set_auto_sync, enabled=True),
    "support_bundle": _support_bundle,
}
# Actions that need no connection: an issue or a trader's flagged events may have none.
WITHOUT_CONNECTION = ("resolve_issue", "reprocess_webhooks")


# --------------------------------------------------------------------------- the door


def _subject(
    session: Session, action: str, connection_id: int | None, kwargs: dict
) -> tuple[BrokerageConnection | None, int | None]:
    """The connection acted on and its trader; for an issue, derived from the issue's account."""
    conn = session.get(BrokerageConnection, connection_id) if connection_id is not None else None
    if connection_id is not None and conn is None:
        raise ActionRefused(f"Connection #{connection_id} does not exist.")
    if conn is None and action == "resolve_issue" and kwargs.get("issue_id") is not None:
        issue = session.get(SyncIssue, kwargs["issue_id"])
        account = session.get(BrokerageAccount, issue.account_id) if issue and issue.account_id else None
        conn = session.get(BrokerageConnection, account.connection_id) if account else None
        return conn, conn.user_id if conn else (issue.user_id if issue else None)
    if conn is None and action not in WITHOUT_CONNECTION:
        raise ActionRefused("Choose a connection first.")
    return conn, conn.user_id if conn else kwargs.get("user_id")


def perform(
    session: Session, *, actor_user_id: int | None, action: str, connection_id: int | None = None,
    idempotency_key: str | None = None, note: str | None = None, staff: Staff | None = None, **kwargs: Any,
) -> ActionResult:  # fmt: skip
    """Check the actor is staff, audit, act once per key. Raises PermissionDenied for a non-staff actor and
    ActionRefused for a connection that does not exist (nothing written either way); every other failure is
    a 'failed' outcome, audited, with a message a page can show.

    `staff` is for the command line only (an operator with shell access, audited as "cli")."""
    if action not in ACTIONS:
        raise ValueError(f"unknown staff action {action!r}")
    staff = staff or audit.require_staff(session, actor_user_id)
    conn, user_id = _subject(session, action, connection_id, kwargs)
    subject = {"connection_id": conn.id if conn else None, "user_id": user_id, "run_id": kwargs.get("run_id"),
               "issue_id": kwargs.get("issue_id"), "note": (note or "").strip() or None}  # fmt: skip
    entry, fresh = audit.open_entry(session, staff=staff, action=action, idempotency_key=idempotency_key, **subject)
    if not fresh:
        return ActionResult(entry.id, action, entry.outcome, entry.message or "This action is still being carried out.",
                            entry.details or {}, repeated=True)  # fmt: skip
    with log_context(user_id=user_id, connection_id=subject["connection_id"]):
        try:
            done = ACTIONS[action](session, staff, entry, conn, note=note, **kwargs)
        except (ActionRefused, SnapTradeError) as exc:
            session.rollback()
            done = _Done("failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - the audit entry must be closed whatever happened
            session.rollback()
            log.exception("staff action %s failed", action)
            done = _Done("failed", f"The action failed unexpectedly ({type(exc).__name__}); see the server log.")
        entry = audit.close_entry(session, entry, outcome=done.outcome, message=done.message, details=done.details)
        log_event(log, "staff.action", f"staff {staff.username}: {action} → {done.outcome}",
                  level=logging.WARNING if done.outcome == "failed" else logging.INFO, action=action, actor=staff.username,
                  outcome=done.outcome, action_id=entry.id, run_id=done.details.get("run_id"),
                  issue_id=subject["issue_id"])  # fmt: skip
    return ActionResult(entry.id, action, done.outcome, done.message, done.details, link=done.link,
                        link_expires_at=done.link_expires_at, data=done.data)  # fmt: skip
