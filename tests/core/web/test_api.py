"""The HTTP routes served for real: uvicorn on 127.0.0.1, a real database (SQLite and PostgreSQL),
signed deliveries, replays, forgeries, size limits, a concurrent burst, and the sandbox's own webhooks."""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from sqlmodel import Session, select
from starlette.applications import Starlette

from core.settings import reset_settings_cache
from core.snaptrade.client import clear_endpoint, configure_endpoint
from core.storage.models import BrokerageAccount, BrokerageConnection, SnapTradeUser, TransactionSyncLog, WebhookEvent
from core.web import api
from core.web.webhooks import webhook_signature
from tests.factories import make_account, make_connection, make_user

KEY = "test-consumer-key"
PATH = "/api/webhooks/snaptrade"
MAX_BYTES = 8192
ROOT = Path(__file__).resolve().parents[3]


class LiveServer:
    """uvicorn serving `app` (default: the app's API routes) from a background thread, on a port the OS picked."""

    def __init__(self, app: Any = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        app = app if app is not None else Starlette(routes=api.routes)
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"


@pytest.fixture
def live(engine, settings_env):
    """The server, with settings on the test database and our consumer key configured."""
    settings_env.setenv("WEBHOOK_MAX_BYTES", str(MAX_BYTES))
    reset_settings_cache()
    configure_endpoint(base_url="http://127.0.0.1:1", client_id="CID", consumer_key=KEY)
    server = LiveServer().start()
    yield server
    server.stop()
    clear_endpoint()


@pytest.fixture
def trader(session):
    user = make_user(session)
    session.add(SnapTradeUser(user_id=user.id, snaptrade_user_id="st-user-1", user_secret_encrypted="x"))
    session.commit()
    conn = make_connection(session, user, authorization_id="auth-1")
    return user, conn, make_account(session, conn, snaptrade_account_id="acc-1")


def event(event_type: str = "ACCOUNT_TRANSACTIONS_UPDATED", **fields) -> dict:
    base = {"webhookId": str(uuid.uuid4()), "clientId": "CID", "eventTimestamp": datetime.now(UTC).isoformat(),
            "userId": "st-user-1", "eventType": event_type, "accountId": "acc-1",
            "brokerageAuthorizationId": "auth-1", "webhookSecret": "legacy-shared-secret"}  # fmt: skip
    return {**base, **fields}


def request(conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data) if data else {}


def post(port: int, payload: dict | None = None, *, body: bytes | None = None, signature: str | None = "sign",
         headers: dict | None = None) -> tuple[int, dict]:  # fmt: skip
    """POST a delivery; by default the body is `payload` as SnapTrade would send it, correctly signed."""
    if body is None:
        body = json.dumps(payload).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if signature == "sign":
        signature = webhook_signature(KEY, payload)
    if signature is not None:
        hdrs["Signature"] = signature
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return request(conn, "POST", PATH, body, hdrs)
    finally:
        conn.close()


def count(session: Session, model, *where) -> int:
    session.expire_all()
    return session.exec(select(sa.func.count()).select_from(model).where(*where)).one()


# --------------------------------------------------------------------------- single deliveries


def test_a_valid_delivery_is_stored_and_queues_a_webhook_sync(live, session, trader, caplog):
    caplog.set_level(logging.INFO, logger="tradistry.webhooks")
    payload = event()
    status, body = post(live.port, payload)
    assert status == 200
    assert body == {"status": "accepted", "webhookId": payload["webhookId"], "eventStatus": "processed"}
    assert count(session, WebhookEvent, WebhookEvent.webhook_id == payload["webhookId"]) == 1
    [run] = session.exec(select(TransactionSyncLog)).all()
    assert (run.trigger, run.status, run.connection_id) == ("webhook", "queued", trader[1].id)
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"webhookId={payload['webhookId']}" in m and "outcome=accepted" in m for m in lines)
    assert not any("legacy-shared-secret" in m or KEY in m for m in lines)


def test_a_replayed_webhook_id_answers_200_duplicate_and_does_nothing_more(live, session, trader):
    payload = event()
    assert post(live.port, payload)[0] == 200
    session.exec(sa.update(TransactionSyncLog).values(status="completed"))  # the sync ran meanwhile
    session.commit()
    status, body = post(live.port, payload)
    assert (status, body["status"]) == (200, "duplicate")
    assert count(session, WebhookEvent) == 1
    assert count(session, TransactionSyncLog) == 1


@pytest.mark.parametrize(
    "forgery",
    [
        "no signature",
        "wrong signature",
        "signed with another key",
        "altered body, original signature",
        "foreign clientId",
    ],
)
def test_forged_deliveries_are_401_and_stored_nowhere(live, session, trader, forgery):
    payload = event()
    if forgery == "no signature":
        status, _ = post(live.port, payload, signature=None)
    elif forgery == "wrong signature":
        status, _ = post(live.port, payload, signature="AAAA" + webhook_signature(KEY, payload)[4:])
    elif forgery == "signed with another key":
        status, _ = post(live.port, payload, signature=webhook_signature("attacker-key", payload))
    elif forgery == "altered body, original signature":
        altered = {**payload, "brokerageAuthorizationId": "auth-2"}
        status, _ = post(live.port, altered, signature=webhook_signature(KEY, payload))
    else:
        foreign = {**payload, "clientId": "SOMEONE-ELSE"}
        status, _ = post(live.port, foreign)
    assert status == 401
    assert count(session, WebhookEvent) == 0 and count(session, TransactionSyncLog) == 0


