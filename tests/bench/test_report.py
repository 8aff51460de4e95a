"""bench/report.py: a report re-rendered after `--only` describes each section as it was measured,
not with the settings of the invocation that happened to write the file last."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bench import report

# The committed results: every section as the benchmarks wrote it, so the renderer sees real shapes.
STORED = json.loads((Path(__file__).parents[2] / "bench" / "results.json").read_text())

BROWSER_ONLY_META = {
    "selected": ["browser"], "argv": ["--only", "browser"], "notes": [], "postgresql": None,
    "profile_settings": {"ingest_runs": {"10000": 5, "100000": 5, "1000000": 1}, "guide_size": 10_000,
                         "guide_runs": 5, "query_reps": 30, "browser_starts": 5, "browser_warm": 4, "sandbox_runs": 5},
    "earlier_runs": [{"date": "16:08", "argv": ["--only", "ingest,memory", "--big-runs", "5"],
                      "selected": ["ingest", "memory"], "sections": ["ingest", "memory"]}],
}  # fmt: skip


def _results(meta: dict, ingest_runs: dict[str, int] | None = None) -> dict:
    results = copy.deepcopy(STORED)
    results["meta"] = meta
    if ingest_runs is not None:
        results["ingest"]["plan"]["runs"] = ingest_runs
    return results


def test_five_runs_of_every_size_need_no_warning_whatever_the_last_invocation_was():
    text = report.render(_results(BROWSER_ONLY_META, {"10000": 5, "100000": 5, "1000000": 5}))
    assert "single measurements" not in text
    assert "- Ingest runs per approach and database, by size: 10,000: 5, 100,000: 5, 1,000,000: 5;" in text


def test_fewer_runs_of_the_big_syncs_are_flagged_from_the_ingest_sections_own_plan():
    text = report.render(_results(BROWSER_ONLY_META, {"10000": 5, "1000000": 1}))
    assert "> 1,000,000-activity syncs: 1 run(s) per approach and database instead of 5; their figures are single measurements" in text
    text = report.render(_results(BROWSER_ONLY_META, {"10000": 5, "1000000": 3}))
    assert "> 1,000,000-activity syncs: 3 run(s) per approach and database instead of 5; their figures are medians of 3." in text


def test_a_partial_run_without_postgresql_does_not_say_the_report_used_none():
    text = report.render(_results(BROWSER_ONLY_META))
    assert "| PostgreSQL | not used by this invocation |" in text
    assert "| PostgreSQL | not used |" in report.render(_results({**BROWSER_ONLY_META, "earlier_runs": []}))


def test_the_browser_section_says_how_fast_streamlit_alone_must_be_for_the_target_to_hold():
    results = _results(BROWSER_ONLY_META)
    results["browser"]["warm_seconds"]["median"], results["browser"]["floor_table_seconds"]["median"] = 2.5, 2.0
    text = report.render(results)
    assert "Later visits ÷ the table floor: **1.25×**" in text
    assert "at 1.25× the target of 2 s holds while Streamlit alone shows the same table in ≤ 1.60 s (here 2.00 s)." in text
