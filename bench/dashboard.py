"""Benchmark 4: p50/p95 of the dashboard's queries on a large seeded database; plans of the slowest."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

from bench import targets
from bench.harness import Run, percentile
from bench.seed import Seeded, seed
from core.reads import analytics as an
from core.reads import transactions as q
from core.reads.transactions import TransactionFilters as F
from core.reads.transactions import TransactionSort as S
from core.storage.db import create_db_engine


def calls(engine, seeded: Seeded, user_id: int) -> list[tuple[str, str, Callable[[Any], Any]]]:
    """(group, name, fn(session)) for every timed query of one user."""
    year_ago, out = date.today() - timedelta(days=365), []
    for name, filters, sort, page in (
        ("all, newest first, page 1", F(), S(), 1),
        ("all, by symbol A→Z, page 40", F(), S("symbol", False), 40),
        ("BUY+SELL in the last year, by amount", F(types=("BUY", "SELL"), date_from=year_ago), S("amount", True), 1),
        (f"symbol {seeded.top_symbol}, newest first", F(symbol=seeded.top_symbol), S(), 1),
        ("DIVIDEND in CAD, newest first", F(types=("DIVIDEND",), currencies=("CAD",)), S(), 1),
        ("description contains 'dividend'", F(text="dividend"), S(), 1),
    ):
        # The page hands transactions_page the counts it already has: the filtered count from the (memoized)
        # totals and the user's rows from data_version (timed on its own under "page load").
        with Session(engine) as s:
            total, user_rows = sum(t.count for t in q.transaction_totals(s, user_id, filters)), q.data_version(s, user_id)[0]  # fmt: skip
        out.append(("page", name, lambda s, f=filters, so=sort, p=page, n=total, u=user_rows:
                    q.transactions_page(s, user_id, f, so, p, 50, total=n, user_rows=u)))  # fmt: skip
        out.append(("totals", name, lambda s, f=filters: q.transaction_totals(s, user_id, f)))
    every = F()
    return [*out, ("page load", "data_version", lambda s: q.data_version(s, user_id)),
            ("page load", "filter_options", lambda s: q.filter_options(s, user_id)),
            ("analytics", "currencies_by_use", lambda s: an.currencies_by_use(s, user_id, every)),
            ("analytics", "monthly_cash_flow (USD)", lambda s: an.monthly_cash_flow(s, user_id, every, "USD")),
            ("analytics", "dividends_by_symbol (USD)", lambda s: an.dividends_by_symbol(s, user_id, every, "USD")),
            ("analytics", "monthly_fees (USD)", lambda s: an.monthly_fees(s, user_id, every, "USD")),
            ("analytics", "traded_value_by_symbol (USD)", lambda s: an.traded_value_by_symbol(s, user_id, every, "USD")),
            ("analytics", "activity_by_day", lambda s: an.activity_by_day(s, user_id, every))]  # fmt: skip


def explain(engine, fn: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """Each SELECT that one query function runs, re-executed on its own (its time) and explained."""
    captured: list[tuple[str, Any]] = []
    record = lambda conn, cursor, statement, params, context, many: captured.append((statement, params))  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as s:
            fn(s)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    pg, plans, raw = engine.dialect.name == "postgresql", [], engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, params in (c for c in captured if c[0].lstrip().upper().startswith("SELECT")):
            t0 = time.perf_counter()
            cur.execute(statement, params)
            cur.fetchall()
            ms = (time.perf_counter() - t0) * 1000
            cur.execute(("EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN ") + statement, params)
            lines = [str(r[0]) if pg else str(r[-1]) for r in cur.fetchall()]
            plans.append({"sql": " ".join(statement.split())[:400], "ms": ms, "plan": lines[:30]})
        cur.close()
    finally:
        raw.close()
    return plans


def time_user(engine, seeded: Seeded, user_id: int, reps: int) -> list[dict[str, Any]]:
    """Every query of one user after one warm-up call; the misses and the slowest relative to its target get plans."""
    out, fns = [], calls(engine, seeded, user_id)
    for group, name, fn in fns:
        samples = []
        for _ in range(reps + 1):  # the first call warms up: first compile of the statement, cold pages
            t0 = time.perf_counter()
            with Session(engine) as s:
                fn(s)
            samples.append((time.perf_counter() - t0) * 1000)
        samples = samples[1:]
        out.append({"group": group, "name": name, "p50_ms": percentile(samples, 50), "p95_ms": percentile(samples, 95),
                    "max_ms": max(samples), "samples_ms": [round(x, 2) for x in samples]})  # fmt: skip
    share = [t["p95_ms"] / targets.query_ms(t["group"], t["name"]) for t in out]
    for t, (_group, _name, fn), sh in zip(out, fns, share):
        if sh > 1 or sh == max(share):
            t["plans"] = explain(engine, fn)
    return out


def run(ctx: Run) -> dict[str, Any]:
    """Seed each database, time every query for the heavy and a typical user; keep the SQLite one for the browser."""
    plan, reps = ctx.profile.seed, ctx.profile.query_reps
    results: dict[str, Any] = {"seed": plan.__dict__, "reps": reps, "by_db": {}}
    for kind in ctx.profile.ingest.dbs:
        url = ctx.dbs.new(kind)
        engine = create_db_engine(url)
        try:
            t0 = time.perf_counter()
            seeded = seed(engine, plan)
            seed_s = time.perf_counter() - t0
            ctx.progress(f"  queries: seeded {seeded.rows:,} rows on {kind} in {seed_s:.0f} s")
            users = {"heavy": (seeded.big_user_id, plan.big_user_rows), "typical": (seeded.typical_user_id, plan.rows_per_user)}  # fmt: skip
            results["by_db"][kind] = {"seed_seconds": seed_s, "rows": seeded.rows, "top_symbol": seeded.top_symbol,
                                      "users": {label: {"user_id": uid, "rows": rows, "timings": time_user(engine, seeded, uid, reps)}
                                                for label, (uid, rows) in users.items()}}  # fmt: skip
        finally:
            engine.dispose()
            if kind == "sqlite" and "browser" in ctx.selected:
                ctx.shared["seeded_sqlite"] = (url, seeded)
            else:
                ctx.dbs.drop(url)
    return results
