"""Benchmark 8 (issue 25): history growth. The same no-change fetching sync against 10,000, 100,000 and 1,000,000
stored activities must cost what its pages cost, not what the history costs. docs/PERFORMANCE.md §8."""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bench.harness import Run
from bench.ingest import new_trader
from bench.report import DB, summarize, table
from bench.seed import T, insert_rows, transactions
from bench.worker import timed_statements
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.storage.models import BrokerageAccount

TARGET_RATIO = 1.3  # the largest history's median ÷ the smallest's, at most
SERVED_PER_ACCOUNT = 300  # the sandbox's history per account: the window the sync fetches


def _sync(engine, user_id: int, connection_id: int, trigger: str, hint: bool) -> tuple[float, Any, dict[str, Any]]:
    """One run of the connection; with `hint`, the accounts' webhook hint set first so the window is fetched.
    Returns its wall seconds, the finished run, and its SQL statements' count and seconds."""
    with Session(engine, expire_on_commit=False) as s:
        if hint:
            s.exec(sa.update(BrokerageAccount).where(BrokerageAccount.connection_id == connection_id)
                   .values(has_pending_hint=True))  # fmt: skip
            s.commit()
        run, _ = jobs.enqueue_sync(s, user_id=user_id, connection_id=connection_id, trigger=trigger)
        jobs.claim_run(s, run.id, "bench")
    with timed_statements(engine, lambda *_: "all") as sql:
        t0 = time.perf_counter()
        done = execute_run(run.id, engine=engine)
        seconds = time.perf_counter() - t0
    sql_seconds, statements = sql.get("all", (0.0, 0))
    return seconds, done, {"statements": statements, "seconds": sql_seconds}


def _seeded(ctx: Run, stack: contextlib.ExitStack, kind: str, size: int) -> dict[str, Any]:
    """A fresh database, dropped as `stack` closes, whose trader holds `size` activities, synced and warmed up."""
    _, engine = stack.enter_context(ctx.dbs.fresh(kind))
    with Session(engine, expire_on_commit=False) as s:
        _, conn, accounts, _ = new_trader(s, ctx.sandbox, f"growth-{kind}-{time.monotonic_ns()}", SERVED_PER_ACCOUNT)
        user_id, connection_id, accounts = conn.user_id, conn.id, [(a.id, a.currency or "USD") for a in accounts]
    _sync(engine, user_id, connection_id, "initial", hint=False)
    with engine.connect() as c:
        served = c.execute(sa.select(sa.func.count()).select_from(T).where(T.c.user_id == user_id)).scalar_one()
    older = max(0, size - served)  # written in bulk, then ANALYZE as a live database has
    insert_rows(engine, transactions(user_id, accounts, older, random.Random(f"growth/{older}"), years=6))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    _sync(engine, user_id, connection_id, "webhook", hint=True)  # warm-up, dropped
    return {"engine": engine, "user_id": user_id, "connection_id": connection_id, "size": size,
            "times": [], "runs": []}  # fmt: skip


def measure_db(ctx: Run, kind: str, sizes: tuple[int, ...], reps: int) -> list[dict[str, Any]]:
    """Every size seeded first, then the sizes measured in turn, run by run, so a drift in load hits all alike."""
    cells = []
    with contextlib.ExitStack() as stack:
        for size in sizes:
            ctx.progress(f"[bench] growth: {kind}, seeding {size:,} stored activities ...")
            cells.append(_seeded(ctx, stack, kind, size))
        for _ in range(reps):
            for cell in cells:
                seconds, done, sql = _sync(cell["engine"], cell["user_id"], cell["connection_id"], "webhook", hint=True)
                if done.status != "completed" or done.transactions_fetched == 0 or done.transactions_new:
                    raise RuntimeError(f"not a no-change fetching sync: {done.status}, {done.transactions_fetched} "
                                       f"fetched, {done.transactions_new} new")  # fmt: skip
                cell["times"].append(seconds)
                cell["runs"].append({"at": time.time(), "fetched": done.transactions_fetched, "pages": done.pages_done,
                                     "requests": done.api_requests, "sql_statements": sql["statements"],
                                     "sql_seconds": sql["seconds"]})  # fmt: skip
        out = []
        for cell in cells:
            with cell["engine"].connect() as c:
                stored = c.execute(sa.select(sa.func.count()).select_from(T).where(T.c.user_id == cell["user_id"])).scalar_one()  # fmt: skip
            out.append({"db": kind, "size": cell["size"], "stored": stored, **summarize(cell["times"]), "runs": cell["runs"]})  # fmt: skip
            ctx.progress(f"[bench] growth: {kind}, {cell['size']:,}: median {out[-1]['median'] * 1000:.1f} ms")
        return out


def run(ctx: Run) -> dict[str, Any]:
    """The no-change fetching sync at each history size of the profile, on each database of the run."""
    sizes, reps = ctx.profile.growth_sizes, ctx.profile.growth_runs
    cells = [cell for kind in ctx.dbs.kinds for cell in measure_db(ctx, kind, tuple(sizes), reps)]
    return {"sizes": list(sizes), "reps": reps, "served_per_account": SERVED_PER_ACCOUNT, "target_ratio": TARGET_RATIO,
            "interleaved": True, "cells": cells}  # fmt: skip


# --------------------------------------------------------------------------- report


def ratios(g: dict[str, Any]) -> dict[str, float]:
    """Per database: the largest history's median ÷ the smallest's."""
    out = {}
    for kind in dict.fromkeys(c["db"] for c in g["cells"]):
        cells = sorted((c for c in g["cells"] if c["db"] == kind), key=lambda c: c["size"])
        if len(cells) >= 2 and cells[0]["median"] > 0:
            out[kind] = cells[-1]["median"] / cells[0]["median"]
    return out


def verdicts(g: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(what, target, measured, met) for the report's Targets table."""
    small, large = min(g["sizes"]), max(g["sizes"])
    return [(f"no-change fetching sync, {large:,} vs {small:,} stored activities ({DB.get(kind, kind)})",
             f"≤ {g['target_ratio']}×", f"{r:.3f}×", r <= g["target_ratio"]) for kind, r in ratios(g).items()]  # fmt: skip


def section(g: dict[str, Any], results: dict[str, Any]) -> list[str]:
    rows = []
    for c in g["cells"]:
        last = c["runs"][-1] if c["runs"] else {}
        sql_ms = statistics.median(r["sql_seconds"] for r in c["runs"]) * 1000 if c["runs"] else 0.0
        rows.append([c["db"], f"{c['stored']:,}", *(f"{c[k] * 1000:.1f}" for k in ("median", "min", "max")),
                     f"{sql_ms:.1f}", *(last.get(k, "") for k in ("sql_statements", "fetched", "requests"))])  # fmt: skip
    return [f"A webhook-triggered sync with the accounts' webhook hint set (the window of {g['served_per_account']} activities "
            f"per account is fetched, nothing is new), {g['reps']} measured runs after one warm-up"
            f"{', the sizes in turn run by run' if g.get('interleaved') else ''}; medians.", "",
            *table("database | stored activities | median ms | min ms | max ms | SQL ms (median) | SQL statements | "
                   "fetched | requests", rows, right=8),
            *(f"- {kind}: the largest history's median ÷ the smallest's: {r:.3f}×" for kind, r in ratios(g).items()),
            "- *SQL ms*: the time spent in the database's statements (the rest is SnapTrade's answers and commits).", ""]  # fmt: skip
