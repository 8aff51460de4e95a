"""bench/report.py: every verdict comes from the figures in the results file, each section links to its
hand-written explanation, and a report re-rendered after `--only` describes each section as it was measured."""

from __future__ import annotations

import copy
import json
import re
import statistics
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import main

ROOT = Path(__file__).parents[2]
# The committed results: every section as the benchmarks wrote it, so the renderer sees real shapes.
STORED = json.loads((ROOT / "bench" / "results.json").read_text())

BROWSER_ONLY_META = {
    **STORED["meta"], "selected": ["browser"], "argv": ["--only", "browser"], "notes": [], "postgresql": None,
    "postgresql_settings": None,
    "earlier_runs": [{"date": "16:08", "argv": ["--only", "ingest,memory", "--big-runs", "5"], "seconds": 7920.0,
                      "selected": ["ingest", "memory"], "sections": ["ingest", "memory"]}],
}  # fmt: skip


def _results(meta: dict | None = None, ingest_runs: dict[str, int] | None = None) -> dict:
    results = copy.deepcopy(STORED)
    if meta is not None:
        results["meta"] = meta
    if ingest_runs is not None:
        results["ingest"]["plan"]["runs"] = ingest_runs
    return results


def _cell(results: dict, db: str, size: int, approach: str) -> list[dict]:
    """The ingest runs of one (database, size, approach) cell."""
    return [r for r in results["ingest"]["runs"] if (r["db"], r["size"], r["approach"], r.get("variant")) == (db, size, approach, None)]  # fmt: skip


def _set_median(results: dict, db: str, size: int, approach: str, median: float) -> None:
    """Scale a cell's runs so that the median of their activities/s is `median`."""
    runs = _cell(results, db, size, approach)
    factor = median / statistics.median(r["activities_per_second"] for r in runs)
    for r in runs:
        r["activities_per_second"] *= factor


def _median(results: dict, db: str, size: int, approach: str) -> float:
    return statistics.median(r["activities_per_second"] for r in _cell(results, db, size, approach))


def _verdict(results: dict, what: str) -> bool | None:
    [target] = [t for t in report.verdicts(results) if t.what == what]
    return target.met


def _row(text: str, starts: str) -> str:
    [row] = [line for line in text.splitlines() if line.startswith(starts)]
    return row


# --------------------------------------------------------------------------- verdicts from the figures


# The targets the stored figures miss, named so that a re-measure that changes a verdict changes this test too.
TARGETS = 39  # targets with a verdict in the stored results
# Journal re-measured on 8d14490 and the browser on fb484ce (default runs, each once, load 0.3 at the start);
# ingest and memory (--runs 3 --big-runs 2) from feb0100, where every target was met (PostgreSQL engine ÷ floor
# 1.11× at 100,000, 1.12× at 1,000,000; SQLite engine ÷ guide 12.68×); the other sections from 6fe8538. The one
# miss is an absolute time that moves with the machine, on code that met it before (since 2e1682a the journal
# changed only its log lines and, 6fe8538, BEGIN IMMEDIATE on SQLite): the full rebuild took 1.533 s on 2e1682a,
# 3.419 s on 6fe8538 (while the machine ran slower) and 2.117 s here (1.940–2.192 s). The upkeep after a daily
# page: 75.2, 171.1 and here 97.1 ms. The first browser visit after a server start: 1.53 s on 4f292ab, 2.56 s on
# 6fe8538, 2.40 s on 8d14490 and 1.93 s on fb484ce, whose warm-up spares it Streamlit's first-element stack walk
# (94 ms timed in the app; the rest is not the change: Streamlit alone took 1.71 s, then 1.62 s a visit). The
# ratio targets all hold: history growth 0.976× (SQLite) and 1.031× (PostgreSQL), 7.00 requests per onboarding.
STORED_MISSES = {
    "journal full rebuild, 200,000 activities",
}


def test_the_stored_results_miss_only_the_named_targets_and_the_report_says_which():
    judged = [t for t in report.verdicts(STORED) if t.met is not None]
    missed = [t.what for t in judged if not t.met]
    assert len(judged) == TARGETS and set(missed) == STORED_MISSES
    listed = f"; missed: {'; '.join(missed)}" if missed else ""
    assert f"{TARGETS - len(missed)} of {TARGETS} targets met{listed}." in report.render(STORED)


def test_an_ingest_ratio_verdict_follows_the_engine_and_floor_medians():
    results = _results()
    what = "Ingest, engine ÷ floor throughput (SQLite, 100,000 activities)"
    _set_median(results, "sqlite", 100_000, "floor", _median(results, "sqlite", 100_000, "engine") / 0.501)
    assert _verdict(results, what) is True
    _set_median(
        results, "sqlite", 100_000, "floor", _median(results, "sqlite", 100_000, "engine") / 0.495
    )  # just under half
    assert _verdict(results, what) is False
    text = report.render(results)
    assert f"| {what} | ≥ 0.5× | 0.495× | **missed** |" in text
    missed = [t.what for t in report.verdicts(results) if t.met is False]
    assert what in missed and f"{TARGETS - len(missed)} of {TARGETS} targets met; missed: " in text


