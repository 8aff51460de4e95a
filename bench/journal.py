"""Benchmark 7 (issue 22): the trading journal on SQLite: full rebuild, upkeep after a sync's page, the Journal
page's queries, and a rebuild's peak RSS in a fresh interpreter. docs/PERFORMANCE.md §7."""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bench.harness import Run, percentile, run_json
from bench.report import summarize, table, verdict
from bench.seed import SeedPlan, insert_rows, seed, transactions
from bench.worker import proc_rss
from core.journal.marks import dirty_marks
from core.journal.upkeep import rebuild_user, upkeep_accounts
from core.storage.db import create_db_engine

TARGETS = {"rebuild_seconds": 2.0, "incremental_seconds": 0.1, "page_query_p95_seconds": 0.05, "rss_ratio": 1.5}
PAGE_ROWS = 1_000  # one page of activities (core.ingest.sync's page size)
SMALL_PAGE_ROWS = 50


def _insert_page(engine, seeded, rows: int, rng: random.Random, on: date | None, days: int = 3) -> None:
    """`rows` new activities, as a sync page would store them: all dated `on` (a day after everything stored:
    the daily sync), or, when None, within the history's last `days` days (backdated: their pairs rebuild)."""
    accounts = [(a, "USD" if k == 0 else "CAD") for k, a in enumerate(seeded.account_ids[seeded.big_user_id])]
    batch = [{**row, "trade_date": on or date.today() - timedelta(days=1 + rng.randrange(days)),
              "snaptrade_activity_id": f"bench-page-{rng.random():.12f}-{i}"}
             for i, row in enumerate(transactions(seeded.big_user_id, accounts, rows, rng, years=1))]  # fmt: skip
    insert_rows(engine, iter(batch))


def _page_queries(engine, user_id: int, reps: int) -> dict[str, Any]:
    """Every core.reads.journal call of one render, each with its own Session; the first pass warms up, dropped."""
    from core.reads import journal as jr  # not at the top: the rebuild's RSS worker (this module) does without it

    with Session(engine) as s:
        currency = (jr.journal_currencies(s, user_id) or [None])[0]
        first = jr.trip_table(s, user_id, jr.TripFilter(currency=currency), limit=1)
    trip_id = int(first["id"].iloc[0]) if not first.empty else 0
    calls = {
        "journal_currencies": lambda s: jr.journal_currencies(s, user_id),
        "summary_tiles": lambda s: jr.summary_tiles(s, user_id),
        "equity_curve": lambda s: jr.equity_curve(s, user_id, currency=currency),
        "daily_calendar (a month)": lambda s: jr.daily_calendar(
            s, user_id, currency=currency, year=date.today().year, month=date.today().month
        ),
        "breakdown by symbol": lambda s: jr.breakdown(s, user_id, currency=currency, by="symbol"),
        "breakdown by weekday": lambda s: jr.breakdown(s, user_id, currency=currency, by="weekday"),
        "breakdown by holding": lambda s: jr.breakdown(s, user_id, currency=currency, by="holding"),
        "trip_count": lambda s: jr.trip_count(s, user_id, jr.TripFilter(currency=currency)),
        "trip_table (first page, by date)": lambda s: jr.trip_table(
            s, user_id, jr.TripFilter(currency=currency), limit=jr.TRIPS_PER_PAGE
        ),
        "trip_fills": lambda s: jr.trip_fills(s, user_id, trip_id),
    }
    per: dict[str, list[float]] = {n: [] for n in calls}
    renders: list[float] = []
    for _ in range(reps + 1):
        for name, fn in calls.items():
            with Session(engine) as s:
                t0 = time.perf_counter()
                fn(s)
                per[name].append(time.perf_counter() - t0)
        renders.append(sum(times[-1] for times in per.values()))  # a whole render: its calls' sum

    def stats(values: list[float]) -> dict[str, Any]:
        return {**summarize(values[1:]), "p95": percentile(values[1:], 95)}

    out = {n: stats(v) for n, v in per.items()}
    return {"currency": currency, "queries": out, "render": stats(renders),
            "worst_query_p95": max(q["p95"] for q in out.values())}  # fmt: skip


