"""Request authentication exactly as SnapTrade: clientId + timestamp query params and an HMAC `Signature` header."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
import requests
from snaptrade_client import ApiException

from sandbox.signing import request_signature, webhook_signature
from tests.sandbox.conftest import make_client


def test_reference_vectors():
    path = "/accounts/6f1c1f1e-1111-4222-8333-944444444444/activities"
    query = "startDate=2024-01-01&endDate=2024-12-31&offset=0&limit=1000&userId=u1&userSecret=sec-123&clientId=CID&timestamp=1700000000"
    assert request_signature("test-consumer-key", path, query, None) == "sbh/8vGeaNG0lbGaUY/IuYHGdvqX//hWSKQ/Rz8d2Go="
    body = {"customRedirect": "http://127.0.0.1:8501/callback", "immediateRedirect": True}
    login_query = "userId=u1&userSecret=sec-123&clientId=CID&timestamp=1700000000"
    assert (
        request_signature("test-consumer-key", "/snapTrade/login", login_query, body)
        == "BflN4gLqiIoV5SRc4tCeZh/6hFpQ/CCIE+pjGyT0ihk="
    )
    assert request_signature("k", "/p", "q", {}) == request_signature("k", "/p", "q", None)  # {} signs as null
    payload = {
        "webhookId": "w1", "clientId": "CID", "eventTimestamp": "2024-05-31T11:16:54.658533+00:00", "userId": "u1",
        "eventType": "ACCOUNT_TRANSACTIONS_UPDATED", "accountId": "a1", "brokerageAuthorizationId": "b1", "webhookSecret": "x",
    }  # fmt: skip
    assert webhook_signature("test-consumer-key", payload) == "huzvLtFfv6Y51RfJ8GwGPCZ51wPuRqnpknv37TuukHE="


def _raw(sb, method, path, params, body=None, *, key=None, sign_path=None, ts=None, signature=None):
    query = urlencode({**params, "clientId": sb.client_id, "timestamp": ts if ts is not None else int(time.time())})
    sig = signature or request_signature(key or sb.consumer_key, sign_path or path, query, body)
    data = None if body is None else json.dumps(body)
    return requests.request(
        method,
        f"{sb.base_url}{path}?{query}",
        data=data,
        headers={"Signature": sig, "Content-Type": "application/json"},
    )


def test_wrong_consumer_key_is_rejected_with_1076(sb, user):
    bad = make_client(sb, consumer_key="not-the-key")
    with pytest.raises(ApiException) as exc:
        bad.connections.list_brokerage_authorizations(**user.creds)
    assert exc.value.status == 401
    assert exc.value.body == {"detail": "Unable to verify signature sent", "status_code": 401, "code": "1076"}


def test_unknown_client_id_is_rejected(sb, user):
    bad = make_client(sb, client_id="SOMEONE-ELSE")
    with pytest.raises(ApiException) as exc:
        bad.connections.list_brokerage_authorizations(**user.creds)
    assert exc.value.status == 401


def test_stale_or_missing_timestamp_is_rejected(sb, user):
    params = {"userId": user.user_id, "userSecret": user.secret}
    assert _raw(sb, "GET", "/authorizations", params).status_code == 200
    stale = _raw(sb, "GET", "/authorizations", params, ts=int(time.time()) - 301)
    assert stale.status_code == 401 and stale.json()["code"] == "1076"
    future = _raw(sb, "GET", "/authorizations", params, ts=int(time.time()) + 301)
    assert future.status_code == 401
    millis = _raw(sb, "GET", "/authorizations", params, ts=int(time.time() * 1000))
    assert millis.status_code == 401
    unsigned = requests.get(f"{sb.base_url}/authorizations", params=params)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "0000"


def test_signature_covers_the_raw_query_and_the_body(sb, user):
    params = {"userId": user.user_id, "userSecret": user.secret}
    query = urlencode({**params, "clientId": sb.client_id, "timestamp": int(time.time())})
    reordered = "&".join(reversed(query.split("&")))
    sig = request_signature(sb.consumer_key, "/authorizations", query, None)
    resp = requests.get(f"{sb.base_url}/authorizations?{reordered}", headers={"Signature": sig})
    assert resp.status_code == 401  # same parameters, different raw query: not the signed request

    # a body whose keys arrive in another order still verifies: the server re-dumps with sort_keys
    query = urlencode({"clientId": sb.client_id, "timestamp": int(time.time())})
    body = {"userId": "zed"}
    sig = request_signature(sb.consumer_key, "/snapTrade/registerUser", query, body)
    ok = requests.post(
        f"{sb.base_url}/snapTrade/registerUser?{query}", data='{ "userId" : "zed" }', headers={"Signature": sig}
    )
    assert ok.status_code == 200
    tampered = requests.post(
        f"{sb.base_url}/snapTrade/registerUser?{query}", data='{"userId":"eve"}', headers={"Signature": sig}
    )
    assert tampered.status_code == 401


def test_login_with_empty_body_signs_as_null(sb, user):
    resp = _raw(sb, "POST", "/snapTrade/login", {"userId": user.user_id, "userSecret": user.secret}, body={})
    assert resp.status_code == 200 and set(resp.json()) == {"redirectURI", "sessionId"}


def test_legacy_api_v1_prefix_reaches_the_same_handlers(sb, user):
    params = {"userId": user.user_id, "userSecret": user.secret}
    for sign_path in ("/api/v1/authorizations", "/authorizations"):
        resp = _raw(sb, "GET", "/api/v1/authorizations", params, sign_path=sign_path)
        assert resp.status_code == 200, sign_path
        assert resp.headers["Deprecation"] == "@1781222400"
    # a modern path signed as if it had the prefix also verifies (emulator rule in REFERENCE §1)
    assert _raw(sb, "GET", "/authorizations", params, sign_path="/api/v1/authorizations").status_code == 200
    assert "Deprecation" not in _raw(sb, "GET", "/authorizations", params).headers


def test_wrong_user_secret_is_1083(sb, client, user):
    with pytest.raises(ApiException) as exc:
        client.account_information.list_all_user_accounts(user_id=user.user_id, user_secret="wrong")
    assert exc.value.status == 401
    assert exc.value.body == {"detail": "Invalid userID or userSecret provided", "status_code": 401, "code": "1083"}
    with pytest.raises(ApiException) as exc:
        client.account_information.list_all_user_accounts(user_id="nobody", user_secret=user.secret)
    assert exc.value.body["code"] == "1083"
