"""BENCHMARKS.md from bench/results.json: tables of the figures and a verdict per target; docs/PERFORMANCE.md explains."""

from __future__ import annotations

import importlib
import re
import statistics
from typing import Any, NamedTuple

from bench import targets as T

DOCS = "docs/PERFORMANCE.md"
DB = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
TITLES = {"ingest": "1. Ingest throughput", "requests": "2. Request budget", "memory": "3. Memory",
          "queries": "4. Dashboard queries", "browser": "5. In the browser", "sandbox": "6. Sandbox speed",
          "journal": "7. Trading journal", "growth": "8. History growth",
          "onboarding": "9. Onboarding under the rate limit", "many_users": "10. Many users",
          "concurrency": "11. Dashboard concurrency"}  # fmt: skip
APPROACHES = {"engine": "engine (`core.ingest.sync`)", "floor": "floor (plain HTTP + bulk INSERT)",
              "guide": "guide (row-by-row upsert)", "engine (no autoanalyze)": "engine, no autoanalyze during the sync"}  # fmt: skip
QUERY_GROUPS = {"page": "Transactions page query", "totals": "Transactions totals",
                "page load": "Transactions page-load queries", "analytics": "Analytics aggregations"}  # fmt: skip
BROWSER_VISITS = {"cold_seconds": "first visit after server start", "warm_seconds": "later visits",
                  "returning_seconds": "later visits, returning browser (Streamlit's scripts cached)"}  # fmt: skip
BROWSER_ROWS = {"cold_seconds": "cold: first visit after server start", "warm_seconds": "warm: later visits, table rendered",
                "warm_title_seconds": "warm: page title visible (app shell + login)",
                "floor_table_seconds": "floor: Streamlit alone, title + caption + 50-row `st.dataframe`",
                "floor_shell_seconds": "floor: Streamlit alone, title + caption (the shell, no table)",
                "returning_seconds": "returning browser: later visits, table rendered",
                "floor_returning_seconds": "returning browser: floor (Streamlit alone, same table)",
                "server_start_seconds": "server start until /_stcore/health answers"}  # fmt: skip
BROWSER_CPU = {"warm_browser_cpu_seconds": "warm visit: Chromium (all its processes)",
               "warm_server_cpu_seconds": "warm visit: the app's Streamlit server",
               "floor_browser_cpu_seconds": "floor visit: Chromium", "floor_server_cpu_seconds": "floor visit: Streamlit alone"}  # fmt: skip
# cProfile tables: (title, key in the profile, rows shown, row template); each row also has `share` of the run
PROFILE_TABLES = (
    ("SQL statement | count | seconds | share of the run", "statements", 6, "{kind} | {count:,} | {seconds:.2f} | {share}"),
    ("function in `core/` | calls | cumulative s | share", "top_cumulative_core", 10, "`{function}` | {calls:,} | {cumtime:.2f} | {share}"),
    ("function (anywhere) | calls | own s", "top_tottime", 8, "`{function}` | {calls:,} | {tottime:.2f}"),
)  # fmt: skip


def summarize(values: list[float]) -> dict[str, Any]:
    """Median, min and max of a series (the figures BENCHMARKS.md shows), plus the raw values."""
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values), "values": list(values)}  # fmt: skip


def rng(s: dict[str, Any] | None, digits: int = 0) -> str:
    """'median (min–max)' of a summary; '(1 run)' when there was one."""
    if not s or s["median"] is None:
        return "—"
    if s["n"] <= 1:
        return f"{s['median']:,.{digits}f} (1 run)"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def med(s: dict[str, Any] | None) -> float | None:
    return (s or {}).get("median")