def _rss_of_rebuild(url: str, user_id: int) -> dict[str, Any]:
    return run_json(["bench.journal", "rss", url, str(user_id)], timeout=3600)


def run(ctx: Run) -> dict[str, Any]:
    """Peak RSS compares a typical user's rebuild with five heavy users' (10,000 vs 1,000,000 in the full profile)."""
    dbs, plan, reps, progress = ctx.dbs, ctx.profile.seed, ctx.profile.query_reps, ctx.progress
    rss_sizes = (plan.rows_per_user or 1_000, 5 * plan.big_user_rows)
    out: dict[str, Any] = {"db": "sqlite", "rows": plan.big_user_rows, "reps": reps, "targets": TARGETS}
    progress(f"[bench] journal: seeding {plan.big_user_rows:,} activities ...")
    with dbs.fresh("sqlite") as (_, engine):
        seeded = seed(engine, SeedPlan(users=0, rows_per_user=0, big_user_rows=plan.big_user_rows))
        uid, accounts = seeded.big_user_id, seeded.account_ids[seeded.big_user_id]
        rebuilds = []
        for _ in range(max(1, min(reps, 5))):
            with Session(engine) as s:
                r = rebuild_user(s, uid)
            rebuilds.append(r.seconds)
        work = {"accounts": r.accounts, "pairs": r.pairs, "activities": r.activities}
        out["rebuild"] = {**summarize(rebuilds), "work": work}
        progress(f"[bench] journal: full rebuild median {out['rebuild']['median']:.3f} s")
        rng = random.Random(22)
        day = date.today()  # the seeded history ends yesterday: each daily page is a day after the last
        for key, rows in (("incremental_page", PAGE_ROWS), ("incremental_small", SMALL_PAGE_ROWS),
                          ("incremental_backdated", PAGE_ROWS)):  # fmt: skip
            times = []
            for _ in range(max(1, min(reps, 5))):
                _insert_page(engine, seeded, rows, rng, None if key == "incremental_backdated" else day)
                day += timedelta(days=1)
                with Session(engine) as s:
                    dirty = sum(len(dirty_marks(s, a)) for a in accounts)
                    r = upkeep_accounts(s, accounts)
                times.append(r.seconds)
                work = {"dirty_pairs": dirty, "pairs": r.pairs, "activities": r.activities, "continued": r.continued}
            out[key] = {**summarize(times), "rows": rows, "work": work}
            progress(f"[bench] journal: {key} ({rows} rows) median {out[key]['median'] * 1000:.1f} ms")
        out["page"] = _page_queries(engine, uid, reps)
        progress(f"[bench] journal: page worst query p95 {out['page']['worst_query_p95'] * 1000:.1f} ms")
    rss = {}
    for rows in rss_sizes:
        progress(f"[bench] journal: peak RSS of a {rows:,}-activity rebuild ...")
        with dbs.fresh("sqlite") as (url, engine):
            seeded = seed(engine, SeedPlan(users=0, rows_per_user=0, big_user_rows=rows))
            engine.dispose()  # the rebuild's own interpreter alone on the database
            rss[str(rows)] = _rss_of_rebuild(url, seeded.big_user_id)
    small, large = (rss[str(n)] for n in rss_sizes)
    out["rss"] = {"sizes": list(rss_sizes), "runs": rss, "ratio": large["peak_rss_bytes"] / small["peak_rss_bytes"]}
    return out


# --------------------------------------------------------------------------- report


