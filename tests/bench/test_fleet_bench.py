"""bench/fleet.py and bench/sessions.py (issue 25): the onboarding verdicts, the second worker's speed-up and the
dashboard-concurrency figures, each computed from the stored figures, and their report sections."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bench import fleet, report, sessions

STORED = json.loads((Path(__file__).parents[2] / "bench" / "results.json").read_text())
DONE = {"seconds": 60.0, "finished_at": "2026-12-06T00:00:00+00:00"}  # what bench/__main__.py adds to every result


def onboarding(users=100, requests=900, failed=0, statuses=None):
    return {"db": "postgresql", "users": users, "workers": 2, "broker": "SANDBOX_DATEONLY", "concurrency": 20,
            "rate_limit": {"customer_limit": 250, "window": 60}, "activities_per_user": 1000, "onboarded": users - failed,
            "errors": ["RateLimitedError: throttled"] * failed, "failed_onboardings": failed, "seconds": 240.0,
            "callbacks_seconds": 100.0, "users_per_minute": 25.0, "requests": {"/authorizations": requests},
            "requests_total": requests, "throttled": 4, "requests_per_connection": requests / (users - failed),
            "onboard_seconds": report.summarize([1.0, 2.0]), "run_statuses": statuses or {"completed": users - failed},
            "engine_requests": 500, "worker_cpu_seconds": 30.0, "sandbox_cpu_seconds": 5.0, **DONE}  # fmt: skip


def many_users(seconds):
    """`seconds`: {(db, workers): [wall seconds of each run]}."""
    cells = [{"db": db, "workers": n, "seconds": s, "requests": 2400, "throttled": 0, "requests_per_user": 8.0,
              "worker_cpu_seconds": 50.0, "sandbox_cpu_seconds": 9.0, "db_cpu_seconds": 4.0 if db == "postgresql" else None,
              "run": i + 1} for (db, n), runs in seconds.items() for i, s in enumerate(runs)]  # fmt: skip
    return {"users": 300, "activities": 1000, "worker_counts": [1, 2], "runs": 3, "rate_limit": None, "cells": cells, **DONE}  # fmt: skip


def concurrency(cpu=(0.3, 1.5, 3.0), growth_mib=(0.5, 2.5, 5.0)):
    cells = [{"sessions": n, "run": 1, "server_cpu_seconds": c, "rss_before": 300 * 2**20, "rss_open": 300 * 2**20 + g * 2**20,
              "rss_after_close": 300 * 2**20, "slowest_seconds": 1.0 + n / 10, "seconds": [1.0] * n, "browser_cpu_seconds": 0.9 * n}
             for n, c, g in zip((1, 5, 10), cpu, growth_mib)]  # fmt: skip
    return {"levels": [1, 5, 10], "runs": 1, "rows_per_user": 10_000, "settle_seconds": 5.0, "drop_seconds": 130.0,
            "rss_start": 300 * 2**20, "rss_end": 301 * 2**20, "cells": cells, **DONE}  # fmt: skip


def test_the_request_target_is_met_at_seven_per_connection_and_missed_past_it():
    assert [ok for *_, ok in fleet.onboarding_verdicts(onboarding(requests=700))] == [True, True]
    assert [ok for *_, ok in fleet.onboarding_verdicts(onboarding(requests=701))] == [False, True]


def test_a_failed_onboarding_or_import_misses_the_no_failure_target():
    assert fleet.onboarding_verdicts(onboarding(failed=1))[1][2:] == ("1", False)
    statuses = {"completed": 98, "failed": 2}
    assert fleet.onboarding_verdicts(onboarding(statuses=statuses))[1][2:] == ("2", False)


def test_the_speed_up_is_the_ratio_of_the_one_and_two_worker_medians_per_database():
    m = many_users({("sqlite", 1): [60.0, 66.0, 63.0], ("sqlite", 2): [40.0, 42.0, 45.0],
                    ("postgresql", 1): [80.0, 81.0, 79.0], ("postgresql", 2): [40.0, 50.0, 41.0]})  # fmt: skip
    assert fleet.speedups(m) == {"sqlite": 63.0 / 42.0, "postgresql": 80.0 / 41.0}
    assert [(what, measured, met) for what, _, measured, met in fleet.many_users_verdicts(m)] == [
        ("Many users, 2 workers' speed-up over 1 (SQLite, 300 users)", "1.50×", None),
        ("Many users, 2 workers' speed-up over 1 (PostgreSQL, 300 users)", "1.95×", None),
    ]


def test_concurrency_figures_are_per_session_from_each_levels_cells():
    levels = sessions.per_level(concurrency())
    assert [round(v["cpu"]["median"], 3) for v in levels.values()] == [0.3, 0.3, 0.3]
    assert [round(v["rss_open"]["median"], 3) for v in levels.values()] == [0.5, 0.5, 0.5]
    assert [v["rss_kept"]["median"] for v in levels.values()] == [0.0, 0.0, 0.0]


def test_the_report_shows_the_three_sections_and_the_onboarding_miss():
    results = {**copy.deepcopy(STORED), "onboarding": onboarding(), "concurrency": concurrency(),
               "many_users": many_users({("sqlite", 1): [60.0], ("sqlite", 2): [40.0]})}  # fmt: skip
    text = report.render(results)
    for title in ("## 9. Onboarding under the rate limit", "## 10. Many users", "## 11. Dashboard concurrency"):
        assert title in text
    assert "| Onboarding, SnapTrade requests per new connection (100 users at once) | ≤ 7 | 9.00 | **missed** |" in text
    assert "| Many users, 2 workers' speed-up over 1 (SQLite, 300 users) |  | 1.50× | — |" in text
    assert "| 10 | 0.30 (1 run) | 0.5 (1 run) | 0.0 (1 run) | 2.0 (1 run) | 9.0 (1 run) | 1 |" in text
