"""`python -m bench.worker '<json spec>'`: one measured sync in a fresh interpreter, by the engine (or under
cProfile), the floor or the guide (docs/PERFORMANCE.md §1); prints its own wall, CPU and peak RSS as one JSON line."""

from __future__ import annotations

import base64
import contextlib
import cProfile
import functools
import hashlib
import hmac
import http.client
import json
import os
import pstats
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import psutil
import sqlalchemy as sa
from sqlmodel import Session, select

from core.ingest.journal_step import JournalStep
from core.ingest.normalize import normalize_activity
from core.ingest.pgcopy import CopyPageWriter
from core.ingest.sync import execute_run
from core.settings import reset_settings_cache
from core.snaptrade.activity_types import NORMALIZED_TYPES
from core.snaptrade.client import SnapTradeClient, configure_endpoint
from core.snaptrade.values import NormalizationError
from core.storage import jsonexact
from core.storage.db import get_engine
from core.storage.models import BrokerageTransaction

ROOT = Path(__file__).resolve().parent.parent
PAGE = 1000
TYPES = frozenset(NORMALIZED_TYPES)


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU of a process (with `children`, plus all its descendants) so far; None when it is gone."""
    try:
        procs = [root := psutil.Process(pid), *(root.children(recursive=True) if children else [])]
    except psutil.Error:
        return None
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):  # exited meanwhile
            total += sum(p.cpu_times()[:2])
    return total


def proc_rss(field: str = "VmHWM") -> int:
    """This process's peak (VmHWM) or current (VmRSS) RSS in bytes; for the peak VmHWM, not ru_maxrss: Linux
    carries the parent's ru_maxrss over into the child across exec."""
    return int(Path("/proc/self/status").read_text().split(f"{field}:", 1)[1].split()[0]) * 1024


COPY_KIND = "INSERT … ON CONFLICT: its COPY into the stage table"


def statement_kind(statement: str, executemany: bool) -> str:
    """The two per-page bulk statements by name, anything else as its verb and table."""
    return _kind(statement) + (" (executemany)" if executemany else "")


@functools.lru_cache(maxsize=512)
def _kind(statement: str) -> str:
    # Cached: a page's INSERT on SQLite is some 15,000 words, and classifying it afresh at every execution
    # took 1.2 ms, about 3% of a measured 10,000-activity run's CPU.
    words = statement.split()
    verb, lowered = words[0].upper(), [w.lower() for w in words]
    table = next((words[lowered.index(k) + 1] for k in ("into", "from", "update") if k in lowered[:-1]), "")
    if verb == "SELECT" and "brokerage_transactions.raw_hash" in statement:
        return "SELECT existing ids+hashes of the page"
    if verb == "INSERT" and "ON CONFLICT" in statement.upper():
        return f"INSERT … ON CONFLICT into {table}"
    return f"{verb} {table}".strip()


def add_time(stats: dict[str, list], key: str, seconds: float) -> None:
    s = stats.setdefault(key, [0.0, 0])
    s[0] += seconds
    s[1] += 1


@contextlib.contextmanager
def timed_statements(engine: sa.Engine, kind: Callable[[str, bool], str]) -> Iterator[dict[str, list]]:
    """[seconds, count] of the engine's statements by `kind(statement, executemany)`, while in the block."""
    stats: dict[str, list] = {}

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        t0 = conn.info.pop("bench_t0", time.perf_counter())
        add_time(stats, kind(statement, executemany), time.perf_counter() - t0)

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield stats
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


def timed(fn: Callable[..., None], record: Callable[[float], Any]) -> Callable[..., None]:
    """`fn`, each call's seconds handed to `record`."""

    def call(*args, **kwargs) -> None:
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        record(time.perf_counter() - t0)

    return call


