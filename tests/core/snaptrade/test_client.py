"""core.snaptrade.client's activity pages: read from the raw answer once, exactly, without the SDK's own parse."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

import snaptrade_client.api_client as sdk_api_client

from core.snaptrade.client import SnapTradeClient


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
