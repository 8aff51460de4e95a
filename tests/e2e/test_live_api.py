"""The HTTP routes beside the pages, against the live `streamlit run app.py` (no browser needed):
the health document monitors read, and the webhook receiver refusing what SnapTrade did not sign."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

pytestmark = pytest.mark.e2e

# core/web/health.py: the document of GET /api/health (aggregates only; no names, ids or secrets).
HEALTH_FIELDS = {"status", "version", "time", "database", "connections", "queue", "last_completed_sync_at"}
QUEUE_FIELDS = {"depth", "running", "stalled_running", "oldest_queued_age_seconds"}


def test_health_answers_json_with_the_documented_fields(live_app):
    r = requests.get(f"{live_app.base_url}/api/health", timeout=10)

    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers.get("cache-control") == "no-store"
    body = r.json()
    assert HEALTH_FIELDS <= set(body), body
    assert body["status"] in ("ok", "degraded"), body
    if body["status"] == "degraded":
        assert body["reasons"], body
    assert isinstance(body["version"], str) and body["version"]
    datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
    assert body["database"] == {"reachable": True}
    assert set(body["connections"]) == {"active", "failing"}
    assert all(isinstance(v, int) and v >= 0 for v in body["connections"].values())
    assert set(body["queue"]) == QUEUE_FIELDS
    assert all(isinstance(body["queue"][k], int) for k in ("depth", "running", "stalled_running"))
    assert body["queue"]["oldest_queued_age_seconds"] is None or body["queue"]["oldest_queued_age_seconds"] >= 0
    assert body["last_completed_sync_at"] is None or isinstance(body["last_completed_sync_at"], str)
    # Unauthenticated endpoint: nothing secret in it.
    assert live_app.admin_token not in r.text


def _broken_event() -> dict:
    return {
        "webhookId": str(uuid.uuid4()),
        "clientId": "forged-client",
        "eventTimestamp": datetime.now(UTC).isoformat(),
        "userId": "tds-someone",
        "eventType": "CONNECTION_BROKEN",
        "brokerageAuthorizationId": str(uuid.uuid4()),
    }


@pytest.mark.parametrize("how", ["no signature", "garbage signature", "signed with the wrong key"])
def test_forged_webhook_is_refused_with_401(live_app, how):
    body = json.dumps(_broken_event(), separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json"}
    if how == "garbage signature":
        headers["Signature"] = "bm90LWEtc2lnbmF0dXJl"
    elif how == "signed with the wrong key":
        headers["Signature"] = base64.b64encode(
            hmac.new(b"not-the-consumer-key", body, hashlib.sha256).digest()
        ).decode()
    failing_before = live_app.health()["connections"]["failing"]

    r = requests.post(f"{live_app.base_url}/api/webhooks/snaptrade", data=body, headers=headers, timeout=10)

    assert r.status_code == 401, r.text
    assert r.json()["status"] == "rejected"
    assert live_app.health()["connections"]["failing"] == failing_before


def test_control_the_same_event_signed_with_the_real_key_is_accepted(live_app):
    """Proves the 401s above come from the signature check, not from a route that refuses everything."""
    endpoint = json.loads((live_app.data_dir / "sandbox_endpoint.json").read_text())
    event = {**_broken_event(), "clientId": endpoint["client_id"]}
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    signature = base64.b64encode(hmac.new(endpoint["consumer_key"].encode(), body, hashlib.sha256).digest()).decode()

    r = requests.post(f"{live_app.base_url}/api/webhooks/snaptrade", data=body, timeout=10,
                      headers={"Content-Type": "application/json", "Signature": signature})  # fmt: skip

    assert r.status_code == 200, r.text
    assert r.json()["webhookId"] == event["webhookId"]


def test_keep_alive_requests_are_not_held_back_by_nagles_algorithm(live_app):
    """app._tune_server sets TCP_NODELAY on Streamlit's listening socket. Without it every request after the
    first on a keep-alive connection waits for the client's delayed ACK: at least ~40 ms each, a fixed kernel
    timer, where the answer itself takes about 1 ms. So this checks a behaviour, not a speed: with Nagle on,
    all 15 requests would be that slow; a loaded machine might make a few slow, never most."""
    times: list[float] = []
    with requests.Session() as http:
        http.get(f"{live_app.base_url}/_stcore/health", timeout=10).raise_for_status()  # opens the connection
        for _ in range(15):
            t0 = time.perf_counter()
            http.get(f"{live_app.base_url}/_stcore/health", timeout=10).raise_for_status()
            times.append(time.perf_counter() - t0)
    slow = [t for t in times if t >= 0.035]
    assert len(slow) <= 5, [f"{t * 1000:.1f} ms" for t in times]


def test_a_browser_style_get_of_the_webhook_address_is_a_json_405(live_app):
    """Streamlit would answer a GET here with its page shell (a blank page and module errors)."""
    r = requests.get(f"{live_app.base_url}/api/webhooks/snaptrade", headers={"Accept": "text/html"}, timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert r.json()["status"] == "rejected"
