"""Benchmark 1: an initial sync of N activities from the sandbox over HTTP into SQLite and PostgreSQL, by the
engine, by the floor and by the guide's row-by-row approach, each run in a fresh worker and a fresh database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.harness import Databases, loadavg, run_worker, summarize
from bench.remote_sandbox import RemoteSandbox

BROKER = "SANDBOX_US"  # the app's default sandbox broker: equities and options, two accounts per connection


@dataclass
class IngestPlan:
    runs: dict[int, int]  # measured runs per size
    guide_size: int
    guide_runs: int
    dbs: tuple[str, ...] = ("sqlite", "postgresql")
    profile_size: int | None = None  # one more engine run per database under cProfile
    detail_dbs: tuple[str, ...] | None = None  # databases for the guide and the cProfile run (default: all)
    no_autoanalyze: tuple[int, int] | None = None  # (size, runs) of PostgreSQL engine runs without autovacuum
    broker: str = BROKER


@dataclass
class Prepared:
    user_id: int
    snaptrade_user_id: str
    user_secret: str
    run_id: int
    connection_id: int
    accounts: list[list]  # [db id, snaptrade id]


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

    engine = create_db_engine(db_url)
    try:
        with Session(engine, expire_on_commit=False) as s:
            user_id = create_user(s, username=username, password="bench password 1", role="trader").id
            identity = ensure_snaptrade_user(s, user_id, SnapTradeClient())
            auth_id = sandbox.create_connection(
                identity.snaptrade_user_id, broker, size // accounts_per_connection(broker)
            )
            reconcile_connections(s, user_id=user_id)  # what the portal callback does before queueing
            conn = s.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == auth_id)).one()
            accounts = s.exec(select(BrokerageAccount).where(BrokerageAccount.connection_id == conn.id)
                              .order_by(BrokerageAccount.id)).all()  # fmt: skip
            run, _ = jobs.enqueue_sync(s, user_id=user_id, connection_id=conn.id, trigger="initial")
            jobs.claim_run(s, run.id, "bench")
            return Prepared(user_id, identity.snaptrade_user_id, identity.user_secret, run.id, conn.id,
                            [[a.id, a.snaptrade_account_id] for a in accounts])  # fmt: skip
    finally:
        engine.dispose()


def measure_once(dbs: Databases, sandbox: RemoteSandbox, kind: str, size: int, approach: str, *,
                 broker: str = BROKER, tracemalloc: bool = False, autoanalyze: bool = True) -> dict[str, Any]:  # fmt: skip
    """One measured initial sync of `size` activities into a fresh `kind` database by `approach`;
    `autoanalyze=False` keeps PostgreSQL's autovacuum away from the transactions table meanwhile."""
    url = dbs.new(kind)
    try:
        if not autoanalyze and kind == "postgresql":
            dbs.execute(url, "ALTER TABLE brokerage_transactions SET (autovacuum_enabled = false)")
        p = prepare_initial_sync(url, sandbox, size, broker)
        spec = {"task": approach, "db_url": url, "run_id": p.run_id, "user_id": p.user_id, "accounts": p.accounts,
                "snaptrade_user_id": p.snaptrade_user_id, "user_secret": p.user_secret, "tracemalloc": tracemalloc,
                "endpoint": {"base_url": sandbox.base_url, "client_id": sandbox.client_id, "consumer_key": sandbox.consumer_key},
                "postmaster_pid": dbs.postmaster_pid() if kind == "postgresql" else None,
                "sample_every_pages": max(1, size // 1000 // 40)}  # fmt: skip
        load, sandbox_cpu = loadavg(), sandbox.cpu_seconds()
        result = run_worker(spec)
        result["sandbox_cpu_seconds"] = sandbox.cpu_seconds() - sandbox_cpu
    finally:
        dbs.drop(url)
    fetched = result.get("fetched") or 0
    if result.get("status", "completed") != "completed" or fetched != size or result["rows_stored"] != size:
        raise RuntimeError(f"{approach} on {kind} at {size}: status {result.get('status')}, fetched {fetched}, "
                           f"stored {result['rows_stored']} (expected {size}); {result.get('error')}")  # fmt: skip
    result.update(db=kind, size=size, approach=approach, loadavg_before=load,
                  activities_per_second=fetched / result["wall_seconds"], cpu_seconds_per_1k=result["cpu_seconds"] / (fetched / 1000))  # fmt: skip
    return result


def run(dbs: Databases, sandbox: RemoteSandbox, plan: IngestPlan, progress=print) -> dict[str, Any]:
    """Every (size, approach, database) cell, interleaved run by run so drift in machine load hits all alike."""
    cells = [(size, a, n) for size, n in plan.runs.items() for a in ("engine", "floor")]
    if plan.guide_size not in plan.runs:
        cells.append((plan.guide_size, "engine", plan.guide_runs))
    cells.append((plan.guide_size, "guide", plan.guide_runs))
    runs: list[dict[str, Any]] = []
    for size in dict.fromkeys(c[0] for c in cells):
        group = [c for c in cells if c[0] == size]
        for i in range(max(n for _, _, n in group)):
            for _, approach, _n in (c for c in group if i < c[2]):
                for kind in (plan.detail_dbs or plan.dbs) if approach == "guide" else plan.dbs:
                    runs.append({**measure_once(dbs, sandbox, kind, size, approach, broker=plan.broker), "run": i + 1})
                    _report(progress, runs[-1])
    if plan.no_autoanalyze and "postgresql" in plan.dbs:
        size, n = plan.no_autoanalyze
        for i in range(n):
            r = measure_once(dbs, sandbox, "postgresql", size, "engine", broker=plan.broker, autoanalyze=False)
            runs.append({**r, "run": i + 1, "variant": "no autoanalyze"})
            _report(progress, runs[-1])
    profiles = {}
    for kind in (plan.detail_dbs or plan.dbs) if plan.profile_size else ():
        profiles[kind] = measure_once(dbs, sandbox, kind, plan.profile_size, "profile", broker=plan.broker)
        profiles[kind].pop("rss_samples", None)
        progress(f"  ingest under cProfile on {kind} at {plan.profile_size:,}: {profiles[kind]['wall_seconds']:.1f} s")
    plan_record = {**plan.__dict__, "runs": {str(k): v for k, v in plan.runs.items()}, "sizes": list(plan.runs)}
    return {"plan": plan_record, "runs": runs, "summary": {"table": summarize_runs(runs)}, "profiles": profiles}


def _report(progress, r: dict[str, Any]) -> None:
    progress(f"  ingest {r['approach']:6} {r.get('variant', ''):14} {r['db']:10} {r['size']:>9,}  run {r['run']}: "
             f"{r['activities_per_second']:,.0f} act/s, {r['cpu_seconds_per_1k']:.3f} CPU s/1k, "
             f"peak RSS {r['rss_peak_bytes'] / 2**20:.0f} MiB")  # fmt: skip


def summarize_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median, min and max of each (database, size, approach) cell."""
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in runs:
        approach = f"{r['approach']} ({r['variant']})" if r.get("variant") else r["approach"]
        cells.setdefault((r["db"], r["size"], approach), []).append(r)
    table = []
    for (db, size, approach), rs in sorted(cells.items()):
        pg = [
            r["postgres_cpu_seconds"] / (r["fetched"] / 1000) for r in rs if r.get("postgres_cpu_seconds") is not None
        ]
        table.append({"db": db, "size": size, "approach": approach,
                      **{key: summarize([r[key] for r in rs]) for key in ("activities_per_second", "cpu_seconds_per_1k", "wall_seconds")},
                      "postgres_cpu_seconds_per_1k": summarize(pg) if pg else None})  # fmt: skip
    return table
