"""A run's live progress on its row: counts, phase, heartbeat and checkpoint, committed with each page; and
the per-account outcomes the Sync page lists."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session

from core.ingest.page_write import PageCounts
from core.messages import shorten
from core.snaptrade.client import SnapTradeClient
from core.storage.db import SQLITE_BUSY_TIMEOUT_MS
from core.storage.models import TransactionSyncLog, utcnow

log = logging.getLogger("tradistry.sync")

PHASE_CHARS = 64  # transaction_sync_log.phase is VARCHAR(64)


@dataclass
class AccountOutcome:
    account_id: str
    name: str | None
    status: str = "pending"  # synced / skipped / failed
    message: str = ""
    counts: PageCounts = field(default_factory=PageCounts)
    start_date: str | None = None
    pages: int = 0

    def as_dict(self) -> dict:
        c = self.counts
        return {"account_id": self.account_id, "name": self.name, "status": self.status, "message": self.message,
                "start_date": self.start_date, "pages": self.pages, "fetched": c.fetched, "new": c.new,
                "updated": c.updated, "unchanged": c.unchanged, "skipped": c.skipped}  # fmt: skip


def outcome_from(d: dict) -> AccountOutcome:
    o = AccountOutcome(d.get("account_id", ""), d.get("name"), d.get("status", "pending"), d.get("message", ""),
                       start_date=d.get("start_date"), pages=d.get("pages", 0))  # fmt: skip
    o.counts = PageCounts(
        d.get("fetched", 0), d.get("new", 0), d.get("updated", 0), d.get("unchanged", 0), d.get("skipped", 0)
    )
    return o


class RunReporter:
    """Keeps the run row's live progress; page writes and progress commit together."""

    def __init__(self, session: Session, run: TransactionSyncLog, client: SnapTradeClient):
        self.session = session
        self.run = run
        self.client = client
        self.base_requests = run.api_requests or 0
        self.last_beat = time.monotonic()

    def update(self, *, commit: bool = True, **values) -> None:
        for k, v in values.items():
            setattr(self.run, k, v)
        self.run.api_requests = self.base_requests + self.client.requests_made
        self.run.heartbeat_at = utcnow()
        self.session.add(self.run)
        if commit:
            self.session.commit()
        self.last_beat = time.monotonic()

    def retrying(self, notice: str | None) -> None:
        """The client's retry notice (SnapTradeClient.on_retry) as the run's phase while it waits, and the
        phase back when the request is over. It may come from the prefetch thread, so it is written in its
        own short transaction, never through the run's session; on SQLite it waits at most a second for the
        write lock (that session may hold it), and a notice that cannot be written is simply skipped."""
        phase = shorten(notice, PHASE_CHARS) if notice else self.run.phase
        try:
            with self.session.get_bind().connect() as conn:
                sqlite_db = conn.dialect.name == "sqlite"
                if sqlite_db:
                    conn.exec_driver_sql("PRAGMA busy_timeout = 1000")
                try:
                    conn.execute(sa.update(TransactionSyncLog).where(TransactionSyncLog.id == self.run.id)
                                 .values(phase=phase, heartbeat_at=utcnow()))  # fmt: skip
                    conn.commit()
                finally:
                    if sqlite_db:
                        conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        except Exception as exc:  # noqa: BLE001 - progress wording must never fail a run
            log.debug("run %s: retry notice not recorded: %s", self.run.id, exc)

    def add_counts(self, c: PageCounts) -> None:
        r = self.run
        r.transactions_fetched += c.fetched
        r.transactions_new += c.new
        r.transactions_updated += c.updated
        r.transactions_unchanged += c.unchanged
        r.transactions_skipped += c.skipped


def checkpoint(cp_accounts: dict) -> dict:
    """A new value for the JSON column each time. SQLAlchemy writes a JSON attribute only when the value
    assigned differs from the one it holds, and a value sharing `cp_accounts` (changed in place) never does:
    the resume point then stayed at the offset of the first write."""
    return {"accounts": copy.deepcopy(cp_accounts)}
