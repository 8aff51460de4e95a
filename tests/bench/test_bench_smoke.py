"""Smoke test of the benchmarks (`python -m bench`): every benchmark runs once at toy size and the report
renders, so the benchmark code cannot rot unnoticed. The figures themselves are not checked."""

from __future__ import annotations

import json

import pytest

from bench import report
from bench.__main__ import BENCHMARKS, run_benchmarks, toy_profile
from bench.worker import COPY_KIND
from tests.pgserver import find_pg_bin

ENV_VARS = ("DATA_DIR", "BENCH_ENCRYPTION_KEY", "ENCRYPTION_KEYS", "AUTH_COOKIE_KEY", "DATABASE_URL", "WORKER_ENABLED",
            "LOG_LEVEL", "SNAPTRADE_CLIENT_ID", "SNAPTRADE_CONSUMER_KEY", "SNAPTRADE_BASE_URL")  # fmt: skip


@pytest.mark.timeout(300)
def test_every_benchmark_runs_at_toy_size_and_the_report_renders(tmp_path, monkeypatch):
    # run_benchmarks points the settings at its own temp directory: give the variables back afterwards.
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    dbs = ("sqlite", "postgresql") if find_pg_bin() else ("sqlite",)

    results = run_benchmarks(toy_profile(dbs), BENCHMARKS, out_dir=tmp_path, progress=lambda _msg: None)

    failed = {name: results[name]["error"] for name in BENCHMARKS if "error" in results.get(name, {})}
    assert failed == {}
    saved = json.loads((tmp_path / "results.json").read_text())
    ratios = report.ingest_ratios(saved["ingest"])
    assert {versus for *_, versus, r, _ in ratios if r} == {"floor", "guide"}
    assert {r["approach"] for r in saved["ingest"]["runs"]} == {"engine", "floor", "guide"}
    assert saved["ingest"]["profiles"][dbs[0]]["profile"]["top_cumulative_core"]
    for r in saved["ingest"]["runs"]:  # PostgreSQL's page write is timed whole: its COPY with its INSERT
        if r["approach"] == "engine":
            kinds = {st["kind"] for st in r["statements"]}
            assert (COPY_KIND in kinds) == (r["db"] == "postgresql"), kinds
            assert 0 < r["journal_seconds"] < r["wall_seconds"]  # the run's last step, timed by the worker
            assert r["import_activities_per_second"] > r["activities_per_second"]
    assert saved["memory"]["by_db"][dbs[0]]["tracemalloc"]["top"]
    assert [sc["total"] for sc in saved["requests"]["scenarios"]][1] <= 2
    # queued as the portal callback queues it, the initial run reuses that reconcile instead of asking again
    assert "/authorizations" not in saved["requests"]["scenarios"][0]["requests"]
    assert saved["requests"]["scenarios"][2]["webhooks"] == 2  # one per account, through the app's receiver
    assert saved["sandbox"]["client_parses_json"]["activities_per_second_median"] > 0
    for db in dbs:  # history growth: every size seeded first, then measured in turn, run by run
        runs = sorted((r["at"], c["size"]) for c in saved["growth"]["cells"] if c["db"] == db for r in c["runs"])
        assert [size for _, size in runs] == [1_000, 3_000, 1_000, 3_000]
    assert all(t["plans"] for t in (saved["queries"]["by_db"]["sqlite"]["users"]["heavy"]["timings"]) if t.get("plans"))
    if "skipped" not in saved["browser"]:  # no chromium here: the section says so
        b = saved["browser"]
        assert b["warm_seconds"]["n"] == b["floor_table_seconds"]["n"] == b["floor_shell_seconds"]["n"] == 1
        assert b["returning_seconds"]["n"] == b["floor_returning_seconds"]["n"] == 1
        cpu = [b[f"{who}_{side}_cpu_seconds"] for who in ("warm", "floor") for side in ("browser", "server")]
        assert all(c["n"] == 1 and c["median"] > 0 for c in cpu), cpu
    onboarding = saved["onboarding"]  # the toy rate limit (6 requests per 2 s) is met and every 429 retried
    assert onboarding["onboarded"] == onboarding["users"] == 3 and onboarding["throttled"] > 0
    assert onboarding["run_statuses"] == {"completed": 3} and onboarding["requests_per_connection"] > 0
    many = saved["many_users"]
    assert {(c["db"], c["workers"]) for c in many["cells"]} == {(db, n) for db in dbs for n in (1, 2)}
    assert all(c["requests_per_user"] > 0 and c["throttled"] == 0 for c in many["cells"])
    if "skipped" not in saved["concurrency"]:
        c = saved["concurrency"]
        assert [x["sessions"] for x in c["cells"]] == [1, 2] and all(x["server_cpu_seconds"] > 0 for x in c["cells"])
    judged = {t.what for t in report.verdicts(saved) if t.met is not None}
    assert {w for w in judged if w.startswith("Onboarding")} == {
        "Onboarding, SnapTrade requests per new connection (3 users at once)",
        "Onboarding, failed onboardings and imports (3 users under the rate limit)",
    }
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert text == report.render(saved)
    for title in report.TITLES.values():
        assert f"## {title}\n" in text
    assert "Failed:" not in text
