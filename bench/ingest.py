"""The benchmarks that sync from the sandbox: 1 ingest throughput, 2 request budget, 3 memory, 6 sandbox speed."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlmodel import Session, select

from bench import targets
from bench.harness import Run, Sandbox, loadavg, run_json
from bench.worker import PAGE, PlainClient
from core.accounts.auth import create_user
from core.accounts.connections import ensure_snaptrade_user, reconcile_connections
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.settings import get_settings
from core.snaptrade.client import SnapTradeClient
from core.storage.models import BrokerageAccount, BrokerageConnection
from core.web.webhooks import receive_delivery
from sandbox.catalog import BROKERAGES

BROKER = "SANDBOX_US"  # the app's default sandbox broker: equities and options, two accounts per connection
ACCOUNTS = len(BROKERAGES[BROKER].accounts)
CUSTOMER_LIMIT_PER_MINUTE = 250
WEBHOOK_SYNC = "webhook-triggered incremental sync (after a daily refresh)"
NOTHING_NEW = "scheduled sync, nothing new"
SCHEDULED_NEW = "scheduled sync after a daily refresh, no webhook"


@dataclass
class IngestPlan:
    runs: dict[int, int]  # measured runs per size; memory compares the smallest and the largest
    guide_size: int
    guide_runs: int
    dbs: tuple[str, ...] = ("sqlite", "postgresql")
    profile_size: int | None = None  # one more engine run per database under cProfile
    detail_dbs: tuple[str, ...] | None = None  # databases for the guide and the cProfile run (default: all)
    no_autoanalyze: tuple[int, int] | None = None  # (size, runs) of PostgreSQL engine runs without autovacuum
    broker: str = BROKER


def new_trader(s: Session, sandbox: Sandbox, username: str, history_size: int) -> tuple[Any, Any, list[Any], Any]:
    """A trader registered at SnapTrade with one reconciled `BROKER` connection of `history_size` activities per
    account: (their SnapTrade identity, the connection, its accounts by id, when it was reconciled)."""
    user_id = create_user(s, username=username, password="bench password 1", role="trader").id
    identity = ensure_snaptrade_user(s, user_id, SnapTradeClient())
    auth_id = sandbox.control("create_connection", user_id=identity.snaptrade_user_id, broker=BROKER,
                              history_size=history_size)  # fmt: skip
    reconciled = reconcile_connections(s, user_id=user_id)  # what the portal callback does before queueing
    conn = s.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == auth_id)).one()
    accounts = s.exec(select(BrokerageAccount).where(BrokerageAccount.connection_id == conn.id)
                      .order_by(BrokerageAccount.id)).all()  # fmt: skip
    return identity, conn, list(accounts), reconciled.at


def prepare_initial_sync(engine, sandbox: Sandbox, size: int, username: str = "bench-trader") -> dict[str, Any]:
    """A trader whose new connection holds `size` activities in total, reconciled, with a claimed initial run."""
    with Session(engine, expire_on_commit=False) as s:
        identity, conn, accounts, at = new_trader(s, sandbox, username, size // ACCOUNTS)
        # as the portal callback queues it: the run reuses that reconcile (core.ingest.reconcile_once)
        run, _ = jobs.enqueue_sync(s, user_id=conn.user_id, connection_id=conn.id, trigger="initial", reconciled_at=at)
        jobs.claim_run(s, run.id, "bench")
        return {"user_id": conn.user_id, "snaptrade_user_id": identity.snaptrade_user_id, "user_secret": identity.user_secret,
                "run_id": run.id, "connection_id": conn.id, "accounts": [[a.id, a.snaptrade_account_id] for a in accounts]}  # fmt: skip


def measure_once(ctx: Run, kind: str, size: int, approach: str, tracemalloc: bool = False,
                 autoanalyze: bool = True) -> dict[str, Any]:  # fmt: skip
    """One measured initial sync of `size` activities into a fresh `kind` database by `approach`."""
    dbs, sandbox, pg = ctx.dbs, ctx.sandbox, kind == "postgresql"
    with dbs.fresh(kind) as (url, engine):
        spec = {**prepare_initial_sync(engine, sandbox, size), "task": approach, "db_url": url,
                "endpoint": {"base_url": sandbox.url, "client_id": sandbox.client_id, "consumer_key": sandbox.consumer_key},
                "postmaster_pid": dbs.postmaster_pid() if pg else None, "no_autoanalyze": pg and not autoanalyze,
                "sample_every_pages": max(1, size // 1000 // 40), "tracemalloc": tracemalloc}  # fmt: skip
        engine.dispose()  # the worker alone on the database
        load, sandbox_cpu = loadavg(), sandbox.cpu_seconds()
        result = run_json(["bench.worker", json.dumps(spec)])
        result["sandbox_cpu_seconds"] = sandbox.cpu_seconds() - sandbox_cpu
    fetched = result.get("fetched") or 0
    if result.get("status", "completed") != "completed" or fetched != size or result["rows_stored"] != size:
        raise RuntimeError(f"{approach} on {kind} at {size}: status {result.get('status')}, fetched {fetched}, "
                           f"stored {result['rows_stored']} (expected {size}); {result.get('error')}")  # fmt: skip
    result.update(db=kind, size=size, approach=approach, loadavg_before=load,
                  activities_per_second=fetched / result["wall_seconds"], cpu_seconds_per_1k=result["cpu_seconds"] / (fetched / 1000))  # fmt: skip
    if "journal_seconds" in result:  # the rate of the import alone: the run's wall time less its last, journal step
        result["import_activities_per_second"] = fetched / (result["wall_seconds"] - result["journal_seconds"])
    return result


def run(ctx: Run) -> dict[str, Any]:
    """Every (size, approach, database) cell, interleaved run by run so drift in machine load hits all alike."""
    plan, runs = ctx.profile.ingest, []

    def measured(kind: str, size: int, approach: str, i: int, variant: str | None = None) -> None:
        r = {**measure_once(ctx, kind, size, approach, autoanalyze=not variant), "run": i + 1}
        runs.append({**r, "variant": variant} if variant else r)
        ctx.progress(f"  ingest {approach:6} {variant or '':14} {kind:10} {size:>9,}  run {i + 1}: "
                     f"{r['activities_per_second']:,.0f} act/s, {r['cpu_seconds_per_1k']:.3f} CPU s/1k, "
                     f"peak RSS {r['rss_peak_bytes'] / 2**20:.0f} MiB")  # fmt: skip

    guide_dbs, pg = plan.detail_dbs or plan.dbs, ("postgresql",) if "postgresql" in plan.dbs else ()
    cells = [(size, a, n, None, plan.dbs) for size, n in plan.runs.items() for a in ("engine", "floor")]
    if plan.guide_size not in plan.runs:
        cells.append((plan.guide_size, "engine", plan.guide_runs, None, plan.dbs))
    cells.append((plan.guide_size, "guide", plan.guide_runs, None, guide_dbs))
    if plan.no_autoanalyze and pg:  # in its size's rounds, beside the floor it is compared with
        cells.append((plan.no_autoanalyze[0], "engine", plan.no_autoanalyze[1], "no autoanalyze", pg))
    for size in dict.fromkeys(c[0] for c in cells):
        group = [c for c in cells if c[0] == size]
        for i in range(max(c[2] for c in group)):
            for _, approach, _n, variant, kinds in (c for c in group if i < c[2]):
                for kind in kinds:
                    measured(kind, size, approach, i, variant)
    profiles = {}
    for kind in (plan.detail_dbs or plan.dbs) if plan.profile_size else ():
        profiles[kind] = measure_once(ctx, kind, plan.profile_size, "profile")
        profiles[kind].pop("rss_samples", None)
        ctx.progress(f"  ingest under cProfile on {kind} at {plan.profile_size:,}: {profiles[kind]['wall_seconds']:.1f} s")  # fmt: skip
    ctx.shared["ingest_runs"] = runs
    record = {**asdict(plan), "runs": {str(k): v for k, v in plan.runs.items()}, "sizes": list(plan.runs)}
    return {"plan": record, "runs": runs, "profiles": profiles}


def run_memory(ctx: Run) -> dict[str, Any]:
    """Peak RSS of the smallest and the largest sync, from benchmark 1's engine runs or runs of its own."""
    plan, by_db = ctx.profile.ingest, {}
    sizes = (min(plan.runs), max(plan.runs))
    for kind in plan.dbs:
        cells = {}
        for size in sizes:
            found = [r for r in ctx.shared.get("ingest_runs") or []
                     if (r["db"], r["size"], r["approach"]) == (kind, size, "engine") and not r.get("variant")]  # fmt: skip
            found = found or [measure_once(ctx, kind, size, "engine")]
            cells[str(size)] = {"peak_bytes": max(r["rss_peak_bytes"] for r in found), "runs": len(found),  # the worst run
                                "before_run_bytes": min(r["rss_before_bytes"] for r in found),
                                "rss_per_page": [[p, rss] for p, rss, _ in found[0].get("rss_samples") or []]}  # fmt: skip
        small, large = (cells[str(s)]["peak_bytes"] for s in sizes)
        by_db[kind] = {"small": sizes[0], "large": sizes[1], "cells": cells}
        ctx.progress(f"  memory {kind}: peak RSS {small / 2**20:.0f} MiB at {sizes[0]:,} vs {large / 2**20:.0f} MiB at {sizes[1]:,}")  # fmt: skip
        if not targets.memory_met(large / small, large) or kind in ctx.profile.force_memory_diagnosis:
            size = max(sizes[0], sizes[1] // 10)
            by_db[kind]["tracemalloc"] = {"size": size, **measure_once(ctx, kind, size, "engine", tracemalloc=True)["tracemalloc"]}  # fmt: skip
    return {"by_db": by_db}


def run_sandbox(ctx: Run) -> dict[str, Any]:
    """Full pages over keep-alive HTTP, each run from a fresh region of the history (the sandbox keeps pages)."""
    pages, runs, history = ctx.profile.sandbox_pages, ctx.profile.sandbox_runs, ctx.profile.sandbox_history
    out: dict[str, Any] = {}
    for parse in (False, True):  # each in a fresh sandbox, so neither reads pages the other made
        with contextlib.closing(Sandbox().start()) as sandbox:
            sandbox.control("create_connection", user_id="bench", broker=BROKER, history_size=history)
            account, secret = sandbox.read("accounts", user_id="bench")[0]["id"], sandbox.control("user_secret", user_id="bench")  # fmt: skip
            client, rates = PlainClient(sandbox.url, sandbox.client_id, sandbox.consumer_key), []
            for r in range(runs):
                t0, rows = time.perf_counter(), 0
                for k in range(pages):
                    body = client.activities("bench", secret, account, (r * pages + k) * PAGE)
                    rows += len(json.loads(body)["data"]) if parse else body.count(b'"institution":')
                rates.append(rows / (time.perf_counter() - t0))
            client.conn.close()
        out["client_parses_json" if parse else "bytes_only"] = {
            "pages_per_run": pages, "runs": runs, "history_size": history, "page_bytes": len(body),
            "activities_per_second_median": round(statistics.median(rates)), "activities_per_second_runs": [round(x) for x in rates],
        }  # fmt: skip
        ctx.progress(f"  sandbox: {round(statistics.median(rates)):,} activities/s ({'json.loads' if parse else 'bytes only'})")  # fmt: skip
    return out


def run_requests(ctx: Run) -> dict[str, Any]:
    """Requests per sync in the sandbox's request log, five syncs in a row, and users per client id per day."""
    sandbox, history_size, scenarios = ctx.sandbox, ctx.profile.budget_history, []
    with ctx.dbs.fresh("sqlite") as (_, engine):

        def counted(name: str, run_id: int | None = None, **extra: Any) -> None:
            """Run one sync (queue a scheduled one unless `run_id` is given) and count the requests it made."""
            with Session(engine, expire_on_commit=False) as s:
                if run_id is None:
                    run_id = jobs.enqueue_sync(s, user_id=p["user_id"], connection_id=p["connection_id"], trigger="scheduled")[0].id  # fmt: skip
                jobs.claim_run(s, run_id, "bench")
            sandbox.control("reset_request_log")
            done = execute_run(run_id, engine=engine)
            counts = sandbox.read("request_counts")
            scenarios.append({"name": name, "trigger": done.trigger, "status": done.status, "fetched": done.transactions_fetched,
                              "engine_counted": done.api_requests, "requests": counts, "total": sum(counts.values()), **extra})  # fmt: skip
            ctx.progress(f"  requests: {name}: {scenarios[-1]['total']} ({counts})")

        p = prepare_initial_sync(engine, sandbox, history_size, username="budget-trader")
        counted("initial sync", p["run_id"])
        counted(NOTHING_NEW)
        # SnapTrade's next daily refresh: the sandbox appends a day and signs one webhook per account. Nothing
        # listens at the address it is given: the app's receiver gets each recorded payload and signature.
        sandbox.control("clear_webhook_deliveries")
        sandbox.control("set_webhook_url", url="http://127.0.0.1:9/webhook")
        sandbox.control("advance_day")
        sandbox.control("set_webhook_url", url=None)
        ours = [d for d in sandbox.read("webhook_deliveries") if d["payload"]["userId"] == p["snaptrade_user_id"]]
        with Session(engine, expire_on_commit=False) as s:
            run_ids = {receive_delivery(s, json.dumps(d["payload"]).encode(), d["signature"], client_id=sandbox.client_id,
                                        consumer_key=sandbox.consumer_key, max_age_seconds=get_settings().webhook_max_age_seconds).run_id
                       for d in ours} - {None}  # fmt: skip
        if len(ours) != ACCOUNTS or len(run_ids) != 1:
            raise RuntimeError(f"{len(ours)} webhook deliveries queued {len(run_ids)} runs, expected one")
        counted(WEBHOOK_SYNC, run_ids.pop(), webhooks=len(ours))
        counted("scheduled sync right after the webhook sync (nothing new)")
        sandbox.control("advance_day")
        counted(SCHEDULED_NEW)
    return {"history_size": history_size, "accounts_per_connection": ACCOUNTS, "broker": BROKER,
            "scenarios": scenarios, "capacity": capacity(scenarios)}  # fmt: skip


def capacity(scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    """Users per client id per day under the customer limit, from the measured per-sync request counts."""
    total = {sc["name"]: sc["total"] for sc in scenarios}
    per_day = CUSTOMER_LIMIT_PER_MINUTE * 60 * 24
    plans = [("webhooks on: one webhook sync a day + the daily scheduled sync finding nothing new", total[WEBHOOK_SYNC] + total[NOTHING_NEW]),
             ("no webhooks: one scheduled sync a day that finds the new day", total[SCHEDULED_NEW]),
             ("webhooks only (scheduled syncs turned off)", total[WEBHOOK_SYNC])]  # fmt: skip
    return {"limit_per_minute": CUSTOMER_LIMIT_PER_MINUTE, "requests_per_day": per_day,
            "plans": [{"name": name, "requests_per_user_day": n, "users_per_day": per_day // n if n else None} for name, n in plans]}  # fmt: skip