@pytest.mark.parametrize("size", [100_000, 1_000_000])
def test_postgresql_ingest_from_100000_activities_needs_085_of_the_floor_with_the_cpu_beside_it(size):
    results = _results()
    what = f"Ingest, engine ÷ floor throughput (PostgreSQL, {size:,} activities)"
    engine = _median(results, "postgresql", size, "engine")
    _set_median(results, "postgresql", size, "floor", engine / 0.851)
    [target] = [t for t in report.verdicts(results) if t.what == what]
    assert (target.target, target.met) == ("≥ 0.85×", True)
    cpu = [statistics.median(r["cpu_seconds_per_1k"] for r in _cell(results, "postgresql", size, a)) for a in ("engine", "floor")]  # fmt: skip
    assert target.measured.startswith(f"0.851× (CPU s per 1,000: {cpu[0]:.3f} engine, {cpu[1]:.3f} floor")
    _set_median(results, "postgresql", size, "floor", engine / 0.845)
    assert _verdict(results, what) is False
    # 10,000 activities keep the general target of half the floor's rate.
    _set_median(results, "postgresql", 10_000, "floor", _median(results, "postgresql", 10_000, "engine") / 0.6)
    assert _verdict(results, "Ingest, engine ÷ floor throughput (PostgreSQL, 10,000 activities)") is True


def test_the_guide_ratio_verdict_needs_ten_times_the_guides_rate():
    results = _results()
    _set_median(results, "postgresql", 10_000, "guide", _median(results, "postgresql", 10_000, "engine") / 9.9)
    assert _verdict(results, "Ingest, engine ÷ guide throughput (PostgreSQL, 10,000 activities)") is False


def test_the_request_verdict_counts_the_sandboxs_log_not_a_stored_total():
    results = _results()
    what = "Requests, scheduled sync with nothing new (one connection)"
    assert _verdict(results, what) is True
    [nothing_new] = [sc for sc in results["requests"]["scenarios"] if sc["name"] == "scheduled sync, nothing new"]
    nothing_new["requests"]["/accounts/{accountId}/balances"] = 1
    assert _verdict(results, what) is False
    assert f"| {what} | ≤ 2 | 3 | **missed** |" in report.render(results)


@pytest.mark.parametrize(("large_peak", "met"), [(150 * 2**20, True), (250 * 2**20, False), (310_000_000, False)])
def test_the_memory_verdict_needs_both_the_ratio_and_the_absolute_peak(large_peak, met):
    results = _results()
    cells = results["memory"]["by_db"]["sqlite"]["cells"]
    cells["10000"]["peak_bytes"] = 220 * 2**20 if large_peak == 310_000_000 else 147 * 2**20  # 310 MB: ratio 1.34
    cells["1000000"]["peak_bytes"] = large_peak
    cells["10000"]["before_run_bytes"] = 100 * 2**20
    assert _verdict(results, "Memory, peak RSS 1,000,000 vs 10,000 activities (SQLite)") is met
    assert _row(report.render(results), "| SQLite | 100 MiB | ").endswith("| met |" if met else "| **missed** |")


def test_a_query_verdict_compares_each_p95_with_its_groups_target():
    results = _results()
    timings = results["queries"]["by_db"]["postgresql"]["users"]["heavy"]["timings"]
    [data_version] = [t for t in timings if t["name"] == "data_version"]
    data_version["p95_ms"] = 51.0  # over the page target of 50 ms, under the aggregations' 300 ms
    what = "Transactions page-load queries, worst p95 (PostgreSQL, heavy user, 200,000 rows)"
    [target] = [t for t in report.verdicts(results) if t.what == what]
    assert (target.target, target.measured, target.met) == ("≤ 50 ms", "51.0 ms (data_version)", False)
    p50, top = data_version["p50_ms"], data_version["max_ms"]
    assert f"| page load | data_version | {p50:.1f} | 51.0 | {top:.1f} | 50 | **missed** |" in report.render(results)


@pytest.mark.parametrize("key", ["cold_seconds", "warm_seconds", "returning_seconds"])
def test_a_browser_verdict_compares_the_median_visit_with_two_seconds(key):
    results = _results()
    title = report.BROWSER_VISITS[key]
    what = f"Browser, navigation → rendered table, {title} (median)"
    results["browser"][key]["median"] = 2.0
    assert _verdict(results, what) is True
    results["browser"][key]["median"] = 2.01
    assert _verdict(results, what) is False


def test_the_browser_ratios_to_streamlit_alone_come_from_the_same_runs_medians():
    results = _results()
    results["browser"]["warm_seconds"]["median"], results["browser"]["floor_table_seconds"]["median"] = 2.5, 2.0
    text = report.render(results)
    assert "| Browser, later visits ÷ Streamlit alone with the same table |  | 1.25× (2.00 s floor) | — |" in text


