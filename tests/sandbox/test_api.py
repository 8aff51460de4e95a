"""Every endpoint through the real SDK over HTTP, with response shapes checked against the SDK's TypedDicts."""

from __future__ import annotations

import pytest
from snaptrade_client import ApiException
from snaptrade_client.type.account import Account
from snaptrade_client.type.account_position import AccountPosition
from snaptrade_client.type.account_universal_activity import AccountUniversalActivity
from snaptrade_client.type.balance import Balance
from snaptrade_client.type.brokerage import Brokerage
from snaptrade_client.type.brokerage_authorization import BrokerageAuthorization
from snaptrade_client.type.investment_account import InvestmentAccount
from snaptrade_client.type.options_symbol import OptionsSymbol
from snaptrade_client.type.symbol import Symbol

from tests.sandbox.conftest import check_shape


def test_status_is_unsigned_and_online(client):
    body = client.api_status.check().body
    assert body["online"] is True and isinstance(body["version"], int)


def test_register_list_reset_and_delete_users(sb, client):
    first = client.authentication.register_snap_trade_user(user_id="bob").body
    assert first["userId"] == "bob" and first["userSecret"]
    with pytest.raises(ApiException) as exc:
        client.authentication.register_snap_trade_user(user_id="bob")
    assert exc.value.status == 400 and "already exist" in exc.value.body["detail"]
    assert client.authentication.list_snap_trade_users().body == ["bob"]

    new = client.authentication.reset_snap_trade_user_secret(user_id="bob", user_secret=first["userSecret"]).body
    assert new["userSecret"] != first["userSecret"]
    with pytest.raises(ApiException) as exc:  # the old secret died
        client.connections.list_brokerage_authorizations(user_id="bob", user_secret=first["userSecret"])
    assert (exc.value.status, exc.value.body["code"]) == (401, "1083")

    deleted = client.authentication.delete_snap_trade_user(user_id="bob").body
    assert deleted == {"status": "deleted", "detail": deleted["detail"], "userId": "bob"}
    assert client.authentication.list_snap_trade_users().body == []


def test_reset_user_secret_takes_the_current_secret_in_the_body_and_refuses_anything_else(sb, client, user):
    """REFERENCE §4: commercial keys only, body {userId, userSecret}, no user query params; 400 or 401 1083."""
    sb.reset_request_log()
    new = client.authentication.reset_snap_trade_user_secret(**user.creds).body
    assert new["userId"] == user.user_id and new["userSecret"] not in ("", user.secret)
    assert [r["status"] for r in sb.request_log()] == [200]
    for creds in (user.creds, {"user_id": "nobody", "user_secret": new["userSecret"]}):  # old secret, unknown user
        with pytest.raises(ApiException) as exc:
            client.authentication.reset_snap_trade_user_secret(**creds)
        assert (exc.value.status, exc.value.body["code"]) == (401, "1083")
    with pytest.raises(ApiException) as exc:
        client.authentication.reset_snap_trade_user_secret(user_id=user.user_id)
    assert (exc.value.status, exc.value.body["code"]) == (400, "1012")
    assert (
        client.connections.list_brokerage_authorizations(user_id=user.user_id, user_secret=new["userSecret"]).body == []
    )