def verdicts(j: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(what, target, measured, met) for the report's Targets table."""
    out = []
    if reb := j.get("rebuild"):
        out.append((f"journal full rebuild, {j['rows']:,} activities", "≤ 2 s", f"{reb['median']:.3f} s",
                    reb["median"] <= TARGETS["rebuild_seconds"]))  # fmt: skip
    if inc := j.get("incremental_page"):
        out.append((f"journal upkeep after a one-page sync ({inc['rows']:,} activities)", "≤ 100 ms",
                    f"{inc['median'] * 1000:.1f} ms", inc["median"] <= TARGETS["incremental_seconds"]))  # fmt: skip
    if page := j.get("page"):
        out.append(("Journal page queries, worst p95", "≤ 50 ms", f"{page['worst_query_p95'] * 1000:.1f} ms",
                    page["worst_query_p95"] <= TARGETS["page_query_p95_seconds"]))  # fmt: skip
    if rss := j.get("rss"):
        small, large = rss["sizes"]
        out.append((f"journal rebuild peak RSS, {large:,} vs {small:,} activities", "≤ 1.5×", f"{rss['ratio']:.2f}×",
                    rss["ratio"] <= TARGETS["rss_ratio"]))  # fmt: skip
    return out


def section(j: dict[str, Any], results: dict[str, Any]) -> list[str]:
    lines = [
        f"SQLite, heavy user of {j['rows']:,} seeded activities (bench.seed's random history), {j['reps']} repetitions.",
        "",
        *table("what | target | measured | verdict", [[w, t, m, verdict(ok)] for w, t, m, ok in verdicts(j)]),
    ]
    if reb := j.get("rebuild"):
        work = reb["work"]
        lines.append(f"- Full rebuild: median {reb['median']:.3f} s (min {reb['min']:.3f}, max {reb['max']:.3f}); "
                     f"{work['pairs']:,} pairs from {work['activities']:,} activities in {work['accounts']} accounts.")  # fmt: skip
    for key, what in (("incremental_page", "a day's"), ("incremental_small", "a day's"),
                      ("incremental_backdated", "backdated (within the history's last 3 days)")):  # fmt: skip
        if inc := j.get(key):
            w = inc["work"]
            continued = f" ({w['continued']} continued from their stored state)" if "continued" in w else ""
            lines.append(f"- Upkeep after {inc['rows']:,} {what} new activities: median {inc['median'] * 1000:.1f} ms "
                         f"(max {inc['max'] * 1000:.1f}); {w['dirty_pairs']} dirty pairs{continued}, "
                         f"{w['activities']:,} activities read.")  # fmt: skip
    if page := j.get("page"):
        ms = [[n, f"{q['median'] * 1000:.1f}", f"{q['p95'] * 1000:.1f}"] for n, q in page["queries"].items()]
        render = page["render"]
        ms.append(["**one whole render**", f"{render['median'] * 1000:.1f}", f"{render['p95'] * 1000:.1f}"])
        lines += ["", f"Journal page queries ({page['currency']}), each with its own Session:", "",
                  *table("query | p50 ms | p95 ms", ms, right=2)]  # fmt: skip
    if rss := j.get("rss"):
        lines += [*([""] if lines[-1] else []), "Peak RSS of a full rebuild in a fresh interpreter:", ""]
        for n, r in rss["runs"].items():
            lines.append(f"- {int(n):,} activities: peak {r['peak_rss_bytes'] / 2**20:.1f} MiB (before the rebuild "
                         f"{r['start_rss_bytes'] / 2**20:.1f} MiB), {r['seconds']:.2f} s")  # fmt: skip
    return lines + [""]


# --------------------------------------------------------------------------- rss worker


def _rss_main(url: str, user_id: int) -> None:
    engine = create_db_engine(url)
    with Session(engine) as s:  # imports and the engine's first connection before the baseline
        s.execute(sa.text("SELECT 1"))
    start = proc_rss("VmRSS")
    t0 = time.perf_counter()
    with Session(engine) as s:
        rebuild_user(s, user_id)
    seconds = time.perf_counter() - t0
    peak = proc_rss()  # VmHWM: ru_maxrss would carry over the parent's peak (the seeding bench process)
    print(json.dumps({"peak_rss_bytes": peak, "start_rss_bytes": start, "seconds": seconds}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "rss":
        _rss_main(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python -m bench.journal rss DATABASE_URL USER_ID")