def mib(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def ratio(r: float | None) -> str:  # three decimals below 1, so 0.495 does not read as a met 0.50 target
    return "—" if r is None else (f"{r:.3f}×" if r < 1 else f"{r:.2f}×")


def div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdict(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**missed**")


def table(header: str, rows: list[list[Any]] | list[str], right: int = 0) -> list[str]:
    """A Markdown table from its header ('a | b') and its rows, each a list of cells or a line already joined;
    the last `right` columns right-aligned."""
    n = len(header.split(" | "))
    lines = [f"| {header} |", "|" + "---|" * (n - right) + "---:|" * right]
    return lines + [f"| {r if isinstance(r, str) else ' | '.join(map(str, r))} |" for r in rows] + [""]


def anchor(title: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def measured(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A section that ran and measured: not missing, failed or skipped."""
    s = results.get(name)
    return s if s and not {"error", "skipped"} & s.keys() else None


# --------------------------------------------------------------------------- verdicts


# met is None for a figure shown beside the targets, with no target of its own
class Target(NamedTuple):
    what: str
    target: str
    measured: str
    met: bool | None


def ingest_cells(ing: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Each (database, size, approach) cell of the ingest runs: its runs and the summary of each figure."""
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in ing["runs"]:
        cells.setdefault((r["db"], r["size"], r["approach"] + (f" ({r['variant']})" if r.get("variant") else "")), []).append(r)  # fmt: skip
    return {(db, size, approach): {"runs": rs, **{k: summarize([r[k] for r in rs]) for k in ("activities_per_second", "cpu_seconds_per_1k", "wall_seconds")},
                                   "postgres_cpu_seconds_per_1k": summarize([r["postgres_cpu_seconds"] / (r["fetched"] / 1000) for r in rs])
                                   if db == "postgresql" else None}
            for (db, size, approach), rs in sorted(cells.items())}  # fmt: skip


def ingest_ratios(ing: dict[str, Any]) -> list[tuple[str, int, str, str, float | None, float]]:
    """(db, size, approach, versus, ratio, target): engine ÷ floor and ÷ guide medians, same size and database."""
    med_ = {key: c["activities_per_second"]["median"] for key, c in ingest_cells(ing).items()}
    return [(db, size, approach, versus, div(engine, med_[(db, size, versus)]), target)
            for db in ing["plan"]["dbs"]
            for (d, size, approach), engine in sorted(med_.items(), key=lambda kv: (kv[0][2] != "engine", kv[0][1]))
            if d == db and approach.startswith("engine")
            for versus, target in (("floor", T.ingest_vs_floor(db, size)), ("guide", T.INGEST_VS_GUIDE)) if (db, size, versus) in med_]  # fmt: skip


def memory_figures(m: dict[str, Any]) -> tuple[float | None, float, bool]:
    """(large ÷ small peak RSS, the large sync's peak, whether the memory target is met)."""
    peak = m["cells"][str(m["large"])]["peak_bytes"]
    r = div(peak, m["cells"][str(m["small"])]["peak_bytes"])
    return r, peak, T.memory_met(r, peak)


def pg_floor_detail(engine: dict[str, Any], floor: dict[str, Any]) -> str:
    """Beside a PostgreSQL floor verdict: both sides' CPU per 1,000 and, where the worker timed it, the ratio of
    the import alone (the run less what its journal step takes after the import)."""
    detail = (f" (CPU s per 1,000: {engine['cpu_seconds_per_1k']['median']:.3f} engine, "
              f"{floor['cpu_seconds_per_1k']['median']:.3f} floor")  # fmt: skip
    if all("import_activities_per_second" in e for e in engine["runs"]):
        alone = statistics.median(e["import_activities_per_second"] for e in engine["runs"])
        detail += f"; the import alone, without the journal's wait after it: {ratio(div(alone, med(floor['activities_per_second'])))}"
    return detail + ")"


def verdicts(results: dict[str, Any]) -> list[Target]:
    """Every target with its measured figure, each verdict computed here from the figures."""
    out = []
    cells = ingest_cells(ing) if (ing := measured(results, "ingest")) else {}
    for db, size, approach, versus, r, target in ingest_ratios(ing) if ing else []:
        name = approach.replace(" (", ", ").rstrip(")")  # "engine, no autoanalyze"
        what = f"Ingest, {name} ÷ {versus} throughput ({DB[db]}, {size:,} activities)"
        figure = ratio(r)
        if target == T.INGEST_PG_VS_FLOOR:  # the CPU beside it: what the COPY page writes were to save
            figure += pg_floor_detail(cells[(db, size, approach)], cells[(db, size, versus)])
        out.append(Target(what, f"≥ {target:g}×", figure, None if r is None else r >= target))
    for sc in req["scenarios"] if (req := measured(results, "requests")) else []:
        if sc["name"] == "scheduled sync, nothing new":
            total = sum(sc["requests"].values())
            what = "Requests, scheduled sync with nothing new (one connection)"
            out.append(Target(what, f"≤ {T.NOTHING_NEW_REQUESTS}", str(total), total <= T.NOTHING_NEW_REQUESTS))
    limit = f"≤ {T.MEMORY_RATIO}× and < {T.MEMORY_PEAK_BYTES / 1e6:,.0f} MB ({mib(T.MEMORY_PEAK_BYTES)})"
    for db, m in mem["by_db"].items() if (mem := measured(results, "memory")) else []:
        r, peak, met = memory_figures(m)
        what = f"Memory, peak RSS {m['large']:,} vs {m['small']:,} activities ({DB[db]})"
        out.append(Target(what, limit, f"{ratio(r)}, {mib(peak)}", met))
    for db, d in q["by_db"].items() if (q := measured(results, "queries")) else []:
        for label, u in d["users"].items():
            for group, title in QUERY_GROUPS.items():
                if ts := [(t, T.query_ms(group, t["name"])) for t in u["timings"] if t["group"] == group]:
                    worst, target = max(ts, key=lambda tt: tt[0]["p95_ms"] / tt[1])
                    what = f"{title}, worst p95 ({DB[db]}, {label} user, {u['rows']:,} rows)"
                    measured_ = f"{worst['p95_ms']:.1f} ms ({worst['name']})"
                    out.append(Target(what, f"≤ {target:g} ms", measured_, all(t["p95_ms"] <= ms for t, ms in ts)))
    b = measured(results, "browser") or {}
    for key, title in BROWSER_VISITS.items():
        if (m := med(b.get(key))) is not None:
            what = f"Browser, navigation → rendered table, {title} (median)"
            out.append(Target(what, f"≤ {T.BROWSER_SECONDS:g} s", f"{m:.2f} s", m <= T.BROWSER_SECONDS))
    for key, floor, what in (
        ("warm_seconds", "floor_table_seconds", "Browser, later visits ÷ Streamlit alone with the same table"),
        ("returning_seconds", "floor_returning_seconds", "Browser, returning browser ÷ Streamlit alone, also cached"),
    ):
        if (r := div(med(b.get(key)), med(b.get(floor)))) is not None:
            out.append(Target(what, "", f"{r:.2f}× ({med(b[floor]):.2f} s floor)", None))
    for name in OWN_SECTIONS:
        if data := measured(results, name):
            out += [Target(*v) for v in own(name, "verdicts")(data)]
    return out


# --------------------------------------------------------------------------- the report


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = ["# Benchmarks", "",
             f"Generated by `python -m bench` (`make bench`) from `{meta['results_file']}` (every single run included), "
             f"profile **{meta['profile']}**, started {meta['date']}. Do not edit by hand. What the benchmarks measure "
             f"and how to read them: [{DOCS}]({DOCS}).", ""]  # fmt: skip
    runs = ingest_runs(results)
    most = max(runs.values(), default=0)
    notes = [*meta["notes"], *(f"{size:,}-activity syncs: {n} run(s) per approach and database instead of {most}; their "
                               f"figures are {'single measurements, not medians.' if n == 1 else f'medians of {n}.'}"
                               for size, n in sorted(runs.items()) if n < most)]  # fmt: skip
    lines += [*(f"> {note}" for note in notes), *([""] if notes else []), "## Machine", "", *machine(meta)]
    found = verdicts(results)
    judged = [t for t in found if t.met is not None]
    missed = [t.what for t in judged if not t.met]
    summary = f"{len(judged) - len(missed)} of {len(judged)} targets met" + (f"; missed: {'; '.join(missed)}" if missed else "")  # fmt: skip
    lines += ["## Targets", "", summary + ".", ""]
    lines += table("what | target | measured | verdict", [[t.what, t.target, t.measured, verdict(t.met)] for t in found])  # fmt: skip
    for name, title in TITLES.items():
        if (data := results.get(name)) is None:
            continue
        link = f"{DOCS}#{anchor(title)}"
        lines += [f"## {title}", "", f"How it is measured and how to read it: [{link}]({link}).", ""]
        if "error" in data:
            lines += [f"Failed: `{data['error']}`", ""]
        elif "skipped" in data:
            lines += [f"Skipped: {data['skipped']}.", ""]
        else:
            lines += (SECTIONS.get(name) or own(name, "section"))(data, results)
    return "\n".join(lines + how(results)).rstrip() + "\n"


def ingest_runs(results: dict[str, Any]) -> dict[int, int]:
    """Runs per size from the ingest section's own plan, whatever invocation wrote the report last."""
    return {int(k): int(v) for k, v in ing["plan"]["runs"].items()} if (ing := measured(results, "ingest")) else {}


def commit(git: dict[str, Any], subject: bool = False) -> str:
    """The measured code: its commit, with the subject if asked, and the app's paths that were uncommitted."""
    dirty = ", ".join(f"`{d}`" for d in git["uncommitted"])
    return (f"commit `{git['head']}`" + (f" ({git['subject']})" if subject else "")
            + (f" plus uncommitted changes in {dirty}" if dirty else ""))  # fmt: skip


def machine(meta: dict[str, Any]) -> list[str]:
    pg = meta["postgresql"] or ("not used by this invocation" if meta.get("earlier_runs") else "not used")
    git, gib = meta["git"], {k: meta[f"mem_{k}_bytes"] / 2**30 for k in ("total", "available")}
    return table(" | ", [["CPU", f"{meta['cpu_model']}, {meta['cores']} cores available to the run"],
                         ["Memory", f"{gib['total']:,.1f} GiB total, {gib['available']:,.1f} GiB available at the start"],
                         ["Kernel", meta["kernel"]], ["Python / SQLite", f"{meta['python']} / {meta['sqlite']}"],
                         ["PostgreSQL", pg + (f" ({meta['postgresql_settings']})" if meta["postgresql_settings"] else "")],
                         ["SQLAlchemy / psycopg", f"{meta['sqlalchemy']} / {meta['psycopg']}"],
                         ["Load average (1, 5, 15 min)", f"start {meta['loadavg_start']}, end {meta.get('loadavg_end')}"],
                         *([["Code measured", commit(git, subject=True)]] if git["head"] else [])])  # fmt: skip


def ingest(ing: dict[str, Any], results: dict[str, Any]) -> list[str]:
    plan, cells = ing["plan"], ingest_cells(ing)
    lines = [f"Initial sync of one new connection (sandbox broker `{plan['broker']}`) into a fresh database.", ""]
    for db in plan["dbs"]:
        lines += [f"### {DB[db]}", "", *table(
            "activities | approach | activities/s, median (min–max) | CPU s per 1,000 (sync process) | DB server CPU s per 1,000 | wall s | runs",
            [[f"{size:,}", APPROACHES[approach], rng(c["activities_per_second"]), rng(c["cpu_seconds_per_1k"], 3),
              rng(c["postgres_cpu_seconds_per_1k"], 3) if db == "postgresql" else "in process", rng(c["wall_seconds"], 1),
              len(c["runs"])] for (d, size, approach), c in cells.items() if d == db])]  # fmt: skip

    def cpu(r: dict[str, Any], server: bool) -> float:
        return r["cpu_seconds_per_1k"]["median"] + ((med(r["postgres_cpu_seconds_per_1k"]) or 0) if server else 0)

    lines += ["### CPU per activity, other approach ÷ engine", "", *table(
        "database | activities | ratio | sync process | sync process + DB server",
        [[DB[db], f"{size:,}", f"{other} ÷ engine", *(ratio(div(cpu(o, s), cpu(r, s))) for s in (False, True))]
         for (db, size, approach), r in sorted(cells.items()) if approach == "engine"
         for other in ("floor", "guide") if (o := cells.get((db, size, other)))])]  # fmt: skip

    def share(rs: list[dict[str, Any]], prefix: str) -> str:
        s = sorted(sum(st["seconds"] for st in r["statements"] if st["kind"].startswith(prefix)) / r["wall_seconds"] for r in rs)  # fmt: skip
        return f"{100 * s[len(s) // 2]:.0f} % (max {100 * s[-1]:.0f} %)"

    lines += ["### Engine runs: share of wall time in the per-page bulk statements", "", *table(
        "database | activities | SELECT existing ids | INSERT … ON CONFLICT (PostgreSQL: with its COPY) | runs",
        [[DB[db] + approach[6:].replace(" (", ", ").rstrip(")"), f"{size:,}", share(c["runs"], "SELECT existing"),
          share(c["runs"], "INSERT … ON CONFLICT"), len(c["runs"])]
         for (db, size, approach), c in cells.items() if approach.startswith("engine")])]  # fmt: skip
    for db, p in ing["profiles"].items():
        prof, wall = p["profile"], p["wall_seconds"]
        lines += [f"### Under cProfile: {DB[db]}, {p['size']:,} activities, {wall:.1f} s wall", ""]
        for header, key, n, template in PROFILE_TABLES:
            whole = wall if key == "statements" else prof["total_seconds"]
            lines += table(header, [template.format(**r, share=f"{100 * r.get('seconds', r.get('cumtime', 0)) / whole:.0f} %")
                                    for r in (p if key == "statements" else prof)[key][:n]])  # fmt: skip
    return lines


def requests(req: dict[str, Any], results: dict[str, Any]) -> list[str]:
    cap = req["capacity"]
    return [f"One user, one connection (`{req['broker']}`, {req['accounts_per_connection']} accounts, "
            f"{req['history_size']:,} activities); {cap['limit_per_minute']} requests per minute are "
            f"{cap['requests_per_day']:,} a day.", "",
            *table("scenario | requests | by endpoint | engine's own count | activities fetched",
                   [[sc["name"], sum(sc["requests"].values()), ", ".join(f"`{k}` {v}" for k, v in sorted(sc["requests"].items())),
                     sc["engine_counted"], f"{sc['fetched']:,}"] for sc in req["scenarios"]]),
            *table("daily plan | requests per user per day | users per client id",
                   [[p["name"], n, f"{cap['requests_per_day']:,} ÷ {n} = **{p['users_per_day']:,}**" if n else "—"]
                    for p in cap["plans"] if (n := p["requests_per_user_day"]) is not None])]  # fmt: skip


def memory(mem: dict[str, Any], results: dict[str, Any]) -> list[str]:
    rows = []
    for db, m in mem["by_db"].items():
        small, samples = m["cells"][str(m["small"])], [rss for _, rss in m["cells"][str(m["large"])]["rss_per_page"]]
        r, peak, met = memory_figures(m)
        rows.append([DB[db], mib(small["before_run_bytes"]), mib(small["peak_bytes"]), mib(peak), ratio(r),
                     f"{mib(min(samples))} → {mib(max(samples))}" if samples else "—", verdict(met)])  # fmt: skip
    small, large = f"{m['small']:,}", f"{m['large']:,}"
    lines = table(
        f"database | RSS before the run | peak, {small} | peak, {large} | ratio | RSS during the {large} sync | verdict",
        rows,
    )
    for db, m in mem["by_db"].items():
        if tm := m.get("tracemalloc"):
            lines += [f"### tracemalloc: {DB[db]}, {tm['size']:,} activities: peak traced {mib(tm['peak'])}, "
                      f"held at the end {mib(tm['current'])}", "", *table("size growth | blocks | allocated at",
                      [[mib(t["size_diff"]), f"{t['count_diff']:,}", "<br>".join(f"`{f}`" for f in t["traceback"][:4])]
                       for t in tm["top"][:8]])]  # fmt: skip
    return lines


def queries(q: dict[str, Any], results: dict[str, Any]) -> list[str]:
    s, plans = q["seed"], []
    lines = [f"{s['users']} users × {s['rows_per_user']:,} transactions plus one user with {s['big_user_rows']:,} "
             f"({s['users'] * s['rows_per_user'] + s['big_user_rows']:,} rows); {q['reps']} timed calls per query.", ""]  # fmt: skip
    for db, d in q["by_db"].items():
        lines += [f"### {DB[db]} (seeded in {d['seed_seconds']:.0f} s)", ""]
        explain = "EXPLAIN (ANALYZE, BUFFERS)" if db == "postgresql" else "EXPLAIN QUERY PLAN"
        for label, u in d["users"].items():
            rows = []
            for t in u["timings"]:
                target = T.query_ms(t["group"], t["name"])
                rows.append(f"{t['group']} | {t['name']} | {t['p50_ms']:.1f} | {t['p95_ms']:.1f} | {t['max_ms']:.1f} | "
                            f"{target:g} | {verdict(t['p95_ms'] <= target)}")  # fmt: skip
                if t.get("plans"):
                    plans += [f"<details><summary>{DB[db]}, {label} user: {t['group']} <i>{t['name']}</i> "
                              f"(p95 {t['p95_ms']:.0f} ms, target {target:g})</summary>", "",
                              *(line for pl in t["plans"]
                                for line in (f"{pl['ms']:.1f} ms — `{pl['sql']}`", "", f"```text\n{explain}", *pl["plan"], "```", "")),
                              "</details>", ""]  # fmt: skip
            lines += [f"**{label.capitalize()} user** ({u['rows']:,} transactions), milliseconds:", ""]
            lines += table("group | query | p50 | p95 | max | target p95 | verdict", rows)
    return lines + (["### Query plans", "", *plans] if plans else [])


def browser(b: dict[str, Any], results: dict[str, Any]) -> list[str]:
    def row(key: str, label: str) -> list[str]:
        judged = (m := med(b.get(key))) is not None and key in BROWSER_VISITS
        return [label, rng(b.get(key), 1 if key == "server_start_seconds" else 2), f"≤ {T.BROWSER_SECONDS:g}" if key in BROWSER_VISITS else "",
                verdict(m <= T.BROWSER_SECONDS) if judged else ""]  # fmt: skip

    cpu = [[label, rng(b[key], 2)] for key, label in BROWSER_CPU.items() if med(b.get(key)) is not None]
    return [f"Heavy user ({b['rows']:,} transactions); {b['server_starts']} server start(s) × (1 cold + "
            f"{b['warm_visits_per_start']} warm visits); {b['cpus']} CPUs.", "",
            *table(" | seconds, median (min–max) | target | verdict", [r for r in map(row, BROWSER_ROWS, BROWSER_ROWS.values()) if r[1] != "—"]),
            *(table("CPU per visit | CPU s, median (min–max)", cpu) if cpu else [])]  # fmt: skip


def sandbox(s: dict[str, Any], results: dict[str, Any]) -> list[str]:
    b, ing = s["bytes_only"], measured(results, "ingest") or {"runs": []}
    rows = [[label, f"{c['activities_per_second_median']:,}", ", ".join(f"{x:,}" for x in c["activities_per_second_runs"]), size]
            for label, c, size in (("reads the bytes only", b, f"{b['page_bytes']:,} bytes"),
                                   ("also `json.loads` each page", s["client_parses_json"], ""))]  # fmt: skip
    lines = [f"{b['pages_per_run']} pages of 1,000 activities per run from a {b['history_size']:,}-activity account, "
             f"{b['runs']} runs.", "", *table("client | activities/s, median | runs | page size", rows)]  # fmt: skip
    against = [[f"bytes-only rate ÷ the fastest {a} run of section 1 ({best:,.0f}/s)", ratio(b["activities_per_second_median"] / best)]
               for a in ("engine", "floor")
               if (best := max((c["activities_per_second"]["max"] for k, c in ingest_cells(ing).items() if k[2] == a), default=None))]  # fmt: skip
    if engine := [r for r in ing["runs"] if r["approach"] == "engine"]:
        against += [["sandbox CPU s per 1,000 activities served, engine runs (median)",
                     f"{statistics.median_high([r['sandbox_cpu_seconds'] / (r['fetched'] / 1000) for r in engine]):.3f}"],
                    ["sync process CPU s per 1,000 activities, engine runs (median)",
                     f"{statistics.median_high([r['cpu_seconds_per_1k'] for r in engine]):.3f}"]]  # fmt: skip
    return lines + (table("against section 1 | ", against) if against else [])


SECTIONS = {"ingest": ingest, "requests": requests, "memory": memory, "queries": queries, "browser": browser,
            "sandbox": sandbox}  # fmt: skip
# the sections whose own module measures, judges and renders them: "module[.prefix]" of its section and verdicts
OWN_SECTIONS = {"journal": "journal", "growth": "growth", "onboarding": "fleet.onboarding_",
                "many_users": "fleet.many_users_", "concurrency": "sessions"}  # fmt: skip


def own(name: str, part: str) -> Any:
    """A section module's `section` or `verdicts`, imported when a report has that section (they import this one)."""
    module, _, prefix = OWN_SECTIONS[name].partition(".")
    return getattr(importlib.import_module(f"bench.{module}"), prefix + part)


def how(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    lines = ["## How this run was made", "", f"`{' '.join(['python -m bench', *meta['argv']])}`", ""]
    if runs := ingest_runs(results):  # each section's own record of how it was run: after `--only` they differ
        plan = results["ingest"]["plan"]
        lines.append(f"- Ingest runs per approach and database, by size: {', '.join(f'{k:,}: {v}' for k, v in runs.items())}; "
                     f"the guide at {plan['guide_size']:,} activities, {plan['guide_runs']} runs.")  # fmt: skip
    lines += ["", *table("benchmark | minutes | finished at (UTC)",
                         [[name, f"{results[name]['seconds'] / 60:.1f}", results[name].get("finished_at", "")]
                          for name in TITLES if name in results])]  # fmt: skip
    for earlier in meta.get("earlier_runs") or []:
        code = f", on {commit(git)}" if (git := earlier.get("git") or {}).get("head") else ""
        lines += [f"{', '.join(f'`{name}`' for name in earlier['sections'])}: from an earlier invocation, "
                  f"`{' '.join(['python -m bench', *earlier['argv']])}`, started {earlier['date']}{code}, which took "
                  f"{earlier['seconds'] / 60:.1f} minutes.", ""]  # fmt: skip
    return lines + [f"This invocation took {meta['seconds'] / 60:.1f} minutes."]
