"""bench/growth.py's verdict: the largest history's no-change sync within 1.3× of the smallest's, per database,
judged from the stored figures, and the report's section."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bench import growth, report

STORED = json.loads((Path(__file__).parents[2] / "bench" / "results.json").read_text())


def figures(small=0.020, large=0.026, dbs=("sqlite",)):
    def cell(db, size, median):
        return {"db": db, "size": size, "stored": size, "n": 1, "median": median, "min": median, "max": median,
                "values": [median], "runs": [{"fetched": 40, "pages": 2, "requests": 6, "sql_statements": 70, "sql_seconds": 0.001}]}  # fmt: skip

    cells = [cell(db, size, m) for db in dbs for size, m in ((10_000, small), (100_000, small), (1_000_000, large))]
    # "seconds" and "finished_at" are what bench/__main__.py adds to every benchmark's result.
    return {"sizes": [10_000, 100_000, 1_000_000], "reps": 1, "served_per_account": 300, "target_ratio": 1.3,
            "cells": cells, "seconds": 60.0, "finished_at": "2026-12-06T00:00:00+00:00"}  # fmt: skip


def test_the_target_is_met_at_its_limit_and_missed_past_it():
    assert [ok for *_, ok in growth.verdicts(figures(large=0.026))] == [True]
    assert [ok for *_, ok in growth.verdicts(figures(large=0.0261))] == [False]


def test_each_database_gets_its_own_verdict():
    verdicts = growth.verdicts(figures(dbs=("sqlite", "postgresql")))
    assert [what.rsplit("(", 1)[1] for what, *_ in verdicts] == ["SQLite)", "PostgreSQL)"]


def test_the_report_shows_the_section_and_its_target():
    results = {**copy.deepcopy(STORED), "growth": figures(large=0.040)}
    text = report.render(results)
    assert "## 8. History growth" in text
    assert (
        "no-change fetching sync, 1,000,000 vs 10,000 stored activities (SQLite) | ≤ 1.3× | 2.000× | **missed**" in text
    )


def test_growth_alone_measures_on_postgresql_too():
    from bench.__main__ import database_kinds, full_profile

    assert database_kinds(full_profile(), ["growth"]) == ("sqlite", "postgresql")
    assert database_kinds(full_profile(), ["sandbox", "browser"]) == ("sqlite",)