def engine_task(spec: dict[str, Any], engine: sa.Engine) -> dict[str, Any]:
    traced, samples, journal = spec["tracemalloc"], [], []

    def on_progress(run) -> None:
        if run.pages_done % spec["sample_every_pages"] == 0:
            traced_now = tracemalloc.get_traced_memory()[0] if traced else 0
            samples.append([run.pages_done, psutil.Process().memory_info().rss, traced_now])

    with timed_statements(engine, statement_kind) as statements:
        # the PostgreSQL page write's first half, counted with its INSERT; what the run's journal step takes after
        # the import (positions, then the upkeep: on PostgreSQL only the last account's and the wait for the
        # others', begun beside the import), timed so the import's own rate can leave it out
        CopyPageWriter.copy_rows = timed(CopyPageWriter.copy_rows, lambda t: add_time(statements, COPY_KIND, t))
        JournalStep.finish = timed(JournalStep.finish, journal.append)
        if traced:
            tracemalloc.start(8)
            before = tracemalloc.take_snapshot()
        run = execute_run(int(spec["run_id"]), engine=engine, on_progress=on_progress)
    out: dict[str, Any] = {"status": run.status, "fetched": run.transactions_fetched, "new": run.transactions_new,
                           "skipped": run.transactions_skipped, "api_requests": run.api_requests, "pages": run.pages_done,
                           "error": run.error_message, "rss_samples": samples, "journal_seconds": sum(journal),
                           "statements": sorted(({"kind": k, "seconds": v[0], "count": v[1]} for k, v in statements.items()),
                                                key=lambda r: -r["seconds"])[:10]}  # fmt: skip
    if traced:  # what the run still holds at its end, by allocation site, and the peak of traced memory
        current, peak = tracemalloc.get_traced_memory()
        top = [{"size_diff": s.size_diff, "count_diff": s.count_diff,
                "traceback": [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}" for f in s.traceback][:6]}
               for s in tracemalloc.take_snapshot().compare_to(before, "traceback")[:12]]  # fmt: skip
        out["tracemalloc"] = {"current": current, "peak": peak, "top": top}
        tracemalloc.stop()
    return out


def profile_task(spec: dict[str, Any], engine: sa.Engine) -> dict[str, Any]:
    """The engine under cProfile: where the time goes."""
    profiler = cProfile.Profile()
    profiler.enable()
    out = engine_task(spec, engine)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = [{"function": f"{filename.removeprefix(str(ROOT) + '/')}:{lineno}({func})", "calls": nc, "tottime": tt, "cumtime": ct}
            for (filename, lineno, func), (_cc, nc, tt, ct, _callers) in stats.stats.items()]  # type: ignore[attr-defined]  # fmt: skip
    out["profile"] = {
        "total_seconds": max(stats.total_tt, 1e-9),  # type: ignore[attr-defined]
        "top_cumulative_core": sorted((r for r in rows if r["function"].startswith("core/")), key=lambda r: -r["cumtime"])[:30],
        "top_tottime": sorted(rows, key=lambda r: -r["tottime"])[:15],
    }  # fmt: skip
    return out


class PlainClient:
    """A keep-alive HTTP/1.1 connection that fetches activity pages with hand-made signatures."""

    def __init__(self, base_url: str, client_id: str, consumer_key: str):
        u = urlparse(base_url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        self.client_id, self.consumer_key, self.requests = client_id, consumer_key, 0

    def activities(self, user_id: str, user_secret: str, account_id: str, offset: int) -> bytes:
        """One page of activities, as the bytes the server sent."""
        path = f"/accounts/{account_id}/activities"
        query = urlencode([("offset", offset), ("limit", PAGE), ("userId", user_id), ("userSecret", user_secret),
                           ("clientId", self.client_id), ("timestamp", int(time.time()))])  # fmt: skip
        # SnapTrade's request signature, written out from REFERENCE §1 (no SDK, no sandbox code)
        message = json.dumps({"content": None, "path": path, "query": query}, separators=(",", ":"), sort_keys=True)
        signature = base64.b64encode(hmac.new(self.consumer_key.encode(), message.encode(), hashlib.sha256).digest())
        self.conn.request("GET", f"{path}?{query}", headers={"Signature": signature.decode()})
        resp = self.conn.getresponse()
        body = resp.read()
        self.requests += 1
        if resp.status != 200:
            raise RuntimeError(f"activities answered {resp.status}: {body[:200]!r}")
        return body


def pages(fetch: Callable[[str, int], tuple[list, int]], accounts: list[list]) -> Iterator[tuple[int, list]]:
    """(db account id, page) for every page of every account; `fetch(account, offset)` -> (page, total)."""
    for db_account_id, snaptrade_account_id in accounts:
        offset = 0
        while True:
            page, total = fetch(snaptrade_account_id, offset)
            yield db_account_id, page
            offset += len(page)
            if not page or offset >= total:
                break


FLOOR_COLUMNS = ("user_id", "account_id", "snaptrade_activity_id", "transaction_type", "trade_date",
                 "trade_date_from_settlement", "fingerprint", "raw_hash", "raw", "created_at", "updated_at")  # fmt: skip


@functools.lru_cache(maxsize=8)  # a page's statement is built once per row count, not once per page
def floor_insert_sql(dialect: str, rows: int = 1) -> str:
    """One INSERT per page, as the engine writes: SQLite multi-row VALUES, PostgreSQL one binary array per column."""
    cols = ", ".join(FLOOR_COLUMNS)
    if dialect == "sqlite":
        one = "(" + ", ".join("?" * len(FLOOR_COLUMNS)) + ")"
        return f"INSERT INTO brokerage_transactions ({cols}) VALUES {', '.join([one] * rows)}"
    arrays = ("%b::integer[], %b::integer[], %b::varchar[], %b::varchar[], %b::date[], %b::boolean[], %b::varchar[], "
              "%b::varchar[], %b::jsonb[], %b::timestamptz[], %b::timestamptz[]")  # fmt: skip
    return f"INSERT INTO brokerage_transactions ({cols}) SELECT * FROM unnest({arrays})"


def floor_task(spec: dict[str, Any], engine: sa.Engine) -> dict[str, Any]:
    """Every page of every account inserted as is: one bulk insert and one commit per page."""
    client, dialect, fetched = PlainClient(**spec["endpoint"]), engine.dialect.name, 0
    stamp = datetime.now(UTC)  # written as SQLAlchemy would write it, so the rows read back normally
    now = stamp.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else stamp.isoformat()
    today = date.today().isoformat()

    def fetch(account: str, offset: int) -> tuple[list, int]:
        body = json.loads(client.activities(spec["snaptrade_user_id"], spec["user_secret"], account, offset))
        return body["data"], int(body["pagination"]["total"])

    dbapi = engine.raw_connection()
    try:
        cur = dbapi.cursor()
        for db_account_id, data in pages(fetch, spec["accounts"]):
            rows = [(spec["user_id"], db_account_id, a["id"], a.get("type") if a.get("type") in TYPES else "OTHER",
                     (a.get("trade_date") or a.get("settlement_date") or today)[:10], False, a["id"], a["id"], json.dumps(a), now, now)
                    for a in data]  # fmt: skip
            if rows and dialect == "sqlite":
                cur.execute(floor_insert_sql(dialect, len(rows)), [v for row in rows for v in row])
            elif rows:
                cur.execute(floor_insert_sql(dialect), [list(column) for column in zip(*rows)])
            dbapi.commit()
            fetched += len(data)
        cur.close()
    finally:
        dbapi.close()
        client.conn.close()
    return {"fetched": fetched, "new": fetched, "api_requests": client.requests}


def guide_task(spec: dict[str, Any], engine: sa.Engine) -> dict[str, Any]:
    """The SDK's pages, then per transaction an ORM select, an insert or update, and a commit."""
    client, counts = SnapTradeClient(), {"fetched": 0, "new": 0, "updated": 0, "skipped": 0}

    def fetch(account: str, offset: int) -> tuple[list, int]:
        page = client.activities_page(spec["snaptrade_user_id"], spec["user_secret"], account, offset=offset, limit=PAGE)  # fmt: skip
        return page.activities, page.total

    with Session(engine, expire_on_commit=False) as session:
        for db_account_id, page in pages(fetch, spec["accounts"]):
            for raw in page:
                counts["fetched"] += 1
                try:
                    row = normalize_activity(raw)
                except NormalizationError:
                    counts["skipped"] += 1
                    continue
                # The schema requires raw_hash; the guide had none, and this is the cheapest way to fill it.
                row["raw_hash"] = hashlib.sha256(jsonexact.dumps(row["raw"], sort_keys=True).encode()).hexdigest()
                T = BrokerageTransaction
                where = (T.account_id == db_account_id, T.snaptrade_activity_id == row["snaptrade_activity_id"])
                if (existing := session.exec(select(T).where(*where)).first()) is None:
                    session.add(T(user_id=spec["user_id"], account_id=db_account_id, **row))
                    counts["new"] += 1
                else:
                    for key, value in {**row, "updated_at": datetime.now(UTC)}.items():
                        setattr(existing, key, value)
                    session.add(existing)
                    counts["updated"] += 1
                session.commit()
    return {**counts, "api_requests": client.requests_made}


TASKS = {"engine": engine_task, "profile": profile_task, "floor": floor_task, "guide": guide_task}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    os.environ["DATABASE_URL"] = spec["db_url"]
    reset_settings_cache()
    configure_endpoint(**spec["endpoint"])
    engine = get_engine()
    with engine.begin() as c:  # the first pooled connection opens outside the measurement
        if spec["no_autoanalyze"]:  # PostgreSQL's autovacuum kept away from the transactions table
            c.execute(sa.text("ALTER TABLE brokerage_transactions SET (autovacuum_enabled = false)"))
        c.execute(sa.text("SELECT 1"))
    pg_pid = spec["postmaster_pid"]
    rss_before, pg0 = psutil.Process().memory_info().rss, cpu_seconds(pg_pid, children=True) if pg_pid else None
    t0, c0 = time.perf_counter(), time.process_time()
    result = TASKS[spec["task"]](spec, engine)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pg1, peak = cpu_seconds(pg_pid, children=True) if pg_pid else None, proc_rss()
    with engine.connect() as c:
        stored = c.execute(sa.text("SELECT count(*) FROM brokerage_transactions")).scalar_one()
    engine.dispose()
    result.update(task=spec["task"], wall_seconds=wall, cpu_seconds=cpu, rss_before_bytes=rss_before,
                  postgres_cpu_seconds=pg1 - pg0 if pg0 is not None and pg1 is not None else None,
                  rss_peak_bytes=peak, rows_stored=int(stored))  # fmt: skip
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