def test_connections_and_accounts_have_snaptrade_shapes(sb, client, user):
    auth_id = sb.create_connection(user.user_id, "SANDBOX_US")
    auths = client.connections.list_brokerage_authorizations(**user.creds).body
    assert [a["id"] for a in auths] == [auth_id]
    check_shape(auths[0], BrokerageAuthorization)
    assert auths[0]["brokerage"]["slug"] == "SANDBOX_US" and auths[0]["disabled"] is False
    detail = client.connections.detail_brokerage_authorization(authorization_id=auth_id, **user.creds).body
    assert detail == auths[0]

    legacy = client.account_information.list_user_accounts(**user.creds).body
    assert len(legacy) == 2
    for acct in legacy:
        check_shape(acct, Account)
        ts = acct["sync_status"]["transactions"]
        assert ts["initial_sync_completed"] is True
        assert ts["last_successful_sync"] == "2026-06-14"  # a day behind "today"
        assert len(ts["first_transaction_date"]) == 10
        holdings = acct["sync_status"]["holdings"]
        assert holdings["last_successful_sync"].endswith("+00:00") and holdings["holdings_unavailable"] is False
    by_auth = client.connections.list_brokerage_authorization_accounts(authorization_id=auth_id, **user.creds).body
    assert [a["id"] for a in by_auth] == [a["id"] for a in legacy]

    all_accounts = client.account_information.list_all_user_accounts(**user.creds).body["results"]
    by_conn = client.connections.list_connection_accounts(connection_id=auth_id, **user.creds).body["results"]
    assert all_accounts == by_conn
    for acct in all_accounts:
        check_shape(acct, InvestmentAccount)
        assert acct["masked_account_number"].startswith("****")

    account_id = legacy[0]["id"]
    one = client.account_information.get_user_account_details(account_id=account_id, **user.creds).body
    assert one == legacy[0]
    details = client.account_information.get_account_details(account_id=account_id, **user.creds).body
    assert details == all_accounts[0]


def test_balances_positions_and_brokerages(sb, client, user):
    sb.create_connection(user.user_id, "SANDBOX_CA")
    account_id = client.account_information.list_all_user_accounts(**user.creds).body["results"][0]["id"]
    balances = client.account_information.get_user_account_balance(account_id=account_id, **user.creds).body
    for b in balances:
        check_shape(b, Balance)
    assert balances[0]["currency"]["code"] == "CAD"
    positions = client.account_information.get_all_account_positions(account_id=account_id, **user.creds).body
    assert positions["data_freshness"]["as_of"]
    for p in positions["results"]:
        check_shape(p, AccountPosition)
        assert isinstance(p["units"], str) and isinstance(p["price"], str)  # strings here, unlike activities
    brokerages = client.reference_data.list_all_brokerages().body
    for b in brokerages:
        check_shape(b, Brokerage)
    assert {"SANDBOX_US", "SANDBOX_CRYPTO", "SANDBOX_CA", "SANDBOX_DATEONLY"} <= {b["slug"] for b in brokerages}


def test_every_activity_has_the_activity_shape(sb, client, user):
    for broker in ("SANDBOX_US", "SANDBOX_CRYPTO", "SANDBOX_CA", "SANDBOX_DATEONLY"):
        sb.create_connection(user.user_id, broker, history_size=400)
    for account in sb.accounts(user.user_id):
        body = client.account_information.get_account_activities(account_id=account["id"], **user.creds).body
        assert body["pagination"] == {"offset": 0, "limit": 1000, "total": 400}
        for row in body["data"]:
            check_shape(row, AccountUniversalActivity)
            if row["symbol"] is not None:
                check_shape(row["symbol"], Symbol)
                assert set(row["symbol"]) >= {
                    "id",
                    "symbol",
                    "raw_symbol",
                    "description",
                    "currency",
                    "exchange",
                    "type",
                    "figi_code",
                }
            if row["option_symbol"] is not None:
                check_shape(row["option_symbol"], OptionsSymbol)


def test_refresh_sync_disable_and_delete_connection(sb, client, user):
    auth_id = sb.create_connection(user.user_id, "SANDBOX_US")
    refreshed = client.connections.refresh_brokerage_authorization(authorization_id=auth_id, **user.creds).body
    assert refreshed == {"detail": f"Connection {auth_id} scheduled for refresh"}
    client.connections.sync_brokerage_authorization_transactions(authorization_id=auth_id, **user.creds)
    client.connections.disable_brokerage_authorization(authorization_id=auth_id, **user.creds)
    auth = client.connections.detail_brokerage_authorization(authorization_id=auth_id, **user.creds).body
    assert auth["disabled"] is True and auth["disabled_date"]
    with pytest.raises(ApiException) as exc:
        client.connections.refresh_brokerage_authorization(authorization_id=auth_id, **user.creds)
    assert (exc.value.status, exc.value.body["code"]) == (402, "3003")
    with pytest.raises(ApiException) as exc:
        client.connections.disable_brokerage_authorization(authorization_id=auth_id, **user.creds)
    assert (exc.value.status, exc.value.body["code"]) == (402, "3011")

    deleted = client.connections.delete_connection(connection_id=auth_id, **user.creds).body
    assert deleted["connection_id"] == auth_id
    assert client.connections.list_brokerage_authorizations(**user.creds).body == []


