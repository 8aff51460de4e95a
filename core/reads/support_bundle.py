"""A support bundle: one zip of JSON files describing a connection, to hand a problem to SnapTrade support
or another engineer without database access: its timeline, runs with their last SnapTrade requests (path
template, status, time, request id), issues, webhook verdicts, portal attempts, state changes, staff actions
and the accounts' sync status.

Left out on purpose: transaction rows, raw activity and webhook bodies, balances, names and e-mail
addresses, account numbers (masked), and every secret (the text is passed through redact() once more).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

import core
from core.reads import timeline as tl
from core.redaction import redact
from core.storage.models import BrokerageAccount, SnapTradeUser, TransactionSyncLog, utcnow

# The only webhook payload fields copied: ids and outcomes, never a body a later event type might fill.
WEBHOOK_FIELDS = ("webhookId", "eventType", "eventTimestamp", "brokerageId", "brokerageAuthorizationId", "connectionId",
                  "accountId", "connectionAttemptedResult")  # fmt: skip
ERROR_FIELDS = ("type", "status", "code", "request_id", "message")
REQUESTS_PER_RUN = 50
README = """Support bundle for connection {connection_id} ({generated_at}, by {generated_by}).

connection.json      the connection: status, reason, SnapTrade user id and authorization id, sync schedule
accounts.json        its accounts: our last successful sync and SnapTrade's sync_status (numbers masked)
timeline.json        everything that happened to it, newest first
runs.json            sync runs: trigger, outcome, counts, duration, requests, error code and message
requests.json        per run, the last SnapTrade requests: path template, status, time, SnapTrade request id
issues.json          records a sync could not import (reason and ids; no raw activity)
webhooks.json        webhook events and their verdicts (ids and results; no body)
attempts.json        passes through the connection portal
state_changes.json   status history
staff_actions.json   the audit trail

Quote the request_id values in requests.json (SnapTrade's X-Request-ID) to SnapTrade support.
"""


def _json(value: Any) -> str:
    return redact(json.dumps(value, indent=2, sort_keys=True, default=_default, ensure_ascii=False))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _error(details: Any) -> dict | None:
    error = details.get("error") if isinstance(details, dict) else None
    return {k: error.get(k) for k in ERROR_FIELDS if k in error} if isinstance(error, dict) else None


def bundle_files(
    session: Session, connection_id: int, *, generated_by: str, now: datetime | None = None
) -> dict[str, str]:
    """The bundle's files as {name: text}; ValueError when the connection does not exist."""
    summary = tl.connection_summary(session, connection_id)
    if summary is None:
        raise ValueError(f"connection {connection_id} does not exist")
    now = now or utcnow()
    snaptrade_user = session.exec(
        select(SnapTradeUser.snaptrade_user_id).where(SnapTradeUser.user_id == summary.user_id)
    ).first()
    connection = {k: v for k, v in asdict(summary).items() if k != "username"}
    connection["snaptrade_user_id"] = snaptrade_user
    accounts = session.exec(select(BrokerageAccount).where(BrokerageAccount.connection_id == connection_id)).all()
    snaptrade_ids = {a.id: a.snaptrade_account_id for a in accounts}
    runs = tl.runs(session, connection_id=connection_id, limit=200)
    R = TransactionSyncLog
    errors = dict(session.execute(sa.select(R.id, R.error_details).where(R.connection_id == connection_id)).all())
    requests = {str(r.id): kept for r in runs if (kept := tl.run_requests(session, r.id, REQUESTS_PER_RUN))}
    webhooks = _webhooks(session, connection_id)
    issues = _issues(session, connection_id, snaptrade_ids)
    actions = [s.model_dump(exclude={"idempotency_key", "actor_user_id"})
               for s in tl.staff_actions(session, connection_id=connection_id, limit=500)]  # fmt: skip
    account_rows = [{**asdict(a), "snaptrade_account_id": snaptrade_ids.get(a.id)}
                    for a in tl.account_statuses(session, connection_id)]  # fmt: skip
    attempts = [{k: v for k, v in asdict(a).items() if k != "username"}
                for a in tl.attempts(session, connection_id=connection_id)]  # fmt: skip
    manifest = {"connection_id": connection_id, "generated_at": now, "generated_by": generated_by,
                "app_version": core.__version__, "runs": len(runs), "webhooks": len(webhooks), "issues": len(issues)}  # fmt: skip
    return {
        "README.txt": README.format(
            connection_id=connection_id, generated_at=now.isoformat(), generated_by=generated_by
        ),
        "manifest.json": _json(manifest),
        "connection.json": _json(connection),
        "accounts.json": _json(account_rows),
        "timeline.json": _json([e.as_dict() for e in tl.connection_timeline(session, connection_id, limit=1000)]),
        "runs.json": _json([{**asdict(r), "error": _error(errors.get(r.id))} for r in runs]),
        "requests.json": _json(requests),
        "issues.json": _json(issues),
        "webhooks.json": _json(webhooks),
        "attempts.json": _json(attempts),
        "state_changes.json": _json([c.model_dump() for c in tl.state_changes(session, [connection_id], limit=500)]),
        "staff_actions.json": _json(actions),
    }


def _webhooks(session: Session, connection_id: int) -> list[dict]:
    """The connection's webhook events with only the payload fields support needs (WEBHOOK_FIELDS)."""
    return [{"id": e.id, "webhook_id": e.webhook_id, "event_type": e.event_type, "status": e.status, "note": e.note,
             "event_timestamp": e.event_timestamp, "received_at": e.received_at, "processed_at": e.processed_at,
             "payload": {k: (e.payload or {}).get(k) for k in WEBHOOK_FIELDS if k in (e.payload or {})}}
            for e in tl.webhook_events(session, connection_id=connection_id, limit=500)]  # fmt: skip


def _issues(session: Session, connection_id: int, snaptrade_ids: dict[int, str]) -> list[dict]:
    """The connection's ledger entries, without their raw payloads (those hold the trader's activities)."""
    return [{"id": i.id, "kind": i.kind, "reason": i.reason, "snaptrade_activity_id": i.snaptrade_activity_id,
             "snaptrade_account_id": snaptrade_ids.get(i.account_id), "run_id": i.run_id, "created_at": i.created_at,
             "resolved_at": i.resolved_at, "resolved_by": i.resolved_by, "resolution_note": i.resolution_note}
            for i in tl.issues(session, connection_id=connection_id, limit=500)]  # fmt: skip


def build_support_bundle(
    session: Session, connection_id: int, *, generated_by: str, now: datetime | None = None
) -> bytes:
    """The zip, in memory (a few hundred kB at most: counts and metadata, no rows)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        prefix = f"support-bundle-connection-{connection_id}/"
        for name, text in bundle_files(session, connection_id, generated_by=generated_by, now=now).items():
            archive.writestr(prefix + name, text)
    return buffer.getvalue()


def bundle_file_name(connection_id: int, now: datetime | None = None) -> str:
    return f"support-bundle-connection-{connection_id}-{(now or utcnow()):%Y%m%d-%H%M%S}.zip"
