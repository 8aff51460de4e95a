"""Benchmark 2: SnapTrade requests per sync, counted in the sandbox's request log, and what they mean for how
many users one client id can keep fresh under the 250 requests/minute customer limit.

Scenarios, on one user with one connection (SANDBOX_US: two accounts): the initial sync; a scheduled sync with
nothing new; a webhook-triggered sync after SnapTrade's next daily refresh (`advance_day`, the sandbox's
ACCOUNT_TRANSACTIONS_UPDATED webhooks delivered through `core.web.webhooks.receive_delivery`); and a scheduled
sync after a daily refresh without any webhook.
"""

from __future__ import annotations

import http.server
import json
import math
import threading
import time
from typing import Any

from bench.harness import Databases
from bench.ingest import BROKER, accounts_per_connection, prepare_initial_sync
from bench.remote_sandbox import RemoteSandbox

CUSTOMER_LIMIT_PER_MINUTE = 250


class _WebhookInbox(http.server.ThreadingHTTPServer):
    """Collects raw webhook deliveries (body + Signature header) so the app's own pipeline can process them."""

    daemon_threads = True

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, str | None]] = []
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                inbox.deliveries.append((body, self.headers.get("Signature")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def deliveries_for(self, snaptrade_user_id: str) -> list[tuple[bytes, str | None]]:
        # The sandbox may hold other benchmarks' users: their webhooks are not ours to process.
        return [d for d in list(self.deliveries) if json.loads(d[0]).get("userId") == snaptrade_user_id]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhook"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def _run_sync(engine, user_id: int, connection_id: int, trigger: str) -> dict[str, Any]:
    from sqlmodel import Session

    from core.ingest.sync import execute_run
    from core.jobs import queue as jobs

    with Session(engine, expire_on_commit=False) as s:
        run, _ = jobs.enqueue_sync(s, user_id=user_id, connection_id=connection_id, trigger=trigger)
        jobs.claim_run(s, run.id, "bench")
    done = execute_run(run.id, engine=engine)
    return {"status": done.status, "trigger": trigger, "api_requests": done.api_requests,
            "fetched": done.transactions_fetched, "new": done.transactions_new}  # fmt: skip


def _counted(sandbox: RemoteSandbox, fn) -> tuple[Any, dict[str, int]]:
    sandbox.reset_request_log()
    out = fn()
    return out, sandbox.request_counts()


def run(dbs: Databases, sandbox: RemoteSandbox, history_size: int = 10_000, progress=print) -> dict[str, Any]:
    from sqlmodel import Session, select

    from core.settings import get_settings
    from core.storage.db import create_db_engine
    from core.storage.models import BrokerageConnection
    from core.web.webhooks import receive_delivery

    n_accounts = accounts_per_connection(BROKER)
    url = dbs.new("sqlite")
    engine = create_db_engine(url)
    inbox = _WebhookInbox()
    scenarios: list[dict[str, Any]] = []
    try:
        p = prepare_initial_sync(url, sandbox, history_size, BROKER, username="budget-trader")
        with Session(engine) as s:
            conn_id = s.exec(select(BrokerageConnection.id).where(BrokerageConnection.user_id == p.user_id)).one()
        # prepare_initial_sync queued and claimed the initial run; execute it while counting.
        from core.ingest.sync import execute_run

        done, counts = _counted(sandbox, lambda: execute_run(p.run_id, engine=engine))
        scenarios.append({"name": "initial sync", "trigger": "initial", "status": done.status, "fetched": done.transactions_fetched,
                          "engine_counted": done.api_requests, "requests": counts})  # fmt: skip

        result, counts = _counted(sandbox, lambda: _run_sync(engine, p.user_id, conn_id, "scheduled"))
        scenarios.append({"name": "scheduled sync, nothing new", **_scenario(result, counts)})

        # SnapTrade's next daily refresh: the sandbox appends a day and sends one webhook per account.
        sandbox.control("set_webhook_url", url=inbox.url)
        sandbox.control("advance_day")
        deadline = time.time() + 15
        while len(ours := inbox.deliveries_for(p.snaptrade_user_id)) < n_accounts and time.time() < deadline:
            time.sleep(0.05)
        sandbox.control("set_webhook_url", url=None)
        settings = get_settings()
        run_ids = set()
        with Session(engine, expire_on_commit=False) as s:
            for body, signature in ours:
                r = receive_delivery(s, body, signature, client_id=sandbox.client_id, consumer_key=sandbox.consumer_key,
                                     max_age_seconds=settings.webhook_max_age_seconds)  # fmt: skip
                if r.run_id:
                    run_ids.add(r.run_id)
        if len(run_ids) != 1:
            raise RuntimeError(f"webhooks queued {len(run_ids)} runs, expected one (deliveries: {len(ours)})")
        run_id = run_ids.pop()

        def webhook_run() -> dict[str, Any]:
            from core.jobs import queue as jobs

            with Session(engine, expire_on_commit=False) as s:
                jobs.claim_run(s, run_id, "bench")
            d = execute_run(run_id, engine=engine)
            return {"status": d.status, "trigger": d.trigger, "api_requests": d.api_requests,
                    "fetched": d.transactions_fetched, "new": d.transactions_new}  # fmt: skip

        result, counts = _counted(sandbox, webhook_run)
        scenarios.append({"name": "webhook-triggered incremental sync (after a daily refresh)",
                          "webhooks": len(ours), **_scenario(result, counts)})  # fmt: skip

        result, counts = _counted(sandbox, lambda: _run_sync(engine, p.user_id, conn_id, "scheduled"))
        scenarios.append(
            {"name": "scheduled sync right after the webhook sync (nothing new)", **_scenario(result, counts)}
        )

        sandbox.control("advance_day")
        result, counts = _counted(sandbox, lambda: _run_sync(engine, p.user_id, conn_id, "scheduled"))
        scenarios.append({"name": "scheduled sync after a daily refresh, no webhook", **_scenario(result, counts)})
    finally:
        inbox.close()
        engine.dispose()
        dbs.drop(url)
    for sc in scenarios:
        sc["total"] = sum(sc["requests"].values())
        progress(f"  requests: {sc['name']}: {sc['total']} ({sc['requests']})")
    return {"history_size": history_size, "accounts_per_connection": n_accounts, "broker": BROKER,
            "scenarios": scenarios, "capacity": capacity(scenarios)}  # fmt: skip


def _scenario(result: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    return {"trigger": result["trigger"], "status": result["status"], "fetched": result["fetched"],
            "engine_counted": result["api_requests"], "requests": counts}  # fmt: skip


def capacity(scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    """Users per client id per day under the customer limit, from the measured per-sync request counts."""
    by_name = {sc["name"]: sc["total"] if "total" in sc else sum(sc["requests"].values()) for sc in scenarios}
    webhook = by_name["webhook-triggered incremental sync (after a daily refresh)"]
    noop = by_name["scheduled sync, nothing new"]
    scheduled_new = by_name["scheduled sync after a daily refresh, no webhook"]
    per_day = CUSTOMER_LIMIT_PER_MINUTE * 60 * 24
    plans = [
        {"name": "webhooks on: one webhook sync a day + the daily scheduled sync finding nothing new",
         "requests_per_user_day": webhook + noop},
        {"name": "no webhooks: one scheduled sync a day that finds the new day",
         "requests_per_user_day": scheduled_new},
        {"name": "webhooks only (scheduled syncs turned off)", "requests_per_user_day": webhook},
    ]  # fmt: skip
    for plan in plans:
        plan["users_per_day"] = (
            math.floor(per_day / plan["requests_per_user_day"]) if plan["requests_per_user_day"] else None
        )
    return {"limit_per_minute": CUSTOMER_LIMIT_PER_MINUTE, "requests_per_day": per_day, "plans": plans}
