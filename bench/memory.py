"""Benchmark 3: peak RSS of the sync process for a small and a large initial sync, on each database, from the
ingest benchmark's engine runs of the same invocation or from runs of its own. When a target is missed, one
more run under tracemalloc shows where the memory goes.
"""

from __future__ import annotations

from typing import Any

from bench import targets
from bench.harness import Databases
from bench.ingest import measure_once
from bench.remote_sandbox import RemoteSandbox


def run(dbs: Databases, sandbox: RemoteSandbox, sizes: tuple[int, int], ingest_runs: list[dict[str, Any]] | None,
        kinds: tuple[str, ...], progress=print, diagnose_size: int = 0, force_diagnose: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    by_db: dict[str, Any] = {}
    for kind in kinds:
        cells = {}
        for size in sizes:
            found = [r for r in ingest_runs or []
                     if (r["db"], r["size"], r["approach"]) == (kind, size, "engine") and not r.get("variant")]  # fmt: skip
            found = found or [measure_once(dbs, sandbox, kind, size, "engine")]
            cells[str(size)] = {"peak_bytes": max(r["rss_peak_bytes"] for r in found), "runs": len(found),  # the worst run
                                "before_run_bytes": min(r["rss_before_bytes"] for r in found),
                                "rss_per_page": [[p, rss] for p, rss, _ in found[0].get("rss_samples") or []]}  # fmt: skip
        small, large = (cells[str(s)]["peak_bytes"] for s in sizes)
        by_db[kind] = {"small": sizes[0], "large": sizes[1], "cells": cells}
        progress(
            f"  memory {kind}: peak RSS {small / 2**20:.0f} MiB at {sizes[0]:,} vs {large / 2**20:.0f} MiB at {sizes[1]:,}"
        )
        if not targets.memory_met(large / small, large) or kind in force_diagnose:
            traced = measure_once(dbs, sandbox, kind, diagnose_size or sizes[1], "engine", tracemalloc=True)
            by_db[kind]["tracemalloc"] = {"size": diagnose_size or sizes[1], **traced["tracemalloc"]}
    return {"by_db": by_db}
