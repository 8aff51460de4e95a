"""core.snaptrade.client's activity pages: read from the raw answer once, exactly, without the SDK's own parse."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from importlib.metadata import version
from types import SimpleNamespace

import pytest
import snaptrade_client.api_client as sdk_api_client
import urllib3

from core.settings import get_settings
from core.snaptrade import client as snaptrade
from core.snaptrade.client import SnapTradeClient, UpstreamError

ACTIVITIES = "/accounts/{accountId}/activities"


def _user_with_history(sandbox, size: int = 40):
    client = SnapTradeClient()
    user_id = "tds-raw-pages"
    secret = client.register_user(user_id)
    sandbox.create_connection(user_id, "SANDBOX_US", history_size=size)
    account = client.list_accounts(user_id, secret)[0]["id"]
    return client, user_id, secret, account


def test_activity_pages_skip_the_sdk_parse_and_keep_exact_text(sandbox, monkeypatch):
    client, user_id, secret, account = _user_with_history(sandbox)
    parsed: list[int] = []
    counting = SimpleNamespace(loads=lambda data, **kw: parsed.append(len(data)) or json.loads(data, **kw))
    monkeypatch.setattr(sdk_api_client, "json", counting)

    page = client.activities_page(user_id, secret, account, offset=0, limit=1000)

    assert parsed == [], "the SDK parsed the activities answer although core.snaptrade.pagesplit reads it"
    assert page.total == len(page.activities) > 0
    assert len(page.raw_texts) == len(page.activities)
    for activity, text in zip(page.activities, page.raw_texts, strict=True):
        assert json.loads(text, parse_float=Decimal) == activity
        assert activity["amount"] is None or isinstance(activity["amount"], (Decimal, int))

    # Every other answer, and other users of the SDK in this process, still get the SDK's parsed body.
    client.list_accounts(user_id, secret)
    assert len(parsed) == 1
    sdk = client._sdk.account_information
    body = sdk.get_account_activities(account_id=account, user_id=user_id, user_secret=secret, limit=5).body
    assert len(body["data"]) == 5


def bounded(fn, seconds: float):
    """fn() in a thread that may hang (as it did before timeouts): fails the test after `seconds` instead."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds} s: the request has no timeout"
    return box


def _timing_client(sleep=time.sleep, endpoint=None):
    settings = get_settings().model_copy(update={"http_timeout_seconds": 0.5, "http_max_retries": 2,
                                                 "http_backoff_base_seconds": 0.01})  # fmt: skip
    return SnapTradeClient(settings=settings, endpoint=endpoint, sleep=sleep)


@pytest.mark.timeout(60)
def test_a_never_answering_endpoint_times_out_each_attempt_and_ends_with_a_short_error(sandbox):
    _, user_id, secret, account = _user_with_history(sandbox)
    client = _timing_client()
    sandbox.hold_responses(3600, path_template=ACTIVITIES)
    t0 = time.monotonic()
    box = bounded(lambda: client.activities_page(user_id, secret, account, offset=0), 20)  # old code: hung here
    elapsed = time.monotonic() - t0
    err = box.get("error")
    assert isinstance(err, UpstreamError), box
    assert str(err) == "SnapTrade did not answer the activities request within 0.5 s"
    assert client.requests_made == 3 and 1.5 <= elapsed < 5  # three attempts of 0.5 s each, then it gives up
    sandbox.hold_responses(0)  # the held requests answer now and reach the request log
    deadline = time.monotonic() + 5
    while sandbox.request_counts().get(ACTIVITIES, 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.request_counts()[ACTIVITIES] == 3


@pytest.mark.timeout(60)
def test_a_timed_out_request_is_retried_like_a_5xx_and_the_retry_can_succeed(sandbox):
    _, user_id, secret, account = _user_with_history(sandbox)
    sleeps: list[float] = []

    def backoff(seconds: float) -> None:  # SnapTrade recovers while we back off
        sleeps.append(seconds)
        sandbox.hold_responses(0)

    client = _timing_client(sleep=backoff)
    sandbox.hold_responses(3600, path_template=ACTIVITIES)
    box = bounded(lambda: client.activities_page(user_id, secret, account, offset=0), 20)
    assert "result" in box, box
    assert box["result"].total == 40 and client.requests_made == 2 and len(sleeps) == 1


def test_request_timeouts_rely_on_the_pinned_sdks_rest_client():
    """core.snaptrade.client._enforce_timeouts replaces the SDK's ApiClient.rest_client.pool_manager (the SDK passes
    timeout=None on every request). If this fails after an SDK upgrade, re-check that function."""
    assert version("snaptrade-python-sdk") == "13.0.49", (
        "snaptrade-python-sdk changed: re-check core.snaptrade.client._enforce_timeouts (it replaces "
        "ApiClient.rest_client.pool_manager) and the hold tests above, then update this pin"
    )
    client = _timing_client(endpoint={"base_url": "http://127.0.0.1:1", "client_id": "CID", "consumer_key": "key-1"})
    sdk = client._sdk
    groups = (sdk.account_information, sdk.authentication, sdk.connections)
    pools = {id(g.api_client.rest_client.pool_manager) for g in groups}
    pool = sdk.account_information.api_client.rest_client.pool_manager
    assert len(pools) == 1 and isinstance(pool, snaptrade._DefaultTimeoutPoolManager)
    assert (pool.default_timeout.connect_timeout, pool.default_timeout.read_timeout) == (0.5, 0.5)
    assert pool.connection_pool_kw["retries"].total is False  # urllib3's hidden retries stay off
    assert isinstance(pool, urllib3.PoolManager)


def test_the_retry_loop_reports_each_wait_and_its_end(sandbox):
    client, user_id, secret, account = _user_with_history(sandbox)
    notices: list[str | None] = []
    client.on_retry = notices.append
    waits = iter([lambda: None, sandbox.set_faults])  # SnapTrade answers 5xx twice, then recovers
    client._sleep = lambda seconds: next(waits)()
    sandbox.set_faults(error_rate=1.0)
    assert client.activities_page(user_id, secret, account, offset=0).total == 40
    attempts = get_settings().http_max_retries + 1
    assert [n and n.split(" — ")[1] for n in notices][1:] == [f"retrying in 1 s, attempt 3 of {attempts}", None]
    assert notices[0].startswith("SnapTrade answered 50") and notices[0].endswith(f"attempt 2 of {attempts}")
    notices.clear()
    client.activities_page(user_id, secret, account, offset=0)
    assert notices == []  # nothing to report when the first attempt succeeds
