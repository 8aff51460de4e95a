"""Benchmark 6: how fast the sandbox, in its own process, serves full 1,000-activity pages over keep-alive HTTP,
so it is known not to limit benchmark 1. Each run reads a fresh region of the history: the sandbox keeps pages.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from bench.baselines import PAGE, PlainClient
from bench.remote_sandbox import RemoteSandbox


def run(pages: int, runs: int, history: int, progress=print) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for parse in (False, True):  # each in a fresh sandbox, so neither reads pages the other made
        sandbox = RemoteSandbox().start()
        try:
            sandbox.create_connection("bench", "SANDBOX_US", history)
            account, secret = (
                sandbox.read("accounts", user_id="bench")[0]["id"],
                sandbox.control("user_secret", user_id="bench"),
            )
            client, rates = PlainClient(sandbox.base_url, sandbox.client_id, sandbox.consumer_key), []
            for r in range(runs):
                t0, rows = time.perf_counter(), 0
                for k in range(pages):
                    body = client.activities("bench", secret, account, (r * pages + k) * PAGE)
                    rows += len(json.loads(body)["data"]) if parse else body.count(b'"institution":')
                rates.append(rows / (time.perf_counter() - t0))
            client.close()
        finally:
            sandbox.stop()
        out["client_parses_json" if parse else "bytes_only"] = {
            "pages_per_run": pages, "runs": runs, "history_size": history, "page_bytes": len(body),
            "activities_per_second_median": round(statistics.median(rates)),
            "activities_per_second_runs": [round(x) for x in rates],
        }  # fmt: skip
        progress(
            f"  sandbox: {round(statistics.median(rates)):,} activities/s ({'json.loads' if parse else 'bytes only'})"
        )
    return out