def test_the_legacy_webhook_secret_works_only_when_configured(live, session, trader, settings_env):
    payload = event()
    assert post(live.port, payload, signature=None)[0] == 401
    settings_env.setenv("SNAPTRADE_WEBHOOK_LEGACY_SECRET", "legacy-shared-secret")
    reset_settings_cache()
    assert post(live.port, payload, signature=None)[0] == 200
    assert count(session, WebhookEvent) == 1


@pytest.mark.parametrize("when", [timedelta(hours=-7), timedelta(minutes=10)])
def test_stale_or_future_events_are_rejected_and_not_stored(live, session, trader, when):
    payload = event(eventTimestamp=(datetime.now(UTC) + when).isoformat())
    status, body = post(live.port, payload)
    assert status == 400 and "stale event" in body["error"]
    assert count(session, WebhookEvent) == 0


def test_a_retry_hours_later_within_the_window_is_accepted(live, session, trader):
    payload = event(eventTimestamp=(datetime.now(UTC) - timedelta(hours=2)).isoformat())
    assert post(live.port, payload)[0] == 200


def test_oversized_bodies_are_413_by_declared_length_and_by_bytes_read(live, session, trader):
    big = event(details={"padding": "x" * MAX_BYTES})
    assert post(live.port, big)[0] == 413
    # Chunked: no Content-Length to check, so the limit must hold while reading.
    body = json.dumps(big).encode()
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        chunks = (body[i : i + 2048] for i in range(0, len(body), 2048))
        # http.client sends a generator body chunked (Transfer-Encoding: chunked, no Content-Length).
        status, _ = request(conn, "POST", PATH, chunks, {"Signature": webhook_signature(KEY, big)})
    finally:
        conn.close()
    assert status == 413
    assert count(session, WebhookEvent) == 0


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"clientId": "CID"}'])
def test_malformed_bodies_are_400(live, session, body):
    try:
        signature = webhook_signature(KEY, json.loads(body))
    except ValueError:
        signature = "whatever"
    status, response = post(live.port, body=body, signature=signature)
    assert status == 400 and response["status"] == "rejected"
    assert count(session, WebhookEvent) == 0


def test_deeply_nested_json_is_400_not_500_and_needs_no_signature(live, session):
    status, response = post(live.port, body=b"[" * 8000, signature=None)  # under MAX_BYTES; was 500 (RecursionError)
    assert status == 400 and "nested" in response["error"]
    assert count(session, WebhookEvent) == 0


def test_health_reports_counts_and_no_user_data(live, session, trader):
    post(live.port, event())
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        status, body = request(conn, "GET", "/api/health")
    finally:
        conn.close()
    assert status == 200
    assert body["status"] == "ok" and body["database"]["reachable"] is True and body["version"]
    assert body["connections"] == {"active": 1, "failing": 0}
    assert body["queue"]["depth"] == 1 and body["queue"]["oldest_queued_age_seconds"] >= 0
    assert "last_completed_sync_at" in body
    text = json.dumps(body)
    assert trader[0].username not in text and "st-user-1" not in text and "auth-1" not in text


# --------------------------------------------------------------------------- burst


def burst_deliveries(
    rng: random.Random, connections: list[tuple[str, str]], distinct: int, total: int
) -> list[tuple[str, bytes, str]]:
    """`distinct` events over the connections, each sent 1–4 times, `total` deliveries in all, shuffled."""
    kinds = ["ACCOUNT_TRANSACTIONS_UPDATED"] * 7 + ["ACCOUNT_HOLDINGS_UPDATED"] * 2 + ["NEW_ACCOUNT_AVAILABLE"]
    copies = [1] * distinct
    while sum(copies) < total:
        i = rng.randrange(distinct)
        if copies[i] < 4:
            copies[i] += 1
    deliveries = []
    for i in range(distinct):
        auth_id, account_id = connections[i % len(connections)]
        payload = event(rng.choice(kinds), brokerageAuthorizationId=auth_id, accountId=account_id)
        body = json.dumps(payload).encode()
        deliveries += [(payload["webhookId"], body, webhook_signature(KEY, payload))] * copies[i]
    rng.shuffle(deliveries)
    return deliveries


