"""`python -m bench [--quick] [--only NAME[,NAME]] [--runs N] [--big-runs N]`: run the benchmarks and write
BENCHMARKS.md plus bench/results.json (a --quick run writes bench/BENCHMARKS-quick.md and bench/results-quick.json).

Names: sandbox, requests, ingest, memory, queries, browser. `--only` keeps the other sections of the existing
results file and re-renders the report from all of them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Databases, git_state, loadavg, machine_info, prepare_environment
from bench.seed import SeedPlan

BENCHMARKS = ("sandbox", "requests", "ingest", "memory", "queries", "browser")


@dataclass
class Profile:
    name: str
    runs: int
    ingest_sizes: list[int]
    ingest_runs: dict[int, int]
    guide_size: int
    guide_runs: int
    profile_size: int | None
    memory_small: int
    memory_large: int
    budget_history: int
    seed: SeedPlan
    query_reps: int
    browser_starts: int
    browser_warm: int
    sandbox_pages: int
    sandbox_runs: int
    sandbox_history: int
    dbs: tuple[str, ...] = ("sqlite", "postgresql")
    notes: list[str] = field(default_factory=list)
    force_memory_diagnosis: tuple[str, ...] = ()
    profile_dbs: tuple[str, ...] | None = None
    guide_dbs: tuple[str, ...] | None = None
    no_autoanalyze: tuple[int, int] | None = None


def full_profile(runs: int = 5, big_runs: int | None = None) -> Profile:
    # Every size gets `runs` runs unless asked otherwise: the report gives medians. A smaller --big-runs
    # shortens `make bench` a lot (the 1,000,000-activity syncs are most of it); the report then says
    # those cells are fewer runs, from the ingest section's own plan (bench/report.py).
    big_runs = runs if big_runs is None else big_runs
    return Profile(
        name="full", runs=runs, ingest_sizes=[10_000, 100_000, 1_000_000],
        ingest_runs={10_000: runs, 100_000: runs, 1_000_000: big_runs}, guide_size=10_000, guide_runs=runs,
        no_autoanalyze=(100_000, 2),
        profile_size=100_000, memory_small=10_000, memory_large=1_000_000, budget_history=10_000,
        seed=SeedPlan(users=100, rows_per_user=10_000, big_user_rows=200_000), query_reps=max(30, runs),
        browser_starts=runs, browser_warm=4, sandbox_pages=20, sandbox_runs=runs, sandbox_history=1_000_000,
    )  # fmt: skip


def quick_profile(runs: int = 3) -> Profile:
    return Profile(
        name="quick", runs=runs, ingest_sizes=[2_000, 20_000], ingest_runs={2_000: runs, 20_000: 1}, guide_size=2_000,
        no_autoanalyze=(20_000, 1),
        guide_runs=2, profile_size=20_000, memory_small=2_000, memory_large=20_000, budget_history=4_000,
        seed=SeedPlan(users=10, rows_per_user=2_000, big_user_rows=20_000), query_reps=5, browser_starts=1,
        browser_warm=2, sandbox_pages=5, sandbox_runs=3, sandbox_history=100_000,
        notes=["Quick run: small sizes and few repetitions, to check the benchmarks work; not the reference figures."],
    )  # fmt: skip


def toy_profile(dbs: tuple[str, ...] = ("sqlite", "postgresql")) -> Profile:
    return Profile(
        name="toy", runs=1, ingest_sizes=[1_000], ingest_runs={1_000: 1}, guide_size=1_000, guide_runs=1,
        profile_size=1_000, memory_small=1_000, memory_large=1_000, budget_history=2_000, force_memory_diagnosis=dbs[:1],
        profile_dbs=dbs[:1], guide_dbs=dbs[:1],
        seed=SeedPlan(users=2, rows_per_user=200, big_user_rows=1_000), query_reps=2, browser_starts=1, browser_warm=1,
        sandbox_pages=2, sandbox_runs=1, sandbox_history=10_000, dbs=dbs, notes=["Toy run (smoke test)."],
    )  # fmt: skip


def output_paths(profile: Profile, out_dir: Path | None) -> tuple[Path, Path]:
    if out_dir is not None:
        return out_dir / "BENCHMARKS.md", out_dir / "results.json"
    if profile.name == "full":
        return ROOT / "BENCHMARKS.md", ROOT / "bench" / "results.json"
    return ROOT / "bench" / f"BENCHMARKS-{profile.name}.md", ROOT / "bench" / f"results-{profile.name}.json"


def run_benchmarks(profile: Profile, selected: tuple[str, ...] = BENCHMARKS, out_dir: Path | None = None,
                   progress=print, argv: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the selected benchmarks; results.json and the report are rewritten after each one."""
    from bench import report

    md_path, json_path = output_paths(profile, out_dir)
    results: dict[str, Any] = {}
    if set(selected) != set(BENCHMARKS) and json_path.exists():
        results = json.loads(json_path.read_text())
    workdir = Path(tempfile.mkdtemp(prefix="tradistry-bench-"))
    prepare_environment(workdir)
    started = time.perf_counter()
    needs_db = set(selected) & {"requests", "ingest", "memory", "queries", "browser"}
    needs_sandbox = set(selected) & {"requests", "ingest", "memory"}
    kinds = profile.dbs if set(selected) & {"ingest", "memory", "queries"} else ("sqlite",)
    dbs = Databases(workdir, kinds) if needs_db else None
    sandbox = None
    failures: list[str] = []
    context: dict[str, Any] = {"selected": selected}
    try:
        if dbs is not None:
            dbs.start()
        meta = machine_info(dbs.server_version() if dbs else None, dbs.server_settings() if dbs else None)
        meta.update(profile=profile.name, argv=argv or [], selected=list(selected), notes=profile.notes,
                    loadavg_start=loadavg(), profile_settings=_profile_dict(profile), git=git_state())  # fmt: skip
        previous = results.get("meta")
        if previous:  # a partial run: remember which invocations the other sections come from
            meta["earlier_runs"] = earlier_runs_still_shown(
                (previous.get("earlier_runs") or [])
                + [{k: previous.get(k) for k in ("date", "argv", "selected", "seconds", "git")}],
                selected,
            )
        results["meta"] = meta
        if needs_sandbox:
            from bench.remote_sandbox import RemoteSandbox
            from core.snaptrade.client import configure_endpoint

            sandbox = RemoteSandbox().start()
            configure_endpoint(sandbox.base_url, sandbox.client_id, sandbox.consumer_key)
        for name in BENCHMARKS:
            if name not in selected:
                continue
            progress(f"[bench] {name} ...")
            t0 = time.perf_counter()
            try:
                section = RUNNERS[name](profile, dbs, sandbox, context, workdir, progress)
                section["seconds"] = time.perf_counter() - t0
                section["loadavg_after"] = loadavg()
                section["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
                results[name] = section
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
                failures.append(name)
                results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                                 "seconds": time.perf_counter() - t0}  # fmt: skip
                progress(f"[bench] {name} FAILED: {exc}")
            progress(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s")
            results["meta"]["seconds"] = time.perf_counter() - started
            _write(results, md_path, json_path, report)
    finally:
        from core.settings import reset_settings_cache
        from core.snaptrade.client import clear_endpoint
        from core.storage.db import dispose_engines

        clear_endpoint()
        dispose_engines()
        if sandbox is not None:
            sandbox.stop()
        if dbs is not None:
            dbs.close()
        shutil.rmtree(workdir, ignore_errors=True)
        reset_settings_cache()
    results["meta"]["seconds"] = time.perf_counter() - started
    results["meta"]["loadavg_end"] = loadavg()
    results["meta"]["failures"] = failures
    _write(results, md_path, json_path, report)
    progress(f"[bench] wrote {md_path} and {json_path} in {results['meta']['seconds'] / 60:.1f} min")
    return results


def _profile_dict(profile: Profile) -> dict[str, Any]:
    d = dict(profile.__dict__)
    d["seed"] = dict(profile.seed.__dict__)
    d["ingest_runs"] = {str(k): v for k, v in profile.ingest_runs.items()}
    return d


def _write(results: dict[str, Any], md_path: Path, json_path: Path, report) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        results["meta"]["results_file"] = str(json_path.resolve().relative_to(ROOT))
    except ValueError:
        results["meta"]["results_file"] = str(json_path)
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md_path.write_text(report.render(results))


# --------------------------------------------------------------------------- runners


def _sandbox(profile: Profile, dbs, sandbox, context, workdir, progress) -> dict[str, Any]:
    from bench import sandbox_speed

    return sandbox_speed.run(profile.sandbox_pages, profile.sandbox_runs, profile.sandbox_history, progress)


def _requests(profile: Profile, dbs, sandbox, context, workdir, progress) -> dict[str, Any]:
    from bench import request_budget

    return request_budget.run(dbs, sandbox, profile.budget_history, progress)


def _ingest(profile: Profile, dbs, sandbox, context, workdir, progress) -> dict[str, Any]:
    from bench import ingest

    plan = ingest.IngestPlan(sizes=profile.ingest_sizes, runs=profile.ingest_runs, guide_size=profile.guide_size,
                             guide_runs=profile.guide_runs, dbs=profile.dbs, profile_size=profile.profile_size,
                             profile_dbs=profile.profile_dbs, guide_dbs=profile.guide_dbs,
                             no_autoanalyze=profile.no_autoanalyze)  # fmt: skip
    out = ingest.run(dbs, sandbox, plan, progress)
    context["ingest_runs"] = out["runs"]
    return out


def _memory(profile: Profile, dbs, sandbox, context, workdir, progress) -> dict[str, Any]:
    from bench import memory

    return memory.run(dbs, sandbox, profile.memory_small, profile.memory_large, context.get("ingest_runs"), profile.dbs,
                      progress, diagnose_size=max(profile.memory_small, profile.memory_large // 10),
                      force_diagnose=profile.force_memory_diagnosis)  # fmt: skip


def _queries(profile: Profile, dbs, sandbox, context, workdir, progress) -> dict[str, Any]:
    from bench import dashboard

    out = dashboard.run(dbs, dashboard.QueryPlan(profile.seed, profile.query_reps, profile.dbs), progress,
                        keep_sqlite="browser" in context.get("selected", BENCHMARKS))  # fmt: skip
    kept = out.pop("kept_sqlite")
    if kept:
        context["seeded_sqlite"] = kept
    return out


def _browser(profile: Profile, dbs, sandbox, context, workdir, progress) -> dict[str, Any]:
    from bench import browser

    why_not = browser.available()
    if why_not:
        return {"skipped": why_not}
    kept = context.pop("seeded_sqlite", None)
    if kept is None:
        from bench.seed import seed
        from core.storage.db import create_db_engine

        url = dbs.new("sqlite")
        engine = create_db_engine(url)
        kept = (url, seed(engine, profile.seed))
        engine.dispose()
    url, seeded = kept
    try:
        return browser.run(url, seeded.big_username, profile.seed.big_user_rows, server_starts=profile.browser_starts,
                           warm_visits=profile.browser_warm, workdir=workdir, progress=progress)  # fmt: skip
    finally:
        dbs.drop(url)


RUNNERS = {"sandbox": _sandbox, "requests": _requests, "ingest": _ingest, "memory": _memory, "queries": _queries,
           "browser": _browser}  # fmt: skip


def earlier_runs_still_shown(runs: list[dict], selected: Sequence[str]) -> list[dict]:
    """The earlier invocations (oldest first) that still own a section of the report, each with the
    sections it owns: a section comes from the latest invocation that ran it, so a run whose every
    section was rerun since is dropped rather than cited."""
    taken = set(selected)
    kept: list[dict] = []
    for run in reversed(runs):
        owns = [name for name in (run.get("selected") or []) if name not in taken]
        taken.update(owns)
        if owns:
            kept.append({**run, "sections": owns})
    return kept[::-1]


def main(argv: list[str] | None = None) -> int:
    # `kill <pid>` must still stop the sandbox and PostgreSQL and remove the temp files (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions (about 3 minutes)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    p.add_argument("--runs", type=int, default=None, help="measured runs per cell (default 5; quick 3)")
    p.add_argument(
        "--big-runs", type=int, default=None,
        help="runs of the 1,000,000-activity syncs (full profile; default: as many as --runs; 1 saves an hour or more)",
    )
    p.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    p.add_argument("--out-dir", type=Path, help="write the report and results.json here instead")
    p.add_argument(
        "--render-only", action="store_true", help="only re-render the report from the existing results file"
    )
    args = p.parse_args(argv)
    selected = tuple(BENCHMARKS)
    if args.only:
        selected = tuple(n.strip() for n in args.only.split(",") if n.strip())
        unknown = [n for n in selected if n not in BENCHMARKS]
        if unknown:
            p.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    if args.quick:
        profile = quick_profile(args.runs or 3)
    else:
        profile = full_profile(args.runs or 5, args.big_runs)
    if args.sqlite_only:
        profile = replace(profile, dbs=("sqlite",))
    if args.render_only:
        from bench import report

        md_path, json_path = output_paths(profile, args.out_dir)
        md_path.write_text(report.render(json.loads(json_path.read_text())))
        print(f"[bench] re-rendered {md_path} from {json_path}")
        return 0
    results = run_benchmarks(profile, selected, args.out_dir, argv=argv)
    return 1 if results["meta"].get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
