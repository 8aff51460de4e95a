"""The worker: claims queued runs, executes them, keeps their heartbeat, recovers runs whose worker
died, and schedules connections that are due. Runs in-process (the app) or as `python -m core worker`.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.accounts.pending_webhooks import flag_expired
from core.ingest.run_log import observed_run
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.settings import get_settings
from core.storage.db import get_engine
from core.storage.models import BrokerageConnection, TransactionSyncLog, utcnow

log = logging.getLogger("tradistry.worker")


class Heartbeat:
    """Touches a running run's heartbeat from a side thread, so a long request is not mistaken for a dead worker."""

    def __init__(self, engine: Engine, run_id: int, every: float):
        self.engine, self.run_id, self.every = engine, run_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.engine.begin() as c:
                    c.execute(sa.update(TransactionSyncLog)
                              .where(TransactionSyncLog.id == self.run_id, TransactionSyncLog.status == "running")
                              .values(heartbeat_at=utcnow()))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - the run itself reports real failures
                log.debug("heartbeat for run %s failed: %s", self.run_id, exc)


def schedule_due(session: Session) -> list[int]:
    """Queue a sync for every connection whose next_sync_at has come, spread with jitter."""
    settings = get_settings()
    queued = []
    for conn in jobs.connections_due(session):
        run, created = jobs.enqueue_sync(session, user_id=conn.user_id, connection_id=conn.id, trigger="scheduled")
        jitter = random.uniform(0, settings.scheduler_jitter_seconds)
        session.execute(sa.update(BrokerageConnection).where(BrokerageConnection.id == conn.id)
                        .values(next_sync_at=utcnow() + timedelta(minutes=conn.sync_frequency_minutes, seconds=jitter)))  # fmt: skip
        session.commit()
        if created:
            queued.append(run.id)
    return queued


class Worker:
    def __init__(self, engine: Engine | None = None, worker_id: str | None = None, poll_seconds: float | None = None,
                 scheduler: bool = True, client_factory=None):  # fmt: skip
        settings = get_settings()
        self.engine = engine or get_engine()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.worker_poll_seconds
        self.scheduler = scheduler
        self.client_factory = client_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_maintenance = 0.0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Worker:
        self._thread = threading.Thread(target=self.run_forever, name="sync-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_forever(self) -> None:
        log.info("worker %s started", self.worker_id)
        while not self._stop.is_set():
            try:
                did_work = self.run_once()
            except Exception:  # noqa: BLE001 - keep serving; the failure is logged
                log.exception("worker loop error")
                did_work = False
            if not did_work:
                self._stop.wait(self.poll_seconds)
        log.info("worker %s stopped", self.worker_id)

    # -- one step ------------------------------------------------------------------------
    def maintenance(self) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            jobs.recover_stale_runs(session)
            flag_expired(session)  # early webhooks whose connection never appeared, for staff
            if self.scheduler:
                schedule_due(session)

    def run_once(self) -> bool:
        now = time.monotonic()
        if now - self._last_maintenance >= max(self.poll_seconds, 1.0):
            self._last_maintenance = now
            self.maintenance()
        with Session(self.engine, expire_on_commit=False) as session:
            run = jobs.claim_next_job(session, self.worker_id)
        if run is None:
            return False
        self.execute(run.id)
        return True

    def execute(self, run_id: int, stop_status: str = "queued") -> TransactionSyncLog:
        """Run a claimed run with its heartbeat; on stop() it ends as `stop_status` (see execute_run)."""
        with observed_run(run_id, self.engine):  # start/finish log events and the run's request log
            client = self.client_factory() if self.client_factory else None
            with Heartbeat(self.engine, run_id, every=get_settings().sync_heartbeat_seconds):
                return execute_run(run_id, engine=self.engine, client=client, should_stop=lambda: self._stop.is_set(),
                                   stop_status=stop_status)  # fmt: skip