def send_all(port: int, deliveries: list[tuple[str, bytes, str]], threads: int) -> list[tuple[int, str]]:
    """POST every delivery from `threads` keep-alive clients at once; (status, outcome) per delivery."""
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    queue = iter(deliveries)
    start = threading.Barrier(threads)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        while True:
            with lock:
                item = next(queue, None)
            if item is None:
                break
            _, body, signature = item
            status, response = request(
                conn, "POST", PATH, body, {"Content-Type": "application/json", "Signature": signature}
            )
            with lock:
                results.append((status, response.get("status", "")))
        conn.close()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def test_a_burst_of_1000_deliveries_with_duplicates_from_8_threads_stores_each_event_once(live, session, engine):
    user = make_user(session)
    session.add(SnapTradeUser(user_id=user.id, snaptrade_user_id="st-user-1", user_secret_encrypted="x"))
    session.commit()
    connections = []
    for n in range(5):
        conn = make_connection(session, user, authorization_id=f"auth-burst-{n}")
        connections.append((conn.authorization_id, make_account(session, conn).snaptrade_account_id))
    deliveries = burst_deliveries(random.Random(42), connections, distinct=400, total=1000)

    started = time.perf_counter()
    results = send_all(live.port, deliveries, threads=8)
    elapsed = time.perf_counter() - started

    distinct_ids = {d[0] for d in deliveries}
    assert len(results) == 1000 and {s for s, _ in results} == {200}
    assert Counter(o for _, o in results) == {"accepted": 400, "duplicate": 600}
    session.expire_all()
    stored = session.exec(select(WebhookEvent.webhook_id, WebhookEvent.status)).all()
    assert len(stored) == 400 and {w for w, _ in stored} == distinct_ids
    assert "received" not in {s for _, s in stored}
    queued = Counter(
        session.exec(select(TransactionSyncLog.connection_id).where(TransactionSyncLog.status == "queued")).all()
    )
    assert len(queued) == 5 and max(queued.values()) == 1
    assert count(session, TransactionSyncLog) == 5
    assert count(session, BrokerageAccount, BrokerageAccount.has_pending_hint.is_(True)) == 5
    print(f"\nburst[{engine.dialect.name}]: 1000 deliveries (400 distinct) in {elapsed:.2f} s, "
          f"{1000 / elapsed:.0f} req/s; stored {len(stored)}, queued runs {sum(queued.values())}")  # fmt: skip
    assert elapsed < 30


# --------------------------------------------------------------------------- the sandbox's own webhooks


def test_the_sandbox_signed_webhooks_mark_a_broken_connection_and_queue_syncs(live, session):
    from core.accounts.connections import ensure_snaptrade_user, reconcile_connections
    from sandbox import Sandbox

    sb = Sandbox(webhook_url=live.webhook_url).start()
    try:
        configure_endpoint(sb.base_url, sb.client_id, sb.consumer_key)
        user = make_user(session)
        identity = ensure_snaptrade_user(session, user.id)  # registers at the sandbox: USER_REGISTERED
        auth_id = sb.create_connection(identity.snaptrade_user_id, broker="SANDBOX_US")
        assert sb.wait_for_webhooks(15)
        # Those arrived before we knew the connection: kept pending, nothing queued yet.
        session.expire_all()
        added = session.exec(select(WebhookEvent).where(WebhookEvent.event_type == "CONNECTION_ADDED")).one()
        assert added.status == "pending"
        assert count(session, TransactionSyncLog) == 0

        reconcile_connections(session, user_id=user.id)  # records the connection: the early events take effect
        conn = session.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == auth_id)).one()
        session.expire_all()
        assert session.get(WebhookEvent, added.id).status == "processed"

        sb.advance_day()
        assert sb.wait_for_webhooks(15)
        [run] = session.exec(select(TransactionSyncLog)).all()  # the first import; the day's update joined it
        assert (run.trigger, run.status, run.connection_id) == ("initial", "queued", conn.id)

        sb.disable_connection(auth_id)
        assert sb.wait_for_webhooks(15)
        session.expire_all()
        conn = session.get(BrokerageConnection, conn.id)
        assert conn.status == "needs_reconnect" and conn.disabled_at is not None
        assert conn.status_reason == "SnapTrade reported the connection as broken"

        deliveries = sb.webhook_deliveries()
        assert deliveries and all(d["delivered"] and d["last_status"] == 200 for d in deliveries)
        assert count(session, WebhookEvent) == len({d["payload"]["webhookId"] for d in deliveries})
    finally:
        sb.stop()


def test_with_the_database_down_webhooks_get_500_and_health_503_as_json(live, settings_env, caplog):
    settings_env.setenv("DATABASE_URL", "postgresql://monitor:pa55word@127.0.0.1:1/nowhere?connect_timeout=2")
    reset_settings_cache()
    status, body = post(live.port, event())
    assert (status, body) == (500, {"status": "rejected", "error": "internal error"})  # SnapTrade retries later
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        status, body = request(conn, "GET", "/api/health")
    finally:
        conn.close()
    assert status == 503 and body["status"] == "down" and body["database"]["reachable"] is False
    assert "pa55word" not in json.dumps(body)
    assert not any("legacy-shared-secret" in r.getMessage() or "pa55word" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_the_webhook_address_get_a_json_405(live, session, method):
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        conn.request(method, PATH)
        resp = conn.getresponse()
        status, allow, body = resp.status, resp.getheader("Allow"), json.loads(resp.read())
    finally:
        conn.close()
    assert (status, allow) == (405, "POST")
    assert body == {"status": "rejected", "error": "use POST to deliver a webhook"}
    assert count(session, WebhookEvent) == 0
