"""Benchmark 4: the dashboard's queries on a large database (many users + one heavy user), on SQLite and
PostgreSQL: p50/p95 of the Transactions page query, its totals, its page-load queries and every Analytics
aggregation, each call with its own Session as the pages do (no st.cache_data).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from bench import targets
from bench.harness import Databases, percentile
from bench.seed import Seeded, SeedPlan, seed


def scenarios(seeded: Seeded) -> list[tuple[str, str, Any, Any, int]]:
    """(name, kind, filters, sort, page) for the Transactions page; kind 'page' pairs with 'totals'."""
    from core.reads.queries import TransactionFilters as F
    from core.reads.queries import TransactionSort as S

    year_ago = date.today() - timedelta(days=365)
    return [
        ("all, newest first, page 1", "page", F(), S(), 1),
        ("all, by symbol A→Z, page 40", "page", F(), S("symbol", False), 40),
        (
            "BUY+SELL in the last year, by amount",
            "page",
            F(types=("BUY", "SELL"), date_from=year_ago),
            S("amount", True),
            1,
        ),
        (f"symbol {seeded.top_symbol}, newest first", "page", F(symbol=seeded.top_symbol), S(), 1),
        ("DIVIDEND in CAD, newest first", "page", F(types=("DIVIDEND",), currencies=("CAD",)), S(), 1),
        ("description contains 'dividend'", "page", F(text="dividend"), S(), 1),
    ]


def _calls(engine, seeded: Seeded, user_id: int) -> list[tuple[str, str, Callable[[Any], Any]]]:
    """(group, name, fn(session)) for every timed query of one user."""
    from sqlmodel import Session

    from core.reads import analytics as an
    from core.reads import queries as q

    calls: list[tuple[str, str, Callable[[Any], Any]]] = []
    for name, _, filters, sort, page in scenarios(seeded):
        # The page hands transactions_page the counts it already has: the filtered count from the (memoized)
        # totals and the user's rows from data_version (timed on its own under "page load").
        with Session(engine) as s:
            total = sum(t.count for t in q.transaction_totals(s, user_id, filters))
            user_rows = q.data_version(s, user_id)[0]
        page_fn = lambda s, f=filters, so=sort, p=page, n=total, u=user_rows: q.transactions_page(  # noqa: E731
            s, user_id, f, so, p, 50, total=n, user_rows=u
        )
        calls.append(("page", name, page_fn))
        calls.append(("totals", name, lambda s, f=filters: q.transaction_totals(s, user_id, f)))
    F = q.TransactionFilters()
    calls += [
        ("page load", "data_version", lambda s: q.data_version(s, user_id)),
        ("page load", "filter_options", lambda s: q.filter_options(s, user_id)),
        ("analytics", "currencies_by_use", lambda s: an.currencies_by_use(s, user_id, F)),
        ("analytics", "monthly_cash_flow (USD)", lambda s: an.monthly_cash_flow(s, user_id, F, "USD")),
        ("analytics", "dividends_by_symbol (USD)", lambda s: an.dividends_by_symbol(s, user_id, F, "USD")),
        ("analytics", "monthly_fees (USD)", lambda s: an.monthly_fees(s, user_id, F, "USD")),
        ("analytics", "traded_value_by_symbol (USD)", lambda s: an.traded_value_by_symbol(s, user_id, F, "USD")),
        ("analytics", "activity_by_day", lambda s: an.activity_by_day(s, user_id, F)),
    ]
    return calls


def explain_call(engine, fn: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """Run one query function while recording its SQL, then show each SELECT's plan: EXPLAIN (ANALYZE, BUFFERS)
    on PostgreSQL, EXPLAIN QUERY PLAN on SQLite (plus its own time)."""
    from sqlalchemy import event
    from sqlmodel import Session

    captured: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as s:
            fn(s)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    pg = engine.dialect.name == "postgresql"
    plans = []
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, params in captured:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
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
    """Time every query of one user; the misses (and the slowest query relative to its target) get their plans."""
    from sqlmodel import Session

    out = []
    calls = _calls(engine, seeded, user_id)
    for group, name, fn in calls:
        with Session(engine) as s:  # warm-up: first compile of the statement, cold pages
            fn(s)
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            with Session(engine) as s:
                fn(s)
            samples.append((time.perf_counter() - t0) * 1000)
        p95 = percentile(samples, 95)
        out.append({"group": group, "name": name, "p50_ms": percentile(samples, 50), "p95_ms": p95,
                    "max_ms": max(samples), "samples_ms": [round(x, 2) for x in samples]})  # fmt: skip
    share = [t["p95_ms"] / targets.query_ms(t["group"], t["name"]) for t in out]
    for i, (_group, _name, fn) in enumerate(calls):
        if share[i] > 1 or share[i] == max(share):
            out[i]["plans"] = explain_call(engine, fn)
    return out


def run(dbs: Databases, plan: SeedPlan, reps: int, kinds: tuple[str, ...], progress=print,
        keep_sqlite: bool = False) -> dict[str, Any]:  # fmt: skip
    """Seed each database, time every query for the heavy and a typical user; optionally keep the SQLite file."""
    from core.storage.db import create_db_engine

    results: dict[str, Any] = {"seed": plan.__dict__, "reps": reps, "by_db": {}, "kept_sqlite": None}
    for kind in kinds:
        url = dbs.new(kind)
        engine = create_db_engine(url)
        try:
            t0 = time.perf_counter()
            seeded = seed(engine, plan)
            seed_s = time.perf_counter() - t0
            progress(f"  queries: seeded {seeded.rows:,} rows on {kind} in {seed_s:.0f} s")
            users = {
                "heavy": (seeded.big_user_id, plan.big_user_rows),
                "typical": (seeded.typical_user_id, plan.rows_per_user),
            }
            results["by_db"][kind] = {"seed_seconds": seed_s, "rows": seeded.rows, "top_symbol": seeded.top_symbol,
                                      "users": {label: {"user_id": uid, "rows": rows, "timings": time_user(engine, seeded, uid, reps)}
                                                for label, (uid, rows) in users.items()}}  # fmt: skip
        finally:
            engine.dispose()
            if keep_sqlite and kind == "sqlite":
                results["kept_sqlite"] = (url, seeded)
            else:
                dbs.drop(url)
    return results
