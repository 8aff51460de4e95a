"""`python -m bench [--quick] [--only NAME[,NAME]] [--runs N] [--big-runs N] [--sqlite-only] [--render-only]`: run the
benchmarks, write bench/results.json and render BENCHMARKS.md from it. docs/PERFORMANCE.md § Running them."""

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
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import browser, dashboard, fleet, growth, ingest, journal, report, sessions
from bench.fleet import FleetPlan
from bench.harness import ROOT, Databases, Run, Sandbox, loadavg, machine_info, prepare_environment
from bench.ingest import IngestPlan
from bench.seed import SeedPlan
from bench.sessions import ConcurrencyPlan
from core.settings import reset_settings_cache
from core.snaptrade.client import clear_endpoint, configure_endpoint
from core.storage.db import dispose_engines

BENCHMARKS = {"sandbox": ingest.run_sandbox, "requests": ingest.run_requests, "ingest": ingest.run,
              "memory": ingest.run_memory, "queries": dashboard.run, "browser": browser.run,
              "journal": journal.run, "growth": growth.run, "onboarding": fleet.run_onboarding,
              "many_users": fleet.run_many_users, "concurrency": sessions.run}  # fmt: skip


@dataclass
class Profile:
    name: str
    ingest: IngestPlan
    budget_history: int
    seed: SeedPlan
    query_reps: int
    browser_starts: int
    browser_warm: int
    sandbox_pages: int
    sandbox_runs: int
    sandbox_history: int
    notes: list[str] = field(default_factory=list)
    force_memory_diagnosis: tuple[str, ...] = ()
    growth_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)  # stored activities of the history-growth sync
    growth_runs: int = 3
    fleet: FleetPlan = field(default_factory=FleetPlan)  # onboarding and many users
    concurrency: ConcurrencyPlan = field(default_factory=ConcurrencyPlan)


def full_profile(runs: int = 5, big_runs: int | None = None) -> Profile:
    # A smaller --big-runs shortens `make bench` a lot: the 1,000,000-activity syncs are most of it.
    sizes = {10_000: runs, 100_000: runs, 1_000_000: runs if big_runs is None else big_runs}
    ingest = IngestPlan(sizes, 10_000, runs, profile_size=100_000, no_autoanalyze=(100_000, 2))
    return Profile("full", ingest, 10_000, SeedPlan(100, 10_000, 200_000), max(30, runs), runs, 4, 20, runs, 1_000_000,
                   growth_runs=max(15, runs))  # fmt: skip


def quick_profile(runs: int = 3) -> Profile:
    ingest = IngestPlan({2_000: runs, 20_000: 1}, 2_000, 2, profile_size=20_000, no_autoanalyze=(20_000, 1))
    return Profile("quick", ingest, 4_000, SeedPlan(10, 2_000, 20_000), 5, 1, 2, 5, 3, 100_000,
                   notes=["Quick run: small sizes and few repetitions, to check the benchmarks work; not the reference figures."],
                   growth_sizes=(2_000, 20_000), growth_runs=runs)  # fmt: skip


def toy_profile(dbs: tuple[str, ...] = ("sqlite", "postgresql")) -> Profile:
    ingest = IngestPlan({1_000: 1}, 1_000, 1, dbs=dbs, profile_size=1_000, detail_dbs=dbs[:1])
    # a rate limit of 6 requests per 2 s, so even three onboardings meet 429s and retry them
    fleet = FleetPlan(onboarding_users=3, onboarding_concurrency=3, rate_limit={"customer_limit": 6, "window": 2},
                      onboarding_activities=200, users=3, activities=200, runs=1)  # fmt: skip
    return Profile("toy", ingest, 2_000, SeedPlan(2, 200, 1_000), 2, 1, 1, 2, 1, 10_000,
                   notes=["Toy run (smoke test)."], force_memory_diagnosis=dbs[:1], growth_sizes=(1_000, 3_000),
                   growth_runs=2, fleet=fleet, concurrency=ConcurrencyPlan((1, 2), 1, 200, 1.0, 0.0))  # fmt: skip


def output_paths(profile: Profile, out_dir: Path | None) -> tuple[Path, Path]:
    if out_dir is not None:
        return out_dir / "BENCHMARKS.md", out_dir / "results.json"
    if profile.name == "full":
        return ROOT / "BENCHMARKS.md", ROOT / "bench" / "results.json"
    return ROOT / "bench" / f"BENCHMARKS-{profile.name}.md", ROOT / "bench" / f"results-{profile.name}.json"


