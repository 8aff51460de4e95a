"""Benchmark 6: how fast the sandbox serves full 1000-activity pages, to show it does not limit benchmark 1.

Reuses the sandbox engineer's own script (`bench/bench_sandbox.py`): the sandbox in its own process, pages
fetched over keep-alive http.client with correct signatures, each run reading a fresh region of the history.
"""

from __future__ import annotations

from typing import Any

from bench import bench_sandbox
from bench.harness import free_port


def run(pages: int, runs: int, history: int, progress=print) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for parse in (False, True):
        r = bench_sandbox.run(pages=pages, runs=runs, history=history, port=free_port(), seed=7, parse=parse)
        out["client_parses_json" if parse else "bytes_only"] = r
        progress(
            f"  sandbox: {r['activities_per_second_median']:,} activities/s ({'client json.loads' if parse else 'bytes only'}; "
            f"runs {r['activities_per_second_runs']})"
        )
    return out
