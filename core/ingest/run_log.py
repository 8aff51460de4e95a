"""What a run leaves behind for people who were not watching: a start and a finish log event (trigger,
outcome, counts, duration, requests) and the metadata of its last SnapTrade requests (sync_run_requests).

`observed_run(run_id)` wraps one execution of a run (the worker's and the CLI's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.logs import log_context, log_event
from core.snaptrade import trace
from core.storage.models import SyncRunRequest, TransactionSyncLog

log = logging.getLogger("tradistry.runs")


@contextmanager
def observed_run(run_id: int, engine: Engine) -> Iterator[None]:
    """Log the run's start and finish with its ids, and keep the requests made meanwhile."""
    with Session(engine) as session:
        run = session.get(TransactionSyncLog, run_id)
        ids = {
            "run_id": run_id,
            "user_id": run.user_id if run else None,
            "connection_id": run.connection_id if run else None,
        }
        trigger, full = (run.trigger, run.full_sync) if run else (None, None)
    with log_context(**ids), trace.collecting() as collector:
        log_event(log, "run.start", f"sync run {run_id} started", trigger=trigger, full_sync=full)
        started = time.monotonic()
        try:
            yield
        finally:
            try:
                save_requests(engine, run_id, collector)
            except Exception:  # noqa: BLE001 - the run's own outcome matters more than its request log
                log.warning("run %s: its request log could not be saved", run_id, exc_info=True)
            _log_finish(engine, run_id, time.monotonic() - started)


def save_requests(engine: Engine, run_id: int, collector: trace.RequestCollector) -> int:
    """Append the collected request metadata to the run's (a resumed execution continues its numbering)."""
    records = collector.records()
    if not records:
        return 0
    with Session(engine) as session:
        last = session.execute(
            sa.select(sa.func.max(SyncRunRequest.seq)).where(SyncRunRequest.run_id == run_id)
        ).scalar()
        first = (last or 0) + 1 + max(0, collector.total - len(records))  # dropped ones keep their numbers
        session.add_all(SyncRunRequest(run_id=run_id, seq=first + i, **r.as_dict()) for i, r in enumerate(records))
        session.commit()
    return len(records)


def _log_finish(engine: Engine, run_id: int, seconds: float) -> None:
    with Session(engine) as session:
        run = session.get(TransactionSyncLog, run_id)
    if run is None:
        return
    level = logging.INFO if run.status in ("completed", "queued") else logging.WARNING
    error = run.error_details.get("error") if isinstance(run.error_details, dict) else None
    log_event(log, "run.finish", f"sync run {run_id} {run.status}", level=level, status=run.status,
              duration_seconds=round(seconds, 3), fetched=run.transactions_fetched, new=run.transactions_new,
              updated=run.transactions_updated, unchanged=run.transactions_unchanged, skipped=run.transactions_skipped,
              api_requests=run.api_requests, error_code=error.get("code") if isinstance(error, dict) else None,
              error_message=run.error_message)  # fmt: skip
