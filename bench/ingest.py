"""Benchmark 1 (ingest throughput) and 3 (memory): an initial sync of N activities from the sandbox over HTTP
into SQLite and PostgreSQL, by the engine, by the floor and by the guide's row-by-row approach, side by side.

Each measured sync runs in a fresh worker process against a fresh database; the sandbox runs in its own
process. Setup (user, SnapTrade registration, connection, reconcile, queued run) is done here, unmeasured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from bench.harness import Databases, loadavg, ratio, run_worker, summarize
from bench.remote_sandbox import RemoteSandbox

log = logging.getLogger("bench.ingest")

BROKER = "SANDBOX_US"  # the app's default sandbox broker: equities and options, two accounts per connection


@dataclass
class IngestPlan:
    sizes: list[int]
    runs: dict[int, int]  # measured runs per size
    guide_size: int
    guide_runs: int
    dbs: tuple[str, ...] = ("sqlite", "postgresql")
    approaches: tuple[str, ...] = ("engine", "floor", "guide")
    broker: str = BROKER
    profile_size: int | None = None  # one extra engine run per database under cProfile + SQL statement timing
    profile_dbs: tuple[str, ...] | None = None  # databases to profile (default: all)
    guide_dbs: tuple[str, ...] | None = None  # databases for the guide's approach (default: all)
    # Extra PostgreSQL engine runs with no autoanalyze during the sync (see measure_once): (size, runs).
    no_autoanalyze: tuple[int, int] | None = None


@dataclass
class Prepared:
    user_id: int
    snaptrade_user_id: str
    user_secret: str
    run_id: int
    accounts: list[list] = field(default_factory=list)  # [db id, snaptrade id]


def accounts_per_connection(broker: str) -> int:
    from sandbox.catalog import BROKERAGES

    return len(BROKERAGES[broker].accounts)


def prepare_initial_sync(db_url: str, sandbox: RemoteSandbox, size: int, broker: str = BROKER,
                         username: str = "bench-trader") -> Prepared:  # fmt: skip
    """A trader whose new connection holds `size` activities in total, reconciled, with a claimed initial run."""
    from sqlmodel import Session, select

    from core.accounts.auth import create_user
    from core.accounts.connections import ensure_snaptrade_user, reconcile_connections
    from core.jobs import queue as jobs
    from core.snaptrade.client import SnapTradeClient
    from core.storage.db import create_db_engine
    from core.storage.models import BrokerageAccount, BrokerageConnection

    per_account = size // accounts_per_connection(broker)
    engine = create_db_engine(db_url)
    try:
        with Session(engine, expire_on_commit=False) as s:
            user_id = create_user(s, username=username, password="bench password 1", role="trader").id
            identity = ensure_snaptrade_user(s, user_id, SnapTradeClient())
            auth_id = sandbox.create_connection(identity.snaptrade_user_id, broker, per_account)
            reconcile_connections(s, user_id=user_id)  # what the portal callback does before queueing
            conn = s.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == auth_id)).one()
            accounts = s.exec(select(BrokerageAccount).where(BrokerageAccount.connection_id == conn.id)
                              .order_by(BrokerageAccount.id)).all()  # fmt: skip
            run, _ = jobs.enqueue_sync(s, user_id=user_id, connection_id=conn.id, trigger="initial")
            jobs.claim_run(s, run.id, "bench")
            return Prepared(user_id, identity.snaptrade_user_id, identity.user_secret, run.id,
                            [[a.id, a.snaptrade_account_id] for a in accounts])  # fmt: skip
    finally:
        engine.dispose()


def measure_once(dbs: Databases, sandbox: RemoteSandbox, kind: str, size: int, approach: str, *,
                 broker: str = BROKER, tracemalloc: bool = False, autoanalyze: bool = True) -> dict[str, Any]:  # fmt: skip
    """One measured initial sync of `size` activities into a fresh `kind` database by `approach`.

    `autoanalyze=False` (PostgreSQL) keeps autovacuum away from the transactions table during the sync: the
    state of a first big sync that autovacuum has not reached yet (it visits a database about once a minute)."""
    url = dbs.new(kind)
    if not autoanalyze and kind == "postgresql":
        _disable_autovacuum(url)
    try:
        p = prepare_initial_sync(url, sandbox, size, broker)
        spec = {
            "task": approach,
            "db_url": url,
            "endpoint": {
                "base_url": sandbox.base_url,
                "client_id": sandbox.client_id,
                "consumer_key": sandbox.consumer_key,
            },
            "run_id": p.run_id,
            "user_id": p.user_id,
            "snaptrade_user_id": p.snaptrade_user_id,
            "user_secret": p.user_secret,
            "accounts": p.accounts,
            "postmaster_pid": dbs.postmaster_pid() if kind == "postgresql" else None,
            "tracemalloc": tracemalloc,
            "sample_every_pages": max(1, size // 1000 // 40),
        }
        sandbox.reset_request_log()
        load = loadavg()
        sandbox_cpu0 = sandbox.cpu_seconds()
        result = run_worker(spec)
        result["sandbox_cpu_seconds"] = sandbox.cpu_seconds() - sandbox_cpu0
        result["sandbox_requests"] = sum(sandbox.request_counts().values())
    finally:
        dbs.drop(url)
    fetched = result.get("fetched") or 0
    result.update(db=kind, size=size, approach=approach, loadavg_before=load,
                  activities_per_second=fetched / result["wall_seconds"] if result["wall_seconds"] else None,
                  cpu_seconds_per_1k=result["cpu_seconds"] / (fetched / 1000) if fetched else None)  # fmt: skip
    if result.get("status", "completed") != "completed" or fetched != size or result["rows_stored"] != size:
        raise RuntimeError(f"{approach} on {kind} at {size}: status {result.get('status')}, fetched {fetched}, "
                           f"stored {result['rows_stored']} (expected {size}); {result.get('error')}")  # fmt: skip
    return result


def _disable_autovacuum(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("ALTER TABLE brokerage_transactions SET (autovacuum_enabled = false)"))
    engine.dispose()


def run(dbs: Databases, sandbox: RemoteSandbox, plan: IngestPlan, progress=print) -> dict[str, Any]:
    """Every (size, approach, database) cell, interleaved run by run so drift in machine load hits all alike."""
    runs: list[dict[str, Any]] = []
    cells: list[tuple[int, str, int]] = []  # (size, approach, measured runs)
    for size in plan.sizes:
        cells += [(size, a, plan.runs.get(size, 1)) for a in ("engine", "floor") if a in plan.approaches]
    if "guide" in plan.approaches:
        if plan.guide_size not in plan.sizes:
            cells.append((plan.guide_size, "engine", plan.guide_runs))
        cells.append((plan.guide_size, "guide", plan.guide_runs))
    for size in dict.fromkeys(c[0] for c in cells):
        group = [c for c in cells if c[0] == size]
        for i in range(max(n for _, _, n in group)):
            for _, approach, n in group:
                if i >= n:
                    continue
                for kind in (plan.guide_dbs or plan.dbs) if approach == "guide" else plan.dbs:
                    r = measure_once(dbs, sandbox, kind, size, approach, broker=plan.broker)
                    r["run"] = i + 1
                    runs.append(r)
                    progress(f"  ingest {approach:6} {kind:10} {size:>9,}  run {i + 1}: {r['activities_per_second']:,.0f} act/s, "
                             f"{r['cpu_seconds_per_1k']:.3f} CPU s/1k, peak RSS {r['rss_peak_bytes'] / 2**20:.0f} MiB")  # fmt: skip
    if plan.no_autoanalyze and "postgresql" in plan.dbs:
        size, n = plan.no_autoanalyze
        for i in range(n):
            r = measure_once(dbs, sandbox, "postgresql", size, "engine", broker=plan.broker, autoanalyze=False)
            r.update(run=i + 1, approach="engine", variant="no autoanalyze")
            runs.append(r)
            progress(
                f"  ingest engine postgresql {size:>9,}  no autoanalyze, run {i + 1}: {r['activities_per_second']:,.0f} act/s"
            )
    profiles = {}
    if plan.profile_size:
        for kind in plan.profile_dbs or plan.dbs:
            p = measure_once(dbs, sandbox, kind, plan.profile_size, "profile", broker=plan.broker)
            p.pop("rss_samples", None)
            profiles[kind] = p
            top = p["profile"]["statements"][0] if p["profile"]["statements"] else None
            progress(f"  ingest engine under cProfile on {kind} at {plan.profile_size:,}: {p['wall_seconds']:.1f} s"
                     + (f"; slowest SQL: {top['kind']} {top['seconds']:.1f} s" if top else ""))  # fmt: skip
    return {"plan": plan.__dict__ | {"runs": {str(k): v for k, v in plan.runs.items()}},
            "runs": runs, "summary": summarize_runs(runs, plan), "profiles": profiles}  # fmt: skip


def summarize_runs(runs: list[dict[str, Any]], plan: IngestPlan) -> dict[str, Any]:
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in runs:
        approach = f"{r['approach']} ({r['variant']})" if r.get("variant") else r["approach"]
        cells.setdefault((r["db"], r["size"], approach), []).append(r)
    table = []
    for (db, size, approach), rs in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        pg = [
            r["postgres_cpu_seconds"] / (r["fetched"] / 1000) for r in rs if r.get("postgres_cpu_seconds") is not None
        ]
        table.append({
            "db": db, "size": size, "approach": approach,
            "activities_per_second": summarize([r["activities_per_second"] for r in rs]),
            "cpu_seconds_per_1k": summarize([r["cpu_seconds_per_1k"] for r in rs]),
            "postgres_cpu_seconds_per_1k": summarize(pg) if pg else None,
            "wall_seconds": summarize([r["wall_seconds"] for r in rs]),
            "rss_peak_bytes": summarize([r["rss_peak_bytes"] for r in rs]),
            "api_requests": rs[0].get("api_requests"),
            "sandbox_requests": rs[0].get("sandbox_requests"),
        })  # fmt: skip

    def median(db: str, size: int, approach: str, key: str = "activities_per_second") -> float | None:
        for row in table:
            if (row["db"], row["size"], row["approach"]) == (db, size, approach):
                return row[key]["median"]
        return None

    ratios = []
    for db in plan.dbs:
        for size in plan.sizes:
            ratios.append({"db": db, "size": size, "versus": "floor", "target": 0.5,
                           "ratio": ratio(median(db, size, "engine"), median(db, size, "floor"))})  # fmt: skip
        if "guide" in plan.approaches and db in (plan.guide_dbs or plan.dbs):
            ratios.append({"db": db, "size": plan.guide_size, "versus": "guide", "target": 10.0,
                           "ratio": ratio(median(db, plan.guide_size, "engine"), median(db, plan.guide_size, "guide"))})  # fmt: skip
    return {"table": table, "ratios": ratios}
