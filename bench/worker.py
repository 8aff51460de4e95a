"""One measured task in a fresh interpreter: `python -m bench.worker '<json spec>'` prints one JSON line.

Tasks: `engine` (core.ingest.sync.execute_run of a claimed run), `floor` and `guide` (bench.baselines). The figures
are this process's own: wall time, CPU time of all its threads, peak RSS, plus the PostgreSQL server's CPU
when a postmaster pid is given. Imports happen before the clock starts, as in a long-running worker.
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
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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


def _statement_table(statements: dict[str, list[float]], limit: int = 10) -> list[dict[str, Any]]:
    rows = ({"kind": k, "seconds": v[0], "count": v[1]} for k, v in statements.items())
    return sorted(rows, key=lambda r: -r["seconds"])[:limit]


def _engine(spec: dict[str, Any], engine) -> dict[str, Any]:
    from core.ingest.sync import execute_run

    traced = spec.get("tracemalloc", False)
    samples: list[list[float]] = []
    every = max(1, int(spec.get("sample_every_pages", 1)))

    def on_progress(run) -> None:
        if run.pages_done % every == 0:
            current = tracemalloc.get_traced_memory()[0] if traced else 0
            samples.append([run.pages_done, _rss(), current])

    if traced:
        import tracemalloc

        tracemalloc.start(int(spec.get("tracemalloc_frames", 8)))
        before = tracemalloc.take_snapshot()
    statements = _time_statements(engine)
    run = execute_run(int(spec["run_id"]), engine=engine, on_progress=on_progress)
    out: dict[str, Any] = {
        "status": run.status,
        "fetched": run.transactions_fetched,
        "new": run.transactions_new,
        "skipped": run.transactions_skipped,
        "api_requests": run.api_requests,
        "pages": run.pages_done,
        "error": run.error_message,
        "rss_samples": samples,
        "statements": _statement_table(statements),
    }
    if traced:
        out["tracemalloc"] = _tracemalloc_report(before, tracemalloc.take_snapshot(), tracemalloc.get_traced_memory())
        tracemalloc.stop()
    return out


def _tracemalloc_report(before, after, traced: tuple[int, int]) -> dict[str, Any]:
    """What the run still holds at its end (by line) and the peak of traced memory."""
    stats = after.compare_to(before, "traceback")
    top = []
    for s in stats[:12]:
        frames = [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}" for f in s.traceback][:6]
        top.append({"size_diff": s.size_diff, "count_diff": s.count_diff, "traceback": frames})
    return {"current": traced[0], "peak": traced[1], "top": top}


def _profile(spec: dict[str, Any], engine) -> dict[str, Any]:
    """The engine under cProfile, with every SQL statement's wall time grouped by kind: where the time goes."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    out = _engine(spec, engine)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = max(stats.total_tt, 1e-9)
    rows = []
    for (filename, lineno, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{_short(filename)}:{lineno}({func})", "calls": nc, "tottime": tt, "cumtime": ct})
    in_core = [r for r in rows if r["function"].startswith("core/")]
    out["profile"] = {
        "total_seconds": total,
        "top_cumulative_core": sorted(in_core, key=lambda r: -r["cumtime"])[:30],
        "top_tottime": sorted(rows, key=lambda r: -r["tottime"])[:15],
        "statements": out["statements"],
    }
    return out


def _short(filename: str) -> str:
    if filename.startswith(str(ROOT) + "/"):
        return filename[len(str(ROOT)) + 1 :]
    for marker in ("site-packages/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _statement_kind(statement: str, executemany: bool) -> str:
    words = statement.split()
    verb = words[0].upper() if words else "?"
    table = ""
    lowered = [w.lower() for w in words]
    for key in ("into", "from", "update"):
        if key in lowered:
            i = lowered.index(key)
            if key == "update":
                table = words[i + 1] if i + 1 < len(words) else ""
            elif i + 1 < len(words):
                table = words[i + 1]
            break
    suffix = " (executemany)" if executemany else ""
    if verb == "SELECT" and "brokerage_transactions.raw_hash" in statement:
        return "SELECT existing ids+hashes of the page" + suffix
    if verb == "INSERT" and "ON CONFLICT" in statement.upper():
        return f"INSERT … ON CONFLICT into {table}{suffix}"
    return f"{verb} {table}{suffix}".strip()


def _floor(spec: dict[str, Any], engine) -> dict[str, Any]:
    from bench.baselines import floor_sync

    return floor_sync(engine, endpoint=spec["endpoint"], user_id=spec["user_id"], snaptrade_user_id=spec["snaptrade_user_id"],
                      user_secret=spec["user_secret"], accounts=spec["accounts"])  # fmt: skip


def _guide(spec: dict[str, Any], engine) -> dict[str, Any]:
    from bench.baselines import guide_sync

    return guide_sync(engine, user_id=spec["user_id"], snaptrade_user_id=spec["snaptrade_user_id"],
                      user_secret=spec["user_secret"], accounts=spec["accounts"])  # fmt: skip


TASKS = {"engine": _engine, "floor": _floor, "guide": _guide, "profile": _profile}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    os.environ["DATABASE_URL"] = spec["db_url"]

    import sqlalchemy as sa

    import core.ingest.normalize  # noqa: F401 - imported up front like in a running worker
    import core.ingest.sync  # noqa: F401
    from bench.harness import postgres_cpu_seconds
    from core.settings import reset_settings_cache
    from core.snaptrade.client import configure_endpoint
    from core.storage.db import get_engine

    reset_settings_cache()
    ep = spec["endpoint"]
    configure_endpoint(ep["base_url"], ep["client_id"], ep["consumer_key"])
    engine = get_engine()
    with engine.connect() as c:  # open the first pooled connection outside the measurement
        c.execute(sa.text("SELECT 1"))
    task = TASKS[spec["task"]]
    pg_pid = spec.get("postmaster_pid")

    rss_before = _rss()
    pg0 = postgres_cpu_seconds(pg_pid)
    t0, c0 = time.perf_counter(), time.process_time()
    result = task(spec, engine)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pg1 = postgres_cpu_seconds(pg_pid)
    peak = _peak_rss()

    with engine.connect() as c:
        stored = c.execute(sa.text("SELECT count(*) FROM brokerage_transactions")).scalar_one()
    engine.dispose()
    result.update(
        task=spec["task"],
        wall_seconds=wall,
        cpu_seconds=cpu,
        postgres_cpu_seconds=(pg1 - pg0) if pg0 is not None and pg1 is not None else None,
        rss_before_bytes=rss_before,
        rss_peak_bytes=peak,
        rows_stored=int(stored),
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
