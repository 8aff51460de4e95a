"""Service health for monitors: database reachability, connection and queue counts, last sync time.

Only aggregates: no user names, ids or secrets, because the endpoint is unauthenticated.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import core
from core.settings import get_settings
from core.storage.models import BrokerageConnection, TransactionSyncLog, utcnow

log = logging.getLogger("tradistry.health")

FAILING_STATUSES = ("needs_reconnect", "error")
# A job waiting this long means the worker is stopped or stuck: the service is degraded.
QUEUE_STALL_SECONDS = 15 * 60


def health(engine: Engine, *, now: datetime | None = None) -> tuple[dict[str, Any], int]:
    """The health document and its HTTP status (503 only when the database cannot be read)."""
    now = now or utcnow()
    try:
        facts = _read_facts(engine, now)
    except Exception as exc:  # noqa: BLE001 - a monitor must get JSON, never a traceback
        # Only the class name: a driver message can carry the host or the user of the database URL.
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return {"status": "down", "version": core.__version__, "time": _iso(now),
                "database": {"reachable": False, "error": type(exc).__name__}}, 503  # fmt: skip
    reasons = _degraded_reasons(facts)
    body = {
        "status": "degraded" if reasons else "ok",
        "version": core.__version__,
        "time": _iso(now),
        "database": {"reachable": True},
        **facts,
    }
    if reasons:
        body["reasons"] = reasons
    return body, 200


def _read_facts(engine: Engine, now: datetime) -> dict[str, Any]:
    C, R = BrokerageConnection, TransactionSyncLog
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(C.status, sa.func.count()).group_by(C.status)).all())
        queued, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(R.queued_at)).where(R.status == "queued")
        ).one()
        running = conn.execute(sa.select(sa.func.count()).where(R.status == "running")).scalar_one()
        last_completed = conn.execute(
            sa.select(sa.func.max(R.completed_at)).where(R.status == "completed")
        ).scalar_one()
        stale_cutoff = now - timedelta(seconds=get_settings().sync_stale_after_seconds)
        stalled = conn.execute(
            sa.select(sa.func.count()).where(R.status == "running", R.heartbeat_at < stale_cutoff)
        ).scalar_one()
    oldest = _aware(oldest)
    return {
        "connections": {
            "active": statuses.get("active", 0),
            "failing": sum(statuses.get(s, 0) for s in FAILING_STATUSES),
        },
        "queue": {
            "depth": queued,
            "running": running,
            "stalled_running": stalled,
            "oldest_queued_age_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
        },
        "last_completed_sync_at": _iso(_aware(last_completed)),
    }


def _degraded_reasons(facts: dict[str, Any]) -> list[str]:
    reasons = []
    age = facts["queue"]["oldest_queued_age_seconds"]
    if age is not None and age > QUEUE_STALL_SECONDS:
        reasons.append(f"the oldest queued sync has waited {int(age)} s")
    if facts["queue"]["stalled_running"]:
        reasons.append("a running sync has stopped sending heartbeats")
    return reasons


def _aware(value: Any) -> datetime | None:
    # Aggregates (MIN/MAX) bypass the column type on SQLite, so the value may be naive or a string.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
