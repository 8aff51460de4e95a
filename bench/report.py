"""Renders BENCHMARKS.md from bench/results.json: tables of the measured figures and a verdict per target.
What each figure means and how it is measured is written by hand in docs/PERFORMANCE.md, linked per section.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any

from bench import targets as T

DOCS = "docs/PERFORMANCE.md"
DB = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
TITLES = {"ingest": "1. Ingest throughput", "requests": "2. Request budget", "memory": "3. Memory",
          "queries": "4. Dashboard queries", "browser": "5. In the browser", "sandbox": "6. Sandbox speed"}  # fmt: skip
APPROACHES = {"engine": "engine (`core.ingest.sync`)", "floor": "floor (plain HTTP + bulk INSERT)",
              "guide": "guide (row-by-row upsert)", "engine (no autoanalyze)": "engine, no autoanalyze during the sync"}  # fmt: skip
QUERY_GROUPS = {"page": "Transactions page query", "totals": "Transactions totals",
                "page load": "Transactions page-load queries", "analytics": "Analytics aggregations"}  # fmt: skip
BROWSER_VISITS = {"cold_seconds": "first visit after server start", "warm_seconds": "later visits",
                  "returning_seconds": "later visits, returning browser (Streamlit's scripts cached)"}  # fmt: skip


def _n(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _range(s: dict[str, Any] | None, digits: int = 0) -> str:
    """'median (min–max)' of a summary; '(1 run)' when there was one."""
    if not s or s.get("median") is None:
        return "—"
    if s.get("n", 1) <= 1:
        return f"{s['median']:,.{digits}f} (1 run)"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def _median(s: dict[str, Any] | None) -> float | None:
    return (s or {}).get("median")


def _mib(b: float | None) -> str:
    return "—" if b is None else f"{b / 2**20:,.0f} MiB"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %"


def _ratio(r: float | None) -> str:
    # three decimals below 1, so 0.495 does not read as a met 0.50 target
    return "—" if r is None else (f"{r:.3f}×" if r < 1 else f"{r:.2f}×")


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**missed**")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def anchor(title: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# --------------------------------------------------------------------------- verdicts


@dataclass
class Target:
    what: str
    target: str
    measured: str
    met: bool | None  # None: a figure shown beside the targets, with none of its own


def ingest_ratios(ing: dict[str, Any]) -> list[tuple[str, int, str, str, float | None, float]]:
    """(db, size, engine label, versus, ratio, target) from the medians: each engine cell ÷ the floor
    and ÷ the guide measured at the same size on the same database."""
    med = {(r["db"], r["size"], r["approach"]): r["activities_per_second"]["median"]
           for r in (ing.get("summary") or {}).get("table", [])}  # fmt: skip
    out = []
    for db in (ing.get("plan") or {}).get("dbs", DB):
        for (d, size, approach), engine in sorted(med.items(), key=lambda kv: (kv[0][2] != "engine", kv[0][1])):
            if d != db or not approach.startswith("engine"):
                continue
            for versus, target in (("floor", T.INGEST_VS_FLOOR), ("guide", T.INGEST_VS_GUIDE)):
                if (db, size, versus) in med:
                    label = approach.replace(" (", ", ").rstrip(")")
                    out.append((db, size, label, versus, _div(engine, med[(db, size, versus)]), target))
    return out


def memory_figures(m: dict[str, Any]) -> tuple[float | None, float, bool]:
    """(large ÷ small peak RSS, the large sync's peak, whether the memory target is met)."""
    peak = m["cells"][str(m["large"])]["peak_bytes"]
    ratio = _div(peak, m["cells"][str(m["small"])]["peak_bytes"])
    return ratio, peak, T.memory_met(ratio, peak)


def verdicts(results: dict[str, Any]) -> list[Target]:
    """Every target with its measured figure, each verdict computed here from the figures."""
    out = []
    for db, size, label, versus, r, target in ingest_ratios(results.get("ingest") or {}):
        what = f"Ingest, {label} ÷ {versus} throughput ({DB[db]}, {size:,} activities)"
        out.append(Target(what, f"≥ {target:g}×", _ratio(r), None if r is None else r >= target))
    for sc in (results.get("requests") or {}).get("scenarios", []):
        if sc["name"] == "scheduled sync, nothing new":
            total = sum(sc["requests"].values())
            what = "Requests, scheduled sync with nothing new (one connection)"
            out.append(Target(what, f"≤ {T.NOTHING_NEW_REQUESTS}", str(total), total <= T.NOTHING_NEW_REQUESTS))
    limit = f"≤ {T.MEMORY_RATIO}× and < {T.MEMORY_PEAK_BYTES / 1e6:,.0f} MB ({_mib(T.MEMORY_PEAK_BYTES)})"
    for db, m in ((results.get("memory") or {}).get("by_db") or {}).items():
        r, peak, met = memory_figures(m)
        what = f"Memory, peak RSS {m['large']:,} vs {m['small']:,} activities ({DB[db]})"
        out.append(Target(what, limit, f"{_ratio(r)}, {_mib(peak)}", met))
    for db, d in ((results.get("queries") or {}).get("by_db") or {}).items():
        for label, u in d["users"].items():
            for group, title in QUERY_GROUPS.items():
                ts = [(t, T.query_ms(group, t["name"])) for t in u["timings"] if t["group"] == group]
                if ts:
                    worst, target = max(ts, key=lambda tt: tt[0]["p95_ms"] / tt[1])
                    what = f"{title}, worst p95 ({DB[db]}, {label} user, {u['rows']:,} rows)"
                    measured = f"{worst['p95_ms']:.1f} ms ({worst['name']})"
                    out.append(Target(what, f"≤ {target:g} ms", measured, all(t["p95_ms"] <= ms for t, ms in ts)))
    b = results.get("browser") or {}
    for key, title in BROWSER_VISITS.items():
        if (med := _median(b.get(key))) is not None:
            what = f"Browser, navigation → rendered table, {title} (median)"
            out.append(Target(what, f"≤ {T.BROWSER_SECONDS:g} s", f"{med:.2f} s", med <= T.BROWSER_SECONDS))
    for key, floor, what in (
        ("warm_seconds", "floor_table_seconds", "Browser, later visits ÷ Streamlit alone with the same table"),
        ("returning_seconds", "floor_returning_seconds", "Browser, returning browser ÷ Streamlit alone, also cached"),
    ):
        if (r := _div(_median(b.get(key)), _median(b.get(floor)))) is not None:
            out.append(Target(what, "", f"{r:.2f}× ({_median(b[floor]):.2f} s floor)", None))
    return out


# --------------------------------------------------------------------------- the report


def render(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    lines = ["# Benchmarks", "",
             f"Generated by `python -m bench` (`make bench`) from `{meta.get('results_file', 'bench/results.json')}` "
             f"(every single run included), profile **{meta.get('profile', '?')}**, started {meta.get('date', '?')}. "
             f"Do not edit by hand. What the benchmarks measure and how to read them: [{DOCS}]({DOCS}).", ""]  # fmt: skip
    notes = [*(meta.get("notes") or []), *_fewer_runs(results.get("ingest"))]
    lines += [*(f"> {note}" for note in notes), *([""] if notes else [])]
    lines += ["## Machine", "", *_machine(meta)]
    found = verdicts(results)
    judged = [t for t in found if t.met is not None]
    missed = [t.what for t in judged if not t.met]
    summary = f"{len(judged) - len(missed)} of {len(judged)} targets met" + (
        f"; missed: {'; '.join(missed)}" if missed else ""
    )
    lines += ["## Targets", "", summary + ".", ""]
    lines += _table(
        ["what", "target", "measured", "verdict"], [[t.what, t.target, t.measured, _verdict(t.met)] for t in found]
    )
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
            lines += SECTIONS[name](data, results)
    lines += _how(results)
    return "\n".join(lines).rstrip() + "\n"


def _ingest_runs(ing: dict[str, Any] | None) -> dict[int, int]:
    """Runs per size from the ingest section's own plan, whatever invocation wrote the report last."""
    return {int(k): int(v) for k, v in (((ing or {}).get("plan") or {}).get("runs") or {}).items()}


def _fewer_runs(ing: dict[str, Any] | None) -> list[str]:
    runs = _ingest_runs(ing)
    most = max(runs.values(), default=0)
    return [f"{size:,}-activity syncs: {n} run(s) per approach and database instead of {most}; their figures are "
            + ("single measurements, not medians." if n == 1 else f"medians of {n}.")
            for size, n in sorted(runs.items()) if n < most]  # fmt: skip


def _machine(meta: dict[str, Any]) -> list[str]:
    total, available = ((meta.get(k) or 0) / 2**30 for k in ("mem_total_bytes", "mem_available_bytes"))
    pg = meta.get("postgresql") or ("not used by this invocation" if meta.get("earlier_runs") else "not used")
    rows = [["CPU", f"{meta.get('cpu_model', '?')}, {meta.get('cores', '?')} cores available to the run"],
            ["Memory", f"{total:,.1f} GiB total, {available:,.1f} GiB available at the start"],
            ["Kernel", meta.get("kernel", "?")],
            ["Python / SQLite", f"{meta.get('python', '?')} / {meta.get('sqlite', '?')}"],
            ["PostgreSQL", pg + (f" ({meta['postgresql_settings']})" if meta.get("postgresql_settings") else "")],
            ["SQLAlchemy / psycopg", f"{meta.get('sqlalchemy', '?')} / {meta.get('psycopg', '?')}"],
            ["Load average (1, 5, 15 min)", f"start {meta.get('loadavg_start')}, end {meta.get('loadavg_end')}"]]  # fmt: skip
    if (git := meta.get("git") or {}).get("head"):
        dirty = ", ".join(f"`{d}`" for d in git.get("uncommitted") or [])
        code = f"commit `{git['head']}` ({git.get('subject', '')})" + (
            f" plus uncommitted changes in {dirty}" if dirty else ""
        )
        rows.append(["Code measured", code])
    return _table(["", ""], rows)


def _ingest(ing: dict[str, Any], results: dict[str, Any]) -> list[str]:
    plan, table = ing["plan"], ing["summary"]["table"]
    lines = [f"Initial sync of one new connection (sandbox broker `{plan['broker']}`) into a fresh database.", ""]
    for db in plan["dbs"]:
        rows = [[f"{r['size']:,}", APPROACHES.get(r["approach"], r["approach"]), _range(r["activities_per_second"]),
                 _range(r["cpu_seconds_per_1k"], 3),
                 _range(r["postgres_cpu_seconds_per_1k"], 3) if db == "postgresql" else "in process",
                 _range(r["wall_seconds"], 1), r["activities_per_second"]["n"]] for r in table if r["db"] == db]  # fmt: skip
        lines += [f"### {DB[db]}", ""]
        lines += _table(["activities", "approach", "activities/s, median (min–max)", "CPU s per 1,000 (sync process)",
                         "DB server CPU s per 1,000", "wall s", "runs"], rows)  # fmt: skip

    def cpu(r: dict[str, Any], server: bool) -> float:
        return r["cpu_seconds_per_1k"]["median"] + (
            (_median(r.get("postgres_cpu_seconds_per_1k")) or 0) if server else 0
        )

    cells = {(r["db"], r["size"], r["approach"]): r for r in table}
    rows = [[DB[db], f"{size:,}", f"{other} ÷ engine", *(_ratio(_div(cpu(o, s), cpu(r, s))) for s in (False, True))]
            for (db, size, approach), r in sorted(cells.items()) if approach == "engine"
            for other in ("floor", "guide") if (o := cells.get((db, size, other)))]  # fmt: skip
    lines += ["### CPU per activity, other approach ÷ engine", ""]
    lines += _table(["database", "activities", "ratio", "sync process", "sync process + DB server"], rows)
    lines += _sql_shares(ing.get("runs", []))
    for db, p in (ing.get("profiles") or {}).items():
        prof, wall = p["profile"], p["wall_seconds"]
        lines += [f"### Under cProfile: {DB[db]}, {p['size']:,} activities, {wall:.1f} s wall", ""]
        lines += _table(["SQL statement", "count", "seconds", "share of the run"],
                        [[s["kind"], f"{s['count']:,}", f"{s['seconds']:.2f}", _pct(s["seconds"], wall)]
                         for s in prof["statements"][:6]])  # fmt: skip
        lines += _table(["function in `core/`", "calls", "cumulative s", "share"],
                        [[f"`{r['function']}`", f"{r['calls']:,}", f"{r['cumtime']:.2f}", _pct(r["cumtime"], prof["total_seconds"])]
                         for r in prof["top_cumulative_core"][:10]])  # fmt: skip
        lines += _table(["function (anywhere)", "calls", "own s"],
                        [[f"`{r['function']}`", f"{r['calls']:,}", f"{r['tottime']:.2f}"] for r in prof["top_tottime"][:8]])  # fmt: skip
    return lines


def _sql_shares(runs: list[dict[str, Any]]) -> list[str]:
    """Share of each engine run's wall time spent in its two per-page bulk statements: median and worst run."""
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in runs:
        if r["approach"] == "engine" and r.get("statements"):
            cells.setdefault((r["db"], r["size"], r.get("variant") or ""), []).append(r)

    def share(rs: list[dict[str, Any]], prefix: str) -> str:
        s = sorted(sum(st["seconds"] for st in r["statements"] if st["kind"].startswith(prefix)) / r["wall_seconds"]
                   for r in rs)  # fmt: skip
        return f"{100 * s[len(s) // 2]:.0f} % (max {100 * s[-1]:.0f} %)"

    rows = [[DB[db] + (f", {variant}" if variant else ""), f"{size:,}", share(rs, "SELECT existing"),
             share(rs, "INSERT … ON CONFLICT"), len(rs)] for (db, size, variant), rs in sorted(cells.items())]  # fmt: skip
    if not rows:
        return []
    return ["### Engine runs: share of wall time in the per-page bulk statements", "",
            *_table(["database", "activities", "SELECT existing ids", "INSERT … ON CONFLICT", "runs"], rows)]  # fmt: skip


def _requests(req: dict[str, Any], results: dict[str, Any]) -> list[str]:
    cap = req["capacity"]
    rows = [[sc["name"], sum(sc["requests"].values()), ", ".join(f"`{k}` {v}" for k, v in sorted(sc["requests"].items())),
             sc.get("engine_counted", "—"), _n(sc.get("fetched"))] for sc in req["scenarios"]]  # fmt: skip
    plans = [[p["name"], n, f"{cap['requests_per_day']:,} ÷ {n} = **{p['users_per_day']:,}**" if n else "—"]
             for p in cap["plans"] if (n := p["requests_per_user_day"]) is not None]  # fmt: skip
    return [f"One user, one connection (`{req['broker']}`, {req['accounts_per_connection']} accounts, "
            f"{req['history_size']:,} activities); {cap['limit_per_minute']} requests per minute are "
            f"{cap['requests_per_day']:,} a day.", "",
            *_table(["scenario", "requests", "by endpoint", "engine's own count", "activities fetched"], rows),
            *_table(["daily plan", "requests per user per day", "users per client id"], plans)]  # fmt: skip


def _memory(mem: dict[str, Any], results: dict[str, Any]) -> list[str]:
    rows = []
    for db, m in mem["by_db"].items():
        small, large = m["cells"][str(m["small"])], m["cells"][str(m["large"])]
        samples = [rss for _, rss in large.get("rss_per_page") or []]
        r, peak, met = memory_figures(m)
        rows.append([DB[db], _mib(small["before_run_bytes"]), _mib(small["peak_bytes"]), _mib(peak), _ratio(r),
                     f"{_mib(min(samples))} → {_mib(max(samples))}" if samples else "—", _verdict(met)])  # fmt: skip
    m = next(iter(mem["by_db"].values()))
    lines = _table(["database", "RSS before the run", f"peak, {m['small']:,}", f"peak, {m['large']:,}", "ratio",
                    f"RSS during the {m['large']:,} sync", "verdict"], rows)  # fmt: skip
    for db, m in mem["by_db"].items():
        if tm := m.get("tracemalloc"):
            lines += [f"### tracemalloc: {DB[db]}, {tm['size']:,} activities: peak traced {_mib(tm['peak'])}, "
                      f"held at the end {_mib(tm['current'])}", ""]  # fmt: skip
            lines += _table(["size growth", "blocks", "allocated at"],
                            [[_mib(t["size_diff"]), f"{t['count_diff']:,}", "<br>".join(f"`{f}`" for f in t["traceback"][:4])]
                             for t in tm["top"][:8]])  # fmt: skip
    return lines


def _queries(q: dict[str, Any], results: dict[str, Any]) -> list[str]:
    s = q["seed"]
    rows_total = s["users"] * s["rows_per_user"] + s["big_user_rows"]
    lines = [f"{s['users']} users × {s['rows_per_user']:,} transactions plus one user with {s['big_user_rows']:,} "
             f"({rows_total:,} rows); {q['reps']} timed calls per query.", ""]  # fmt: skip
    plans = []
    for db, d in q["by_db"].items():
        lines += [f"### {DB[db]} (seeded in {d['seed_seconds']:.0f} s)", ""]
        explain = "EXPLAIN (ANALYZE, BUFFERS)" if db == "postgresql" else "EXPLAIN QUERY PLAN"
        for label, u in d["users"].items():
            rows = []
            for t in u["timings"]:
                target = T.query_ms(t["group"], t["name"])
                rows.append([t["group"], t["name"], f"{t['p50_ms']:.1f}", f"{t['p95_ms']:.1f}", f"{t['max_ms']:.1f}",
                             f"{target:g}", _verdict(t["p95_ms"] <= target)])  # fmt: skip
                if t.get("plans"):
                    plans += [f"<details><summary>{DB[db]}, {label} user: {t['group']} <i>{t['name']}</i> "
                              f"(p95 {t['p95_ms']:.0f} ms, target {target:g})</summary>", ""]  # fmt: skip
                    for pl in t["plans"]:
                        plans += [
                            f"{pl['ms']:.1f} ms — `{pl['sql']}`",
                            "",
                            f"```text\n{explain}",
                            *pl["plan"],
                            "```",
                            "",
                        ]
                    plans += ["</details>", ""]
            lines += [f"**{label.capitalize()} user** ({u['rows']:,} transactions), milliseconds:", ""]
            lines += _table(["group", "query", "p50", "p95", "max", "target p95", "verdict"], rows)
    return lines + (["### Query plans", "", *plans] if plans else [])


def _browser(b: dict[str, Any], results: dict[str, Any]) -> list[str]:
    def row(label: str, key: str, digits: int = 2) -> list[str]:
        med, judged = _median(b.get(key)), key in BROWSER_VISITS
        verdict = _verdict(med <= T.BROWSER_SECONDS) if judged and med is not None else ""
        return [label, _range(b.get(key), digits), f"≤ {T.BROWSER_SECONDS:g}" if judged else "", verdict]

    rows = [row("cold: first visit after server start", "cold_seconds"),
            row("warm: later visits, table rendered", "warm_seconds"),
            row("warm: page title visible (app shell + login)", "warm_title_seconds"),
            row("floor: Streamlit alone, title + caption + 50-row `st.dataframe`", "floor_table_seconds"),
            row("floor: Streamlit alone, title + caption (the shell, no table)", "floor_shell_seconds"),
            row("returning browser: later visits, table rendered", "returning_seconds"),
            row("returning browser: floor (Streamlit alone, same table)", "floor_returning_seconds"),
            row("server start until /_stcore/health answers", "server_start_seconds", 1)]  # fmt: skip
    cpu = [[label, _range(b.get(key), 2)] for label, key in (
        ("warm visit: Chromium (all its processes)", "warm_browser_cpu_seconds"),
        ("warm visit: the app's Streamlit server", "warm_server_cpu_seconds"),
        ("floor visit: Chromium", "floor_browser_cpu_seconds"),
        ("floor visit: Streamlit alone", "floor_server_cpu_seconds")) if _median(b.get(key)) is not None]  # fmt: skip
    return [f"Heavy user ({b['rows']:,} transactions); {b['server_starts']} server start(s) × (1 cold + "
            f"{b['warm_visits_per_start']} warm visits); {b.get('cpus', '?')} CPUs.", "",
            *_table(["", "seconds, median (min–max)", "target", "verdict"], [r for r in rows if r[1] != "—"]),
            *(_table(["CPU per visit", "CPU s, median (min–max)"], cpu) if cpu else [])]  # fmt: skip


def _sandbox(s: dict[str, Any], results: dict[str, Any]) -> list[str]:
    rows = [[label, f"{c['activities_per_second_median']:,}", ", ".join(f"{x:,}" for x in c["activities_per_second_runs"]),
             size] for label, c, size in (("reads the bytes only", s["bytes_only"], f"{s['bytes_only']['page_bytes']:,} bytes"),
                                          ("also `json.loads` each page", s["client_parses_json"], ""))]  # fmt: skip
    b = s["bytes_only"]
    lines = [f"{b['pages_per_run']} pages of 1,000 activities per run from a {b['history_size']:,}-activity account, "
             f"{b['runs']} runs.", "", *_table(["client", "activities/s, median", "runs", "page size"], rows)]  # fmt: skip
    ing = results.get("ingest") or {}
    table, runs = (
        (ing.get("summary") or {}).get("table", []),
        [r for r in ing.get("runs", []) if r["approach"] == "engine"],
    )
    rows = []
    for a in ("engine", "floor"):
        if best := max((r["activities_per_second"]["max"] for r in table if r["approach"] == a), default=None):
            rows.append([f"bytes-only rate ÷ the fastest {a} run of section 1 ({best:,.0f}/s)",
                         _ratio(b["activities_per_second_median"] / best)])  # fmt: skip
    served = [
        r["sandbox_cpu_seconds"] / (r["fetched"] / 1000) for r in runs if r.get("sandbox_cpu_seconds") is not None
    ]
    if served:
        rows += [["sandbox CPU s per 1,000 activities served, engine runs (median)", f"{statistics.median_high(served):.3f}"],
                 ["sync process CPU s per 1,000 activities, engine runs (median)",
                  f"{statistics.median_high([r['cpu_seconds_per_1k'] for r in runs]):.3f}"]]  # fmt: skip
    return lines + (_table(["against section 1", ""], rows) if rows else [])


SECTIONS = {"ingest": _ingest, "requests": _requests, "memory": _memory, "queries": _queries, "browser": _browser,
            "sandbox": _sandbox}  # fmt: skip


def _how(results: dict[str, Any]) -> list[str]:
    meta = results.get("meta", {})
    # Each section's own record of how it was run: after `--only` the invocation writing the report differs.
    ing, qs, br, sb = (results.get(n) or {} for n in ("ingest", "queries", "browser", "sandbox"))
    lines = ["## How this run was made", "", f"`{' '.join(['python -m bench', *(meta.get('argv') or [])])}`", ""]
    if runs := _ingest_runs(ing):
        lines.append(f"- Ingest runs per approach and database, by size: {', '.join(f'{k:,}: {v}' for k, v in runs.items())}; "
                     f"the guide at {ing['plan']['guide_size']:,} activities, {ing['plan']['guide_runs']} runs.")  # fmt: skip
    if qs.get("reps"):
        lines.append(f"- Queries: {qs['reps']} timed calls per query.")
    if br.get("server_starts"):
        lines.append(
            f"- Browser: {br['server_starts']} server start(s) × (1 cold + {br['warm_visits_per_start']} warm) visits."
        )
    if sb.get("bytes_only"):
        lines.append(f"- Sandbox: {sb['bytes_only']['runs']} runs.")
    lines += ["", *_table(["benchmark", "minutes", "finished at (UTC)"],
                          [[name, f"{(results[name].get('seconds') or 0) / 60:.1f}", results[name].get("finished_at", "")]
                           for name in TITLES if name in results])]  # fmt: skip
    for earlier in meta.get("earlier_runs") or []:
        sections = ", ".join(f"`{name}`" for name in earlier.get("sections") or [])
        command = " ".join(["python -m bench", *(earlier.get("argv") or [])])
        lines += [f"{sections}: from an earlier invocation, `{command}`, started {earlier.get('date')}, which took "
                  f"{(earlier.get('seconds') or 0) / 60:.1f} minutes.", ""]  # fmt: skip
    return lines + [f"This invocation took {(meta.get('seconds') or 0) / 60:.1f} minutes."]
