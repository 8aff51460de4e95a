"""The admin HTTP API, the command line, and persistence of state in a SQLite file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from snaptrade_client import ApiException

from sandbox import Sandbox
from tests.sandbox.conftest import make_client

ROOT = Path(__file__).resolve().parents[2]


def test_admin_api_requires_the_token(sb):
    url = f"{sb.base_url}/__sandbox__/advance_day"
    assert requests.post(url, json={}).status_code == 401
    assert requests.post(url, json={}, headers={"X-Sandbox-Admin-Token": "wrong"}).status_code == 401


def test_admin_api_drives_the_same_controls(sb):
    h = {"X-Sandbox-Admin-Token": sb.admin_token}
    base = f"{sb.base_url}/__sandbox__"
    auth_id = requests.post(
        f"{base}/create_connection", json={"user_id": "u9", "broker": "SANDBOX_CA", "history_size": 30}, headers=h
    ).json()["result"]
    assert sb.connections("u9")[0]["id"] == auth_id
    accounts = requests.get(f"{base}/accounts", params={"user_id": '"u9"'}, headers=h).json()["result"]
    assert [a["activity_count"] for a in accounts] == [30, 30]
    new = requests.post(
        f"{base}/add_backdated", json={"account_id": accounts[0]["id"], "count": 2, "days_back": 3}, headers=h
    ).json()["result"]
    assert len(new) == 2
    assert requests.post(f"{base}/set_faults", json={"error_rate": 0.0}, headers=h).status_code == 200
    counts = requests.get(f"{base}/request_counts", headers=h).json()["result"]
    assert counts == {}  # admin calls are not part of the API request log
    assert requests.post(f"{base}/rekey", json={"account_id": "nope", "count": 1}, headers=h).status_code == 404
    assert requests.post(f"{base}/not_a_control", json={}, headers=h).status_code == 404


def test_admin_api_invalidates_a_user_secret_without_revealing_the_new_one(sb, client, user):
    h = {"X-Sandbox-Admin-Token": sb.admin_token}
    r = requests.post(f"{sb.base_url}/__sandbox__/invalidate_user_secret", json={"user_id": user.user_id}, headers=h)
    assert r.status_code == 200 and r.json() == {"result": None}
    for call in (lambda: client.connections.list_brokerage_authorizations(**user.creds),
                 lambda: client.authentication.reset_snap_trade_user_secret(**user.creds)):  # fmt: skip
        with pytest.raises(ApiException) as exc:
            call()
        assert (exc.value.status, exc.value.body["code"]) == (401, "1083")
    assert requests.post(f"{sb.base_url}/__sandbox__/invalidate_user_secret", json={"user_id": "nobody"},
                         headers=h).status_code == 404  # fmt: skip


def test_state_file_survives_a_restart(tmp_path):
    path = str(tmp_path / "sandbox.db")
    with Sandbox(seed=3, state_file=path) as sb:
        keys = (sb.client_id, sb.consumer_key)
        client = make_client(sb)
        secret = client.authentication.register_snap_trade_user(user_id="demo").body["userSecret"]
        sb.create_connection("demo", "SANDBOX_US", history_size=40)
        account = sb.connections("demo")[0]["account_ids"][0]
        sb.rekey(account, 2)
        sb.advance_day()
        truth = sb.ground_truth("demo")
    with Sandbox(state_file=path) as again:
        assert (again.client_id, again.consumer_key) == keys
        client = make_client(again)
        accounts = client.account_information.list_all_user_accounts(user_id="demo", user_secret=secret).body["results"]
        assert [a["id"] for a in accounts] == list(truth)
        assert again.ground_truth("demo") == truth


def test_command_line_prints_generated_keys_and_serves():
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--seed", "4", "--admin-token", "tok"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        url = re.search(r"http://127\.0\.0\.1:\d+", lines[0]).group(0)
        assert lines[1].startswith("SNAPTRADE_CLIENT_ID=") and lines[2].startswith("SNAPTRADE_CONSUMER_KEY=")
        assert requests.get(url + "/").json()["online"] is True
        assert (
            requests.get(url + "/__sandbox__/info", headers={"X-Sandbox-Admin-Token": "tok"}).json()["result"][
                "base_url"
            ]
            == url
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
