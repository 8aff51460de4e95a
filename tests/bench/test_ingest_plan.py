"""bench/ingest.py's run order: every cell of a size, the no-autoanalyze variant too, measured round by round."""

from __future__ import annotations

from bench import ingest
from bench.harness import Run
from bench.ingest import IngestPlan


def test_the_no_autoanalyze_runs_are_in_their_size_rounds_beside_the_floor(monkeypatch):
    order = []

    def measure_once(ctx, kind, size, approach, tracemalloc=False, autoanalyze=True):
        order.append((size, approach if autoanalyze else "engine, no autoanalyze", kind))
        return {"activities_per_second": 1.0, "cpu_seconds_per_1k": 1.0, "rss_peak_bytes": 1}

    monkeypatch.setattr(ingest, "measure_once", measure_once)
    plan = IngestPlan({10: 2, 100: 2}, 10, 1, no_autoanalyze=(100, 2))
    ingest.run(Run(profile=type("P", (), {"ingest": plan}), dbs=None, sandbox=None, workdir=None, selected=(),
                   progress=lambda _m: None))  # fmt: skip

    big = [(a, k) for size, a, k in order if size == 100]
    one_round = [("engine", "sqlite"), ("engine", "postgresql"), ("floor", "sqlite"), ("floor", "postgresql"),
                 ("engine, no autoanalyze", "postgresql")]  # fmt: skip
    assert big == one_round * 2
    assert order[-len(big) :] == [(100, a, k) for a, k in big]  # after the smaller size's rounds, none after them
