"""Benchmark: how many activities per second the sandbox serves as full 1000-row pages over HTTP.

Starts the sandbox in a subprocess (its own core), fetches pages with http.client and correct signing, and prints
the median of several runs. `python bench/bench_sandbox.py --json` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.signing import request_signature  # noqa: E402

CLIENT_ID, CONSUMER_KEY, ADMIN = "BENCH-CLIENT", "bench-consumer-key", "bench-admin"


def _start_server(port: int, seed: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "sandbox",
        "--port",
        str(port),
        "--client-id",
        CLIENT_ID,
        "--consumer-key",
        CONSUMER_KEY,
    ]
    cmd += ["--seed", str(seed), "--admin-token", ADMIN]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # "SnapTrade sandbox listening on ..."
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"sandbox did not start: {line!r}")
    return proc


def _admin(conn: http.client.HTTPConnection, op: str, **kwargs: object) -> object:
    conn.request("POST", f"/__sandbox__/{op}", body=json.dumps(kwargs), headers={"X-Sandbox-Admin-Token": ADMIN})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    if resp.status != 200:
        raise RuntimeError(data)
    return data["result"]


def _signed_get(conn: http.client.HTTPConnection, path: str, params: dict[str, object]) -> bytes:
    query = urlencode({**params, "clientId": CLIENT_ID, "timestamp": int(time.time())})
    sig = request_signature(CONSUMER_KEY, path, query, None)
    conn.request("GET", f"{path}?{query}", headers={"Signature": sig})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{resp.status} {body[:200]!r}")
    return body


def run(pages: int, runs: int, history: int, port: int, seed: int, parse: bool) -> dict[str, object]:
    proc = _start_server(port, seed)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        _admin(conn, "create_connection", user_id="bench", broker="SANDBOX_US", history_size=history)
        conn.request("GET", "/__sandbox__/accounts?user_id=%22bench%22", headers={"X-Sandbox-Admin-Token": ADMIN})
        accounts = json.loads(conn.getresponse().read())["result"]
        account = accounts[0]["id"]
        user_secret = _admin(conn, "user_secret", user_id="bench")
        path = f"/accounts/{account}/activities"
        rates, cached = [], []
        for r in range(runs):
            # every run reads a fresh region of the history, so no run is served from the page cache
            base = r * pages
            t0 = time.perf_counter()
            rows = 0
            for k in range(pages):
                body = _signed_get(
                    conn,
                    path,
                    {"offset": (base + k) * 1000, "limit": 1000, "userId": "bench", "userSecret": user_secret},
                )
                rows += len(json.loads(body)["data"]) if parse else body.count(b'"institution":')
            rates.append(rows / (time.perf_counter() - t0))
        # the last run's pages again: what a re-reading client sees with the page cache warm
        t0 = time.perf_counter()
        rows = 0
        for k in range(pages):
            body = _signed_get(
                conn,
                path,
                {
                    "offset": ((runs - 1) * pages + k) * 1000,
                    "limit": 1000,
                    "userId": "bench",
                    "userSecret": user_secret,
                },
            )
            rows += len(json.loads(body)["data"]) if parse else body.count(b'"institution":')
        cached.append(rows / (time.perf_counter() - t0))
        return {
            "pages_per_run": pages,
            "runs": runs,
            "history_size": history,
            "parsed_by_client": parse,
            "activities_per_second_median": round(statistics.median(rates)),
            "activities_per_second_runs": [round(x) for x in rates],
            "activities_per_second_cached": round(cached[0]),
            "page_bytes": len(body),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pages", type=int, default=20, help="1000-row pages fetched per run")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--history", type=int, default=1_000_000, help="activities in the benchmark account")
    p.add_argument("--port", type=int, default=int(os.environ.get("BENCH_SANDBOX_PORT", "18799")))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--parse", action="store_true", help="also json-parse every page in the client")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    result = run(args.pages, args.runs, args.history, args.port, args.seed, args.parse)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"sandbox: {result['activities_per_second_median']:,} activities/s (median of {args.runs} runs of {args.pages} pages; runs {result['activities_per_second_runs']})"
        )
        print(
            f"         {result['activities_per_second_cached']:,} activities/s re-reading cached pages; {result['page_bytes']:,} bytes per page"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
