"""Benchmark 2: SnapTrade requests per sync, counted in the sandbox's request log, and how many users one
client id keeps fresh under the customer limit. One user, one connection, five scenarios in a row.
"""

from __future__ import annotations

import json
from typing import Any

from bench.harness import Databases
from bench.ingest import BROKER, accounts_per_connection, prepare_initial_sync
from bench.remote_sandbox import RemoteSandbox

CUSTOMER_LIMIT_PER_MINUTE = 250
WEBHOOK_SYNC = "webhook-triggered incremental sync (after a daily refresh)"
NOTHING_NEW = "scheduled sync, nothing new"
SCHEDULED_NEW = "scheduled sync after a daily refresh, no webhook"


def run(dbs: Databases, sandbox: RemoteSandbox, history_size: int = 10_000, progress=print) -> dict[str, Any]:
    from sqlmodel import Session

    from core.ingest.sync import execute_run
    from core.jobs import queue as jobs
    from core.settings import get_settings
    from core.storage.db import create_db_engine
    from core.web.webhooks import receive_delivery

    url = dbs.new("sqlite")
    engine = create_db_engine(url)
    scenarios: list[dict[str, Any]] = []

    def counted(name: str, run_id: int | None = None, **extra: Any) -> None:
        """Run one sync (queue a scheduled one unless `run_id` is given) and count the requests it made."""
        with Session(engine, expire_on_commit=False) as s:
            if run_id is None:
                run_id = jobs.enqueue_sync(s, user_id=p.user_id, connection_id=p.connection_id, trigger="scheduled")[
                    0
                ].id
            jobs.claim_run(s, run_id, "bench")
        sandbox.control("reset_request_log")
        done = execute_run(run_id, engine=engine)
        counts = sandbox.read("request_counts")
        scenarios.append({"name": name, "trigger": done.trigger, "status": done.status, "fetched": done.transactions_fetched,
                          "engine_counted": done.api_requests, "requests": counts, "total": sum(counts.values()), **extra})  # fmt: skip
        progress(f"  requests: {name}: {scenarios[-1]['total']} ({counts})")

    try:
        p = prepare_initial_sync(url, sandbox, history_size, BROKER, username="budget-trader")
        counted("initial sync", p.run_id)
        counted(NOTHING_NEW)
        # SnapTrade's next daily refresh: the sandbox appends a day and signs one webhook per account. Nothing
        # listens at the address it is given: the app's receiver gets each recorded payload and signature.
        sandbox.control("clear_webhook_deliveries")
        sandbox.control("set_webhook_url", url="http://127.0.0.1:9/webhook")
        sandbox.control("advance_day")
        sandbox.control("set_webhook_url", url=None)
        ours = [d for d in sandbox.read("webhook_deliveries") if d["payload"]["userId"] == p.snaptrade_user_id]
        with Session(engine, expire_on_commit=False) as s:
            run_ids = {receive_delivery(s, json.dumps(d["payload"]).encode(), d["signature"], client_id=sandbox.client_id,
                                        consumer_key=sandbox.consumer_key, max_age_seconds=get_settings().webhook_max_age_seconds).run_id
                       for d in ours} - {None}  # fmt: skip
        if len(ours) != accounts_per_connection(BROKER) or len(run_ids) != 1:
            raise RuntimeError(f"{len(ours)} webhook deliveries queued {len(run_ids)} runs, expected one")
        counted(WEBHOOK_SYNC, run_ids.pop(), webhooks=len(ours))
        counted("scheduled sync right after the webhook sync (nothing new)")
        sandbox.control("advance_day")
        counted(SCHEDULED_NEW)
    finally:
        engine.dispose()
        dbs.drop(url)
    return {"history_size": history_size, "accounts_per_connection": accounts_per_connection(BROKER), "broker": BROKER,
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