# --------------------------------------------------------------------------- the report's shape


def test_each_section_links_to_its_explanation_in_the_performance_docs():
    docs = (ROOT / report.DOCS).read_text()
    anchors = {report.anchor(h) for h in re.findall(r"^#+ (.+)$", docs, flags=re.M)}
    text = report.render(STORED)
    links = re.findall(r"\]\(docs/PERFORMANCE\.md#([\w-]+)\)", text)
    assert links == [report.anchor(t) for name, t in report.TITLES.items() if name in STORED]
    assert set(links) <= anchors


def test_the_committed_benchmarks_md_is_the_render_of_the_committed_results():
    assert (ROOT / "BENCHMARKS.md").read_text() == report.render(STORED)


def test_render_only_rewrites_the_report_from_the_results_file_and_measures_nothing(tmp_path, capsys):
    """It cites the file it read, so results measured elsewhere (`--out-dir`) and copied in cite their new home."""
    (tmp_path / "results.json").write_text(json.dumps(STORED))
    assert main(["--render-only", "--out-dir", str(tmp_path)]) == 0
    rendered = json.loads((tmp_path / "results.json").read_text())
    assert rendered == {**STORED, "meta": {**STORED["meta"], "results_file": str(tmp_path / "results.json")}}
    assert (tmp_path / "BENCHMARKS.md").read_text() == report.render(rendered)
    assert f"from `{tmp_path / 'results.json'}` (every single run included)" in report.render(rendered)


def test_the_committed_report_cites_the_committed_results_file():
    assert STORED["meta"]["results_file"] == "bench/results.json"


def test_five_runs_of_every_size_need_no_warning_whatever_the_last_invocation_was():
    text = report.render(_results(BROWSER_ONLY_META, {"10000": 5, "100000": 5, "1000000": 5}))
    assert "single measurements" not in text
    assert "- Ingest runs per approach and database, by size: 10,000: 5, 100,000: 5, 1,000,000: 5;" in text


def test_fewer_runs_of_the_big_syncs_are_flagged_from_the_ingest_sections_own_plan():
    text = report.render(_results(BROWSER_ONLY_META, {"10000": 5, "1000000": 1}))
    assert (
        "> 1,000,000-activity syncs: 1 run(s) per approach and database instead of 5; their figures are single measurements"
        in text
    )
    text = report.render(_results(BROWSER_ONLY_META, {"10000": 5, "1000000": 3}))
    assert (
        "> 1,000,000-activity syncs: 3 run(s) per approach and database instead of 5; their figures are medians of 3."
        in text
    )


def test_a_partial_run_without_postgresql_does_not_say_the_report_used_none():
    assert "| PostgreSQL | not used by this invocation |" in report.render(_results(BROWSER_ONLY_META))
    assert "| PostgreSQL | not used |" in report.render(_results({**BROWSER_ONLY_META, "earlier_runs": []}))


def test_the_postgresql_floor_verdict_shows_the_import_alone_beside_the_whole_run():
    """The verdict judges the whole run (journal step included); the import's own rate is shown beside it."""
    results = _results()
    engine, floor = _cell(results, "postgresql", 100_000, "engine"), _cell(results, "postgresql", 100_000, "floor")
    for r in engine:
        r["import_activities_per_second"] = 2 * r["activities_per_second"]
    whole = statistics.median(r["activities_per_second"] for r in engine)
    alone = statistics.median(r["import_activities_per_second"] for r in engine)
    floor_rate = statistics.median(r["activities_per_second"] for r in floor)
    [target] = [t for t in report.verdicts(results) if t.what.startswith("Ingest, engine ÷ floor") and "PostgreSQL, 100,000" in t.what]  # fmt: skip
    assert target.measured.startswith(report.ratio(whole / floor_rate))
    assert (
        f"the import alone, without the journal's wait after it: {report.ratio(alone / floor_rate)})" in target.measured
    )
    assert target.met == (whole / floor_rate >= 0.85)


def test_each_earlier_invocation_names_the_commit_it_measured():
    earlier = {**BROWSER_ONLY_META["earlier_runs"][0], "git": {"head": "5264be7a1b84", "subject": "s", "uncommitted": ["core/x.py"]}}  # fmt: skip
    text = report.render(_results({**BROWSER_ONLY_META, "earlier_runs": [earlier]}))
    assert (
        "`ingest`, `memory`: from an earlier invocation, `python -m bench --only ingest,memory --big-runs 5`, started "
        "16:08, on commit `5264be7a1b84` plus uncommitted changes in `core/x.py`, which took 132.0 minutes." in text
    )
    assert "started 16:08, which took 132.0 minutes." in report.render(_results(BROWSER_ONLY_META))  # none recorded
