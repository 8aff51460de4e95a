"""Webhooks: SnapTrade's events and payloads, signed with the consumer key, retried on failure."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox import Sandbox
from sandbox.signing import webhook_signature


class Receiver:
    """A local webhook endpoint that answers with scripted statuses and records what it got."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict, str]] = []
        receiver = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((json.loads(body), self.headers["Signature"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/snaptrade"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_lifecycle_events_are_delivered_and_signed(receiver):
    with Sandbox(seed=1, webhook_url=receiver.url, webhook_retry_delays=(0.05, 0.05, 0.05)) as sb:
        auth_id = sb.create_connection("u1", "SANDBOX_US")
        accounts = sb.connections("u1")[0]["account_ids"]
        sb.advance_day()
        sb.disable_connection(auth_id)
        sb.fix_connection(auth_id)
        sb.remove_account(accounts[1])
        sb.delete_connection(auth_id)
        assert sb.wait_for_webhooks()
        events = [p["eventType"] for p, _ in receiver.received]
        assert events == [
            "USER_REGISTERED", "CONNECTION_ATTEMPTED", "CONNECTION_ADDED", "NEW_ACCOUNT_AVAILABLE", "NEW_ACCOUNT_AVAILABLE",
            "ACCOUNT_TRANSACTIONS_INITIAL_UPDATE", "ACCOUNT_TRANSACTIONS_INITIAL_UPDATE",
            "ACCOUNT_TRANSACTIONS_UPDATED", "ACCOUNT_TRANSACTIONS_UPDATED",
            "CONNECTION_BROKEN", "CONNECTION_FIXED", "ACCOUNT_REMOVED", "CONNECTION_DELETED",
        ]  # fmt: skip
        for payload, signature in receiver.received:
            assert signature == webhook_signature(sb.consumer_key, payload) == sb.sign_webhook(payload)
            assert payload["clientId"] == sb.client_id and payload["userId"] == "u1"
            assert payload["eventTimestamp"].endswith("+00:00") and len(payload["webhookId"]) == 36
        added = receiver.received[2][0]
        assert added["brokerageAuthorizationId"] == auth_id and added["brokerageId"]
        initial = receiver.received[5][0]
        assert initial["accountId"] == accounts[0] and initial["brokerageAuthorizationId"] == auth_id
        assert all(d["delivered"] and d["attempts"] == 1 and d["last_status"] == 200 for d in sb.webhook_deliveries())


def test_failed_deliveries_are_retried_at_most_three_times():
    receiver = Receiver(statuses=[500, 503, 200, 500, 500, 500, 500])
    try:
        with Sandbox(webhook_url=receiver.url, webhook_retry_delays=(0.05, 0.1, 0.15)) as sb:
            sb.send_webhook("ACCOUNT_TRANSACTIONS_UPDATED", "u1", accountId="a1", brokerageAuthorizationId="b1")
            assert sb.wait_for_webhooks()
            sb.send_webhook("USER_DELETED", "u1")
            assert sb.wait_for_webhooks()
            first, second = sb.webhook_deliveries()
            assert (first["delivered"], first["attempts"], first["last_status"]) == (True, 3, 200)
            assert (second["delivered"], second["attempts"], second["last_status"]) == (False, 4, 500)
            ids = {p["webhookId"] for p, _ in receiver.received}
            assert len(ids) == 2  # a retry re-sends the same webhookId
    finally:
        receiver.close()


def test_unreachable_endpoint_is_a_failed_delivery():
    with Sandbox(webhook_url="http://127.0.0.1:9/nothing", webhook_retry_delays=(0.01,)) as sb:
        sb.send_webhook("USER_REGISTERED", "u1")
        assert sb.wait_for_webhooks()
        (d,) = sb.webhook_deliveries()
        assert d["delivered"] is False and d["attempts"] == 2 and d["last_status"] is None


def test_user_deleted_over_the_api_sends_user_deleted(receiver):
    from tests.sandbox.conftest import make_client

    with Sandbox(webhook_url=receiver.url) as sb:
        client = make_client(sb)
        client.authentication.register_snap_trade_user(user_id="gone")
        client.authentication.delete_snap_trade_user(user_id="gone")
        assert sb.wait_for_webhooks()
        assert [p["eventType"] for p, _ in receiver.received] == ["USER_REGISTERED", "USER_DELETED"]
