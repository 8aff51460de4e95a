"""Injected faults: SnapTrade's two rate-limit buckets, 5xx answers, dropped sockets and latency, all seeded."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from snaptrade_client import ApiException

from tests.sandbox.conftest import make_client
from tests.sandbox.test_signing import _raw


@pytest.fixture
def account(sb, user):
    sb.create_connection(user.user_id, "SANDBOX_US", history_size=20)
    return sb.connections(user.user_id)[0]["account_ids"][0]


def test_rate_limiting_is_off_by_default(sb, client, user, account):
    for _ in range(30):
        resp = client.account_information.get_account_activities(account_id=account, **user.creds)
    assert "X-RateLimit-Limit" not in resp.headers


def test_account_bucket_throttles_with_retry_after_and_headers(sb, client, user, account):
    sb.set_faults(rate_limit={"customer_limit": 250, "account_limit": 10, "window": 60})
    for i in range(10):
        resp = client.account_information.get_account_activities(account_id=account, **user.creds)
        assert resp.headers["X-RateLimit-Account-Remaining"] == str(9 - i)
        assert resp.headers["X-RateLimit-Limit"] == "250"
    with pytest.raises(ApiException) as exc:
        client.account_information.get_account_activities(account_id=account, **user.creds)
    e = exc.value
    assert e.status == 429 and e.body["code"] == "0000" and e.body["status_code"] == 429
    assert e.body["detail"].startswith("Request was throttled.")
    assert e.headers["Retry-After"] == "1"
    assert e.headers["X-RateLimit-Account-Remaining"] == "0" and e.headers["X-RateLimit-Remaining"] != "0"
    # other endpoints and other accounts still work: only this account's bucket is empty
    client.account_information.list_all_user_accounts(**user.creds)
    other = sb.connections(user.user_id)[0]["account_ids"][1]
    client.account_information.get_account_activities(account_id=other, **user.creds)


def test_customer_bucket_covers_every_signed_endpoint_and_rolls_over(sb, client, user, account):
    sb.set_faults(rate_limit={"customer_limit": 5, "account_limit": 100, "window": 1})
    for _ in range(5):
        client.connections.list_brokerage_authorizations(**user.creds)
    with pytest.raises(ApiException) as exc:
        client.account_information.list_all_user_accounts(**user.creds)
    assert exc.value.status == 429 and exc.value.headers["X-RateLimit-Remaining"] == "0"
    assert int(exc.value.headers["Retry-After"]) >= 1
    assert client.api_status.check().status == 200  # unsigned status is never throttled
    time.sleep(1.1)
    client.account_information.list_all_user_accounts(**user.creds)


def test_error_rate_answers_500_1000_or_503_3002_reproducibly(sb, client, user, account):
    def outcomes():
        sb.set_faults(error_rate=0.5, seed=9)
        out = []
        for _ in range(30):
            try:
                client.account_information.get_account_activities(account_id=account, **user.creds)
                out.append(200)
            except ApiException as exc:
                assert (exc.status, exc.body["code"]) in ((500, "1000"), (503, "3002"))
                out.append(exc.status)
        return out

    first = outcomes()
    assert {200, 500, 503} <= set(first)
    assert outcomes() == first


def test_dropped_connections_close_the_socket_without_a_response(sb, user, account):
    sb.set_faults(drop_rate=1.0)
    client = make_client(sb)
    with pytest.raises(Exception) as exc:
        client.account_information.list_all_user_accounts(**user.creds)
    assert "ApiException" not in type(exc.value).__name__
    assert sb.request_log()[-1]["status"] is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sb.base_url}/authorizations", params={"clientId": sb.client_id, "timestamp": int(time.time())})
    sb.set_faults()
    assert client.connections.list_brokerage_authorizations(**user.creds).status == 200


def test_latency_is_added_to_api_calls(sb, client, user):
    sb.set_faults(latency_ms=150)
    t0 = time.perf_counter()
    client.connections.list_brokerage_authorizations(**user.creds)
    assert time.perf_counter() - t0 >= 0.15


ACTIVITIES = "/accounts/{accountId}/activities"


def test_held_answers_wait_for_the_hold_and_clearing_releases_them_at_once(sb, client, user, account):
    sb.hold_responses(30, path_template=ACTIVITIES)
    t0 = time.perf_counter()
    client.account_information.list_all_user_accounts(**user.creds)  # other endpoints are not held
    assert time.perf_counter() - t0 < 1
    answered: list[tuple[int, float]] = []

    def fetch():
        resp = client.account_information.get_account_activities(account_id=account, **user.creds)
        answered.append((resp.status, time.perf_counter()))

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    time.sleep(0.5)
    assert not answered, "the held request answered before the hold was cleared"
    released = time.perf_counter()
    h = {"X-Sandbox-Admin-Token": sb.admin_token}
    assert requests.post(f"{sb.base_url}/__sandbox__/hold_responses", json={"seconds": 0}, headers=h).status_code == 200
    worker.join(5)
    assert answered and answered[0][0] == 200 and answered[0][1] - released < 1


def test_a_short_hold_delays_every_api_answer(sb, client, user):
    sb.hold_responses(0.3)
    t0 = time.perf_counter()
    client.connections.list_brokerage_authorizations(**user.creds)
    assert time.perf_counter() - t0 >= 0.3


@pytest.mark.parametrize("kind", ["truncated", "html"])
def test_corrupt_pages_answers_200_with_an_unreadable_body_after_the_good_ones(sb, user, account, kind):
    def raw_page():
        resp = _raw(sb, "GET", f"/accounts/{account}/activities", {"userId": user.user_id, "userSecret": user.secret})
        return resp.status_code, resp.content

    sb.corrupt_pages(count=2, kind=kind, after=1)
    answers = [raw_page() for _ in range(4)]
    assert [status for status, _ in answers] == [200] * 4
    assert json.loads(answers[0][1])["data"] and json.loads(answers[3][1])["data"]  # one good, two bad, good again
    for _, body in answers[1:3]:
        with pytest.raises(ValueError):
            json.loads(body)
    sb.corrupt_pages(count=-1)
    sb.set_faults()  # clears it
    assert json.loads(raw_page()[1])["data"]


def test_request_log_keeps_each_query_without_the_user_secret(sb, client, user, account):
    sb.reset_request_log()
    client.account_information.get_account_activities(account_id=account, offset=5, limit=3, **user.creds)
    [entry] = sb.request_log()
    assert entry["params"]["offset"] == "5" and entry["params"]["limit"] == "3"
    assert "userSecret" not in entry["params"] and user.secret not in str(entry)