def test_disabled_connection_keeps_serving_cached_activities_without_new_ones(sb, client, user):
    auth_id = sb.create_connection(user.user_id, "SANDBOX_US", history_size=50)
    account_id = sb.connections(user.user_id)[0]["account_ids"][0]
    sb.disable_connection(auth_id, reason="password changed")
    sb.advance_day(3)
    body = client.account_information.get_account_activities(account_id=account_id, **user.creds).body
    assert body["pagination"]["total"] == 50
    acct = client.account_information.get_user_account_details(account_id=account_id, **user.creds).body
    assert acct["sync_status"]["transactions"]["last_successful_sync"] == "2026-06-14"

    sb.fix_connection(auth_id)  # the missed days sync when the connection is repaired
    body = client.account_information.get_account_activities(account_id=account_id, **user.creds).body
    assert body["pagination"]["total"] > 50
    acct = client.account_information.get_user_account_details(account_id=account_id, **user.creds).body
    assert acct["sync_status"]["transactions"]["last_successful_sync"] == "2026-06-17"


def test_unknown_and_foreign_resources_are_404_1011(sb, client, user):
    other = client.authentication.register_snap_trade_user(user_id="mallory").body
    sb.create_connection("mallory", "SANDBOX_US")
    foreign_account = sb.connections("mallory")[0]["account_ids"][0]
    foreign_auth = sb.connections("mallory")[0]["id"]
    missing = "6f1c1f1e-1111-4222-8333-944444444444"
    calls = [
        lambda: client.account_information.get_account_activities(account_id=missing, **user.creds),
        lambda: client.account_information.get_account_activities(account_id=foreign_account, **user.creds),
        lambda: client.account_information.get_account_details(account_id=foreign_account, **user.creds),
        lambda: client.connections.detail_brokerage_authorization(authorization_id=foreign_auth, **user.creds),
        lambda: client.connections.detail_brokerage_authorization(authorization_id=missing, **user.creds),
    ]
    for call in calls:
        with pytest.raises(ApiException) as exc:
            call()
        assert exc.value.status == 404
        assert exc.value.body == {"detail": exc.value.body["detail"], "status_code": 404, "code": "1011"}
    assert other["userId"] == "mallory"


def test_removed_account_disappears(sb, client, user):
    sb.create_connection(user.user_id, "SANDBOX_US")
    first, second = sb.connections(user.user_id)[0]["account_ids"]
    sb.remove_account(first)
    ids = [a["id"] for a in client.account_information.list_all_user_accounts(**user.creds).body["results"]]
    assert ids == [second]
    with pytest.raises(ApiException) as exc:
        client.account_information.get_account_activities(account_id=first, **user.creds)
    assert exc.value.status == 404


def test_every_response_has_a_request_id(sb, client, user):
    resp = client.account_information.list_all_user_accounts(**user.creds)
    assert len(resp.headers["X-Request-ID"]) >= 16
    with pytest.raises(ApiException) as exc:
        client.connections.detail_brokerage_authorization(
            authorization_id="6f1c1f1e-1111-4222-8333-944444444444", **user.creds
        )
    assert exc.value.headers["X-Request-ID"]


def test_request_log_counts_by_path_template(sb, client, user):
    sb.create_connection(user.user_id, "SANDBOX_US")
    sb.reset_request_log()
    for account in sb.accounts(user.user_id):
        client.account_information.get_account_activities(account_id=account["id"], limit=10, **user.creds)
    client.account_information.list_all_user_accounts(**user.creds)
    assert sb.request_counts() == {"/accounts/{accountId}/activities": 2, "/accounts/all": 1}
    log = sb.request_log()
    assert log[0]["method"] == "GET" and log[0]["path_template"] == "/accounts/{accountId}/activities"
    assert [e["status"] for e in log] == [200, 200, 200]
    sb.reset_request_log()
    assert sb.request_log() == [] and sb.request_counts() == {}
