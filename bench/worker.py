"""One measured task in a fresh interpreter: `python -m bench.worker '<json spec>'` prints one JSON line.

Tasks: `engine` (core.ingest.sync.execute_run of a claimed run), `profile` (the same under cProfile), `floor`
and `guide` (bench.baselines). The figures are this process's own: wall time, CPU time of all its threads, peak
RSS, plus the PostgreSQL server's CPU when a postmaster pid is given. Imports happen before the clock starts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    """High-water RSS of this process image (VmHWM). Not ru_maxrss: Linux carries the parent's RSS at fork
    time over into the child's ru_maxrss across exec, so a large parent would set every worker's floor."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:", 1)[1].split()[0]) * 1024


def _statement_kind(statement: str, executemany: bool) -> str:
    """The two per-page bulk statements by name, anything else as its verb and table."""
    words = statement.split()
    verb, lowered = words[0].upper(), [w.lower() for w in words]
    table = next((words[lowered.index(k) + 1] for k in ("into", "from", "update") if k in lowered[:-1]), "")
    suffix = " (executemany)" if executemany else ""
    if verb == "SELECT" and "brokerage_transactions.raw_hash" in statement:
        return "SELECT existing ids+hashes of the page" + suffix
    if verb == "INSERT" and "ON CONFLICT" in statement.upper():
        return f"INSERT … ON CONFLICT into {table}{suffix}"
    return f"{verb} {table}{suffix}".strip()


def _time_statements(engine) -> dict[str, list[float]]:
    """Wall seconds and count of every SQL statement the engine runs, by kind (two clock reads per statement)."""
    from sqlalchemy import event

    statements: dict[str, list[float]] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        s = statements.setdefault(_statement_kind(statement, executemany), [0.0, 0])
        s[0] += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        s[1] += 1

    return statements


def _engine(spec: dict[str, Any], engine) -> dict[str, Any]:
    import tracemalloc

    from core.ingest.sync import execute_run

    traced, every, samples = spec.get("tracemalloc", False), int(spec.get("sample_every_pages", 1)), []

    def on_progress(run) -> None:
        if run.pages_done % every == 0:
            samples.append([run.pages_done, _rss(), tracemalloc.get_traced_memory()[0] if traced else 0])

    if traced:
        tracemalloc.start(8)
        before = tracemalloc.take_snapshot()
    statements = _time_statements(engine)
    run = execute_run(int(spec["run_id"]), engine=engine, on_progress=on_progress)
    out: dict[str, Any] = {"status": run.status, "fetched": run.transactions_fetched, "new": run.transactions_new,
                           "skipped": run.transactions_skipped, "api_requests": run.api_requests, "pages": run.pages_done,
                           "error": run.error_message, "rss_samples": samples,
                           "statements": sorted(({"kind": k, "seconds": v[0], "count": v[1]} for k, v in statements.items()),
                                                key=lambda r: -r["seconds"])[:10]}  # fmt: skip
    if traced:
        # What the run still holds at its end, by allocation site, and the peak of traced memory.
        current, peak = tracemalloc.get_traced_memory()
        top = [{"size_diff": s.size_diff, "count_diff": s.count_diff,
                "traceback": [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}" for f in s.traceback][:6]}
               for s in tracemalloc.take_snapshot().compare_to(before, "traceback")[:12]]  # fmt: skip
        out["tracemalloc"] = {"current": current, "peak": peak, "top": top}
        tracemalloc.stop()
    return out


def _profile(spec: dict[str, Any], engine) -> dict[str, Any]:
    """The engine under cProfile, with its SQL statements' wall time by kind: where the time goes."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    out = _engine(spec, engine)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = [{"function": f"{_short(filename)}:{lineno}({func})", "calls": nc, "tottime": tt, "cumtime": ct}
            for (filename, lineno, func), (_cc, nc, tt, ct, _callers) in stats.stats.items()]  # type: ignore[attr-defined]  # fmt: skip
    out["profile"] = {
        "total_seconds": max(stats.total_tt, 1e-9),  # type: ignore[attr-defined]
        "top_cumulative_core": sorted((r for r in rows if r["function"].startswith("core/")), key=lambda r: -r["cumtime"])[:30],
        "top_tottime": sorted(rows, key=lambda r: -r["tottime"])[:15],
        "statements": out["statements"],
    }  # fmt: skip
    return out


def _short(filename: str) -> str:
    if filename.startswith(str(ROOT) + "/"):
        return filename[len(str(ROOT)) + 1 :]
    marker = next((m for m in ("site-packages/", "lib/python3") if m in filename), None)
    return filename.split(marker, 1)[1] if marker else filename


def _floor(spec: dict[str, Any], engine) -> dict[str, Any]:
    from bench.baselines import floor_sync

    return floor_sync(
        engine, spec["endpoint"], spec["user_id"], spec["snaptrade_user_id"], spec["user_secret"], spec["accounts"]
    )


def _guide(spec: dict[str, Any], engine) -> dict[str, Any]:
    from bench.baselines import guide_sync

    return guide_sync(engine, spec["user_id"], spec["snaptrade_user_id"], spec["user_secret"], spec["accounts"])


TASKS = {"engine": _engine, "floor": _floor, "guide": _guide, "profile": _profile}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    os.environ["DATABASE_URL"] = spec["db_url"]

    import sqlalchemy as sa

    import core.ingest.normalize  # noqa: F401 - imported up front like in a running worker
    import core.ingest.sync  # noqa: F401
    from bench.harness import cpu_seconds
    from core.settings import reset_settings_cache
    from core.snaptrade.client import configure_endpoint
    from core.storage.db import get_engine

    reset_settings_cache()
    configure_endpoint(spec["endpoint"]["base_url"], spec["endpoint"]["client_id"], spec["endpoint"]["consumer_key"])
    engine = get_engine()
    with engine.connect() as c:  # open the first pooled connection outside the measurement
        c.execute(sa.text("SELECT 1"))
    pg_pid = spec.get("postmaster_pid")
    rss_before, pg0 = _rss(), cpu_seconds(pg_pid, children=True)
    t0, c0 = time.perf_counter(), time.process_time()
    result = TASKS[spec["task"]](spec, engine)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pg1, peak = cpu_seconds(pg_pid, children=True), _peak_rss()
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