def run_benchmarks(profile: Profile, selected: Sequence[str] = tuple(BENCHMARKS), out_dir: Path | None = None,
                   progress=print, argv: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the selected benchmarks; results.json and the report are rewritten after each one."""
    md_path, json_path = output_paths(profile, out_dir)
    partial = set(selected) != set(BENCHMARKS)
    results: dict[str, Any] = json.loads(json_path.read_text()) if partial and json_path.exists() else {}
    workdir, started, failures = Path(tempfile.mkdtemp(prefix="tradistry-bench-")), time.perf_counter(), []
    prepare_environment(workdir)
    kinds = database_kinds(profile, selected)
    ctx = Run(profile, Databases(workdir, kinds) if set(selected) - {"sandbox"} else None, None, workdir, tuple(selected), progress)  # fmt: skip
    try:
        if ctx.dbs is not None:
            ctx.dbs.start()
        meta = {**machine_info(ctx.dbs), "profile": profile.name, "argv": argv or [], "selected": list(selected),
                "notes": profile.notes, "loadavg_start": loadavg(), "profile_settings": asdict(profile)}  # fmt: skip
        if previous := results.get("meta"):  # a partial run: remember which invocations the other sections come from
            this = {k: previous.get(k) for k in ("date", "argv", "selected", "seconds", "git")}
            meta["earlier_runs"] = earlier_runs_still_shown([*(previous.get("earlier_runs") or []), this], selected)
        results["meta"] = meta
        if set(selected) & {"requests", "ingest", "memory", "growth", "onboarding", "many_users"}:
            ctx.sandbox = Sandbox().start()
            configure_endpoint(ctx.sandbox.url, ctx.sandbox.client_id, ctx.sandbox.consumer_key)
        for name in (n for n in BENCHMARKS if n in selected):
            progress(f"[bench] {name} ...")
            t0 = time.perf_counter()
            try:
                results[name] = {**BENCHMARKS[name](ctx), "loadavg_after": loadavg(),
                                 "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
                failures.append(name)
                results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
                progress(f"[bench] {name} FAILED: {exc}")
            results[name]["seconds"] = time.perf_counter() - t0
            progress(f"[bench] {name} done in {results[name]['seconds']:.0f} s")
            meta["seconds"] = time.perf_counter() - started
            write(results, md_path, json_path)
    finally:
        clear_endpoint()
        dispose_engines()
        if ctx.sandbox is not None:
            ctx.sandbox.close()
        if ctx.dbs is not None:
            ctx.dbs.close()
        shutil.rmtree(workdir, ignore_errors=True)
        reset_settings_cache()
    meta.update(seconds=time.perf_counter() - started, loadavg_end=loadavg(), failures=failures)
    write(results, md_path, json_path)
    progress(f"[bench] wrote {md_path} and {json_path} in {meta['seconds'] / 60:.1f} min")
    return results


def database_kinds(profile: Profile, selected: Sequence[str]) -> tuple[str, ...]:
    """The databases to start: the profile's when a selected benchmark measures on each of them, else SQLite."""
    measured_on_each = {"ingest", "memory", "queries", "growth", "onboarding", "many_users"}
    return profile.ingest.dbs if set(selected) & measured_on_each else ("sqlite",)


def write(results: dict[str, Any], md_path: Path, json_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    resolved = json_path.resolve()
    results["meta"]["results_file"] = str(resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else json_path)
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md_path.write_text(report.render(results))


def earlier_runs_still_shown(runs: list[dict], selected: Sequence[str]) -> list[dict]:
    """The earlier invocations (oldest first) that still own a section, each with its sections: a section comes
    from the latest invocation that ran it, so one whose every section was rerun since is not cited."""
    taken, kept = set(selected), []
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
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions (a few minutes)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)} (keeps the other sections)")
    p.add_argument("--runs", type=int, help="measured runs per cell (default 5; quick 3)")
    p.add_argument("--big-runs", type=int, help="runs of the 1,000,000-activity syncs (default: --runs)")
    p.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    p.add_argument("--out-dir", type=Path, help="write the report and results.json here instead")
    p.add_argument("--render-only", action="store_true", help="re-render the report from the existing results file")
    args = p.parse_args(argv)
    selected = tuple(n.strip() for n in (args.only or ",".join(BENCHMARKS)).split(",") if n.strip())
    if unknown := [n for n in selected if n not in BENCHMARKS]:
        p.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    profile = quick_profile(args.runs or 3) if args.quick else full_profile(args.runs or 5, args.big_runs)
    if args.sqlite_only:
        profile = replace(profile, ingest=replace(profile.ingest, dbs=("sqlite",)))
    md_path, json_path = output_paths(profile, args.out_dir)
    if args.render_only:  # the file read becomes the report's cited source, wherever it was measured
        write(json.loads(json_path.read_text()), md_path, json_path)
        print(f"[bench] re-rendered {md_path} from {json_path}")
        return 0
    return 1 if run_benchmarks(profile, selected, args.out_dir, argv=argv)["meta"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
