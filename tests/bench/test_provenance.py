"""bench/__main__.py: a partial run (`--only`) cites only the earlier invocations whose sections it still shows."""

from __future__ import annotations

from bench.__main__ import earlier_runs_still_shown

FULL = {"date": "09:15", "selected": ["sandbox", "requests", "ingest", "memory", "queries", "browser"]}
BROWSER_1 = {"date": "12:43", "selected": ["browser"]}
BROWSER_2 = {"date": "14:37", "selected": ["browser"]}


def test_a_rerun_section_drops_the_invocations_it_replaced():
    kept = earlier_runs_still_shown([FULL, BROWSER_1, BROWSER_2], ["browser"])
    assert kept == [{**FULL, "sections": ["sandbox", "requests", "ingest", "memory", "queries"]}]


def test_each_section_is_credited_to_the_latest_invocation_that_ran_it():
    kept = earlier_runs_still_shown([FULL, {"date": "12:00", "selected": ["queries", "browser"]}], ["memory"])
    assert [(r["date"], r["sections"]) for r in kept] == [
        ("09:15", ["sandbox", "requests", "ingest"]),
        ("12:00", ["queries", "browser"]),
    ]
