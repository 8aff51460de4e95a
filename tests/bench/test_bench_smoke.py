"""Smoke test of the benchmarks (`python -m bench`): every benchmark runs once at toy size and the report
renders, so the benchmark code cannot rot unnoticed. The figures themselves are not checked."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import BENCHMARKS, run_benchmarks, toy_profile
from tests.pgserver import find_pg_bin

ENV_VARS = ("DATA_DIR", "BENCH_ENCRYPTION_KEY", "ENCRYPTION_KEYS", "AUTH_COOKIE_KEY", "DATABASE_URL", "WORKER_ENABLED",
            "LOG_LEVEL", "SNAPTRADE_CLIENT_ID", "SNAPTRADE_CONSUMER_KEY", "SNAPTRADE_BASE_URL")  # fmt: skip


@pytest.mark.timeout(180)
def test_every_benchmark_runs_at_toy_size_and_the_report_renders(tmp_path, monkeypatch):
    # run_benchmarks points the settings at its own temp directory: give the variables back afterwards.
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    dbs = ("sqlite", "postgresql") if find_pg_bin() else ("sqlite",)

    results = run_benchmarks(toy_profile(dbs), BENCHMARKS, out_dir=tmp_path, progress=lambda _msg: None)

    failed = {name: results[name]["error"] for name in BENCHMARKS if "error" in results.get(name, {})}
    assert failed == {}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["ingest"]["summary"]["ratios"], "engine ÷ floor and engine ÷ guide are computed"
    assert {r["approach"] for r in saved["ingest"]["runs"]} == {"engine", "floor", "guide"}
    assert saved["requests"]["scenarios"][1]["total"] <= 2
    if "skipped" not in saved["browser"]:  # no chromium here: the section says so
        assert saved["browser"]["warm_seconds"]["n"] == 1
        assert saved["browser"]["floor_table_seconds"]["n"] == saved["browser"]["floor_shell_seconds"]["n"] == 1
        assert saved["browser"]["returning_seconds"]["n"] == saved["browser"]["floor_returning_seconds"]["n"] == 1
        cpu = [saved["browser"][f"{who}_{side}_cpu_seconds"] for who in ("warm", "floor") for side in ("browser", "server")]
        assert all(c["n"] == 1 and c["median"] > 0 for c in cpu), cpu
    report = (tmp_path / "BENCHMARKS.md").read_text()
    for heading in ("## 1. Ingest throughput", "## 2. Request budget", "## 3. Memory", "## 4. Dashboard queries",
                    "## 5. In the browser", "## 6. Sandbox speed"):  # fmt: skip
        assert heading in report
    if "skipped" not in saved["browser"]:
        assert "returning browser: later visits, table rendered" in report
        assert "warm visit: the app's Streamlit server" in report
