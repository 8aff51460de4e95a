"""The connection portal: login link → HTML forms → redirect back with SnapTrade's status parameters."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from snaptrade_client import ApiException

CALLBACK = "http://127.0.0.1:8501/callback"


def _login(client, user, **options):
    return client.authentication.login_snap_trade_user(**user.creds, **options).body


def _forms(html: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(action, [(button name, value, label)]) of every form on a page."""
    out = []
    for action, inner in re.findall(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', html, re.S):
        buttons = re.findall(r'<button type="submit" name="(\w+)" value="([^"]+)">([^<]+)</button>', inner)
        hidden = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]+)">', inner)
        out.append((action, buttons, hidden))
    return out


def _press(base: str, html: str, label: str) -> requests.Response:
    """Click the button with this accessible name, like a user (or Playwright) would."""
    for action, buttons, hidden in _forms(html):
        for name, value, text in buttons:
            if text == label:
                data = dict(hidden) | {name: value}
                return requests.post(urljoin(base, action), data=data, allow_redirects=False)
    raise AssertionError(f"no button {label!r} on the page")


def _result(resp: requests.Response) -> dict[str, str]:
    url = resp.headers.get("Location") or re.search(r'<a href="([^"]+)">Return to app</a>', resp.text).group(1)
    url = url.replace("&amp;", "&")
    assert url.startswith(CALLBACK)
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_login_returns_a_portal_link_to_the_sandbox(sb, client, user):
    body = _login(client, user)
    assert set(body) == {"redirectURI", "sessionId"}
    assert body["redirectURI"].startswith(sb.base_url) and body["sessionId"] in body["redirectURI"]


def test_success_creates_a_connection_and_redirects_with_its_id(sb, client, user):
    link = _login(client, user, custom_redirect=CALLBACK, connection_type="read")["redirectURI"]
    picker = requests.get(link)
    assert picker.status_code == 200
    labels = [text for _, buttons, _ in _forms(picker.text) for _, _, text in buttons]
    assert {
        "Sandbox US Brokerage",
        "Sandbox Crypto Exchange",
        "Sandbox Canada Brokerage",
        "Sandbox Date-Only Brokerage",
        "Cancel",
    } <= set(labels)
    creds = _press(link, picker.text, "Sandbox Crypto Exchange")
    done = _press(link, creds.text, "Connect")
    result = _result(done)
    assert result["status"] == "SUCCESS"
    auths = client.connections.list_brokerage_authorizations(**user.creds).body
    assert [a["id"] for a in auths] == [result["connection_id"]]
    assert auths[0]["brokerage"]["slug"] == "SANDBOX_CRYPTO" and auths[0]["type"] == "read"
    assert requests.get(link).status_code == 400  # a link works once


def test_broker_and_immediate_redirect_skip_the_picker_and_the_finish_page(sb, client, user):
    link = _login(
        client, user, broker="SANDBOX_CA", custom_redirect=CALLBACK, immediate_redirect=True, connection_type="trade"
    )["redirectURI"]
    page = requests.get(link)
    labels = [text for _, buttons, _ in _forms(page.text) for _, _, text in buttons]
    assert labels == ["Connect", "Simulate invalid credentials", "Cancel"]
    assert "Sandbox Canada Brokerage" in page.text
    done = _press(link, page.text, "Connect")
    assert done.status_code == 303
    result = _result(done)
    assert result["status"] == "SUCCESS"
    auth = client.connections.detail_brokerage_authorization(
        authorization_id=result["connection_id"], **user.creds
    ).body
    assert auth["type"] == "trade"


def test_invalid_credentials_redirect_with_error_1066(sb, client, user):
    link = _login(client, user, broker="SANDBOX_US", custom_redirect=CALLBACK, immediate_redirect=True)["redirectURI"]
    done = _press(link, requests.get(link).text, "Simulate invalid credentials")
    assert _result(done) == {"status": "ERROR", "status_code": "403", "error_code": "1066"}
    assert client.connections.list_brokerage_authorizations(**user.creds).body == []


def test_cancel_is_abandoned(sb, client, user):
    link = _login(client, user, custom_redirect=CALLBACK)["redirectURI"]
    done = _press(link, requests.get(link).text, "Cancel")
    assert _result(done) == {"status": "ABANDONED"}


def test_expired_link_is_error_1006(sb, client, user):
    link = _login(client, user, custom_redirect=CALLBACK)["redirectURI"]
    sb.expire_portal_links()
    page = requests.get(link)
    assert page.status_code == 400 and "1006" in page.text
    assert _result(page) == {"status": "ERROR", "status_code": "400", "error_code": "1006"}


def test_reconnect_reenables_the_connection_and_keeps_ids(sb, client, user):
    auth_id = sb.create_connection(user.user_id, "SANDBOX_DATEONLY")
    accounts = sb.connections(user.user_id)[0]["account_ids"]
    sb.disable_connection(auth_id)
    link = _login(client, user, reconnect=auth_id, custom_redirect=CALLBACK, immediate_redirect=True)["redirectURI"]
    page = requests.get(link)
    assert "Sandbox Date-Only Brokerage" in page.text and "Sandbox US Brokerage" not in page.text
    result = _result(_press(link, page.text, "Connect"))
    assert result == {"status": "SUCCESS", "connection_id": auth_id}
    auths = client.connections.list_brokerage_authorizations(**user.creds).body
    assert [(a["id"], a["disabled"]) for a in auths] == [(auth_id, False)]
    assert sb.connections(user.user_id)[0]["account_ids"] == accounts


@pytest.mark.parametrize(
    "options",
    [
        {"broker": "NOPE"},
        {"locale": "fr"},
        {"reconnect": "not-a-uuid"},
        {"reconnect": "6f1c1f1e-1111-4222-8333-944444444444"},
    ],
)
def test_invalid_login_options_are_400_1012(sb, client, user, options):
    with pytest.raises(ApiException) as exc:
        _login(client, user, **options)
    assert (exc.value.status, exc.value.body["code"]) == (400, "1012")
