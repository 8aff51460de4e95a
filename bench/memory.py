"""Benchmark 3: peak RSS of the sync process for a small and a large initial sync (each in a fresh worker
process), on each database. Uses the engine runs of the ingest benchmark when they were made in the same
invocation; otherwise makes its own. When a target is missed, one more run under tracemalloc shows what
the run still holds at its end and the peak of traced memory.
"""

from __future__ import annotations

from typing import Any

from bench.harness import Databases, ratio
from bench.ingest import measure_once
from bench.remote_sandbox import RemoteSandbox

RATIO_TARGET = 1.5
PEAK_TARGET_BYTES = 300_000_000  # "under 300 MB"


def run(dbs: Databases, sandbox: RemoteSandbox, small: int, large: int, ingest_runs: list[dict[str, Any]] | None,
        dbs_kinds: tuple[str, ...], progress=print, diagnose_size: int | None = None,
        force_diagnose: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Peak RSS per database at `small` and `large`; `force_diagnose` runs tracemalloc even when targets are met."""
    by_db: dict[str, Any] = {}
    for kind in dbs_kinds:
        cells = {}
        for size in (small, large):
            found = [r for r in (ingest_runs or [])
                     if r["db"] == kind and r["size"] == size and r["approach"] == "engine" and not r.get("variant")]  # fmt: skip
            if not found:
                found = [measure_once(dbs, sandbox, kind, size, "engine")]
            peak = max(r["rss_peak_bytes"] for r in found)  # the worst of the runs
            before = min(r["rss_before_bytes"] for r in found)
            samples = found[0].get("rss_samples") or []
            cells[size] = {"peak_bytes": peak, "before_run_bytes": before, "runs": len(found),
                           "rss_per_page": [[p, rss] for p, rss, _ in samples]}  # fmt: skip
        r = ratio(cells[large]["peak_bytes"], cells[small]["peak_bytes"])
        meets = r is not None and r <= RATIO_TARGET and cells[large]["peak_bytes"] < PEAK_TARGET_BYTES
        by_db[kind] = {"small": small, "large": large, "cells": {str(k): v for k, v in cells.items()}, "ratio": r,
                       "growth_bytes": cells[large]["peak_bytes"] - cells[small]["peak_bytes"], "meets_target": meets}  # fmt: skip
        progress(f"  memory {kind}: peak RSS {cells[small]['peak_bytes'] / 2**20:.0f} MiB at {small:,} vs "
                 f"{cells[large]['peak_bytes'] / 2**20:.0f} MiB at {large:,} (x{r:.2f})")  # fmt: skip
        if not meets or kind in force_diagnose:
            size = diagnose_size or large
            traced = measure_once(dbs, sandbox, kind, size, "engine", tracemalloc=True)
            by_db[kind]["tracemalloc"] = {"size": size, **traced["tracemalloc"]}
            progress(
                f"  memory {kind}: tracemalloc at {size:,}: peak traced {traced['tracemalloc']['peak'] / 2**20:.1f} MiB"
            )
    return {"ratio_target": RATIO_TARGET, "peak_target_bytes": PEAK_TARGET_BYTES, "by_db": by_db}
