"""Activities: paging, filters and ordering as SnapTrade serves them, and realistic, deterministic, mutable data."""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal

import pytest
from snaptrade_client import ApiException

from sandbox import Sandbox
from tests.sandbox.conftest import make_client


def _activities(client, user, account_id, **kw):
    return client.account_information.get_account_activities(account_id=account_id, **user.creds, **kw).body


def _all_pages(client, user, account_id, **kw):
    rows, offset = [], 0
    while True:
        body = _activities(client, user, account_id, offset=offset, limit=1000, **kw)
        rows.extend(body["data"])
        offset += len(body["data"])
        if not body["data"] or offset >= body["pagination"]["total"]:
            return rows


@pytest.fixture
def account(sb, user):
    sb.create_connection(user.user_id, "SANDBOX_US", history_size=2500)
    return sb.connections(user.user_id)[0]["account_ids"][0]


def test_pages_are_newest_first_and_cover_the_history_exactly_once(sb, client, user, account):
    rows = _all_pages(client, user, account)
    assert len(rows) == 2500 == len({r["id"] for r in rows})
    stamps = [r["trade_date"] or r["settlement_date"] for r in rows]
    dated = [s for r, s in zip(rows, stamps, strict=True) if r["trade_date"]]
    assert dated == sorted(dated, reverse=True)
    assert rows == sb.ground_truth(user.user_id)[account]


def test_limit_is_clamped_to_1000_and_offset_past_the_end_is_empty(client, user, account):
    body = _activities(client, user, account, limit=5000)
    assert len(body["data"]) == 1000 and body["pagination"] == {"offset": 0, "limit": 1000, "total": 2500}
    body = _activities(client, user, account, offset=2490, limit=50)
    assert len(body["data"]) == 10 and body["pagination"] == {"offset": 2490, "limit": 50, "total": 2500}
    assert _activities(client, user, account, offset=9999)["data"] == []
    for bad in ({"limit": 0}, {"offset": -1}):
        with pytest.raises(ApiException) as exc:
            _activities(client, user, account, **bad)
        assert (exc.value.status, exc.value.body["code"]) == (400, "1012")


def test_date_range_is_inclusive_on_both_ends(sb, client, user, account):
    truth = sb.ground_truth(user.user_id)[account]
    days = sorted({r["trade_date"][:10] for r in truth if r["trade_date"]})
    start, end = days[100], days[140]
    body = _activities(client, user, account, start_date=start, end_date=end)
    expected = [r for r in truth if r["trade_date"] and start <= r["trade_date"][:10] <= end]
    got = [r for r in body["data"] if r["trade_date"]]
    assert got == expected and body["pagination"]["total"] >= len(expected) > 0
    assert got[0]["trade_date"][:10] == end and got[-1]["trade_date"][:10] == start


def test_type_filter_takes_a_comma_list(sb, client, user, account):
    truth = sb.ground_truth(user.user_id)[account]
    body = _activities(client, user, account, type="DIVIDEND,REI")
    expected = [r for r in truth if r["type"] in ("DIVIDEND", "REI")]
    assert body["data"] == expected and body["pagination"]["total"] == len(expected)
    page2 = _activities(client, user, account, type="BUY", offset=100, limit=100)
    assert page2["data"] == [r for r in truth if r["type"] == "BUY"][100:200]
    assert _activities(client, user, account, type="NOT_A_TYPE")["pagination"]["total"] == 0


def test_same_seed_same_history_and_other_seed_differs():
    def snapshot(seed):
        with Sandbox(seed=seed, today="2026-06-15") as sb:
            sb.create_connection("u", "SANDBOX_US", history_size=300)
            return sb.ground_truth("u")

    first, again, other = snapshot(5), snapshot(5), snapshot(6)
    assert first == again
    assert first != other


def test_history_is_realistic(sb, user):
    for broker in ("SANDBOX_US", "SANDBOX_CRYPTO", "SANDBOX_CA", "SANDBOX_DATEONLY"):
        sb.create_connection(user.user_id, broker, history_size=1500)
    rows = [r for acct in sb.ground_truth(user.user_id).values() for r in acct]
    types = Counter(r["type"] for r in rows)
    for t in ("BUY", "SELL", "DIVIDEND", "REI", "FEE", "INTEREST", "TAX", "CONTRIBUTION", "WITHDRAWAL", "SPLIT",
              "OPTIONASSIGNMENT", "OPTIONEXPIRATION", "OPTIONEXERCISE", "EXTERNAL_ASSET_TRANSFER_IN", "TRANSFER",
              "JOURNAL", "MISC_CREDIT"):  # fmt: skip
        assert types[t] > 0, t
    # options: OCC tickers, both spellings for one contract, option_type on option trades
    options = [r for r in rows if r["option_symbol"]]
    spellings: dict[str, set[str]] = {}
    for r in options:
        ticker = r["option_symbol"]["ticker"]
        assert re.fullmatch(r"[A-Z]{1,6} *\d{6}[CP]\d{8}", ticker)
        spellings.setdefault(ticker.replace(" ", ""), set()).add(ticker)
    assert any(len(s) == 2 for s in spellings.values())
    assert {r["option_type"] for r in options if r["type"] in ("BUY", "SELL")} == {
        "BUY_TO_OPEN",
        "SELL_TO_CLOSE",
        "SELL_TO_OPEN",
        "BUY_TO_CLOSE",
    }
    # amount signs (REFERENCE §7)
    for r in rows:
        if r["type"] in ("BUY", "WITHDRAWAL", "FEE"):
            assert r["amount"] < 0, r
        if r["type"] in ("SELL", "DIVIDEND", "CONTRIBUTION", "INTEREST"):
            assert r["amount"] > 0, r
    assert all(r["symbol"] is None for r in rows if r["type"] in ("CONTRIBUTION", "WITHDRAWAL"))
    # crypto fractional units with 8 decimals, fx rows, date-only dates, the odd null trade_date
    assert any(
        len(str(Decimal(str(r["units"]))).partition(".")[2]) == 8
        for r in rows
        if r["institution"] == "Sandbox Crypto Exchange"
    )
    assert any(r["fx_rate"] is not None and r["currency"]["code"] == "CAD" for r in rows)
    dateonly = [r["trade_date"] for r in rows if r["institution"] == "Sandbox Date-Only Brokerage" and r["trade_date"]]
    assert any(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dateonly)
    assert any(d.endswith("T00:00:00Z") for d in dateonly)
    assert any(r["trade_date"] is None and r["settlement_date"] for r in rows)
    # rows of one order share external_reference_id; two separate identical trades exist
    refs = Counter(r["external_reference_id"] for r in rows if r["external_reference_id"])
    assert max(refs.values()) >= 2
    content = Counter(
        json.dumps({k: v for k, v in r.items() if k != "id"}, sort_keys=True)
        for r in rows
        if r["type"] in ("BUY", "SELL")
    )
    assert max(content.values()) >= 2


def test_numbers_are_exact_decimals_on_the_wire(sb, user, account):
    client = make_client(sb)
    resp = client.account_information.get_account_activities(account_id=account, **user.creds)
    raw = json.dumps(resp.body)
    assert "0000000001" not in raw and "9999999" not in raw  # no float artifacts such as 0.30000000000000004
    for r in resp.body["data"]:
        for key in ("price", "units", "amount", "fee"):
            value = r[key]
            if value is not None:
                assert Decimal(str(value)) == Decimal(repr(value))


def test_advance_day_adds_new_rows_at_the_front_and_moves_sync_status(sb, client, user, account):
    before = _activities(client, user, account, limit=1)
    sb.advance_day()
    after = _activities(client, user, account, limit=1000)
    added = after["pagination"]["total"] - before["pagination"]["total"]
    assert added >= 1
    assert after["data"][0]["trade_date"].startswith("2026-06-15")
    assert after["data"][added]["id"] == before["data"][0]["id"]
    details = client.account_information.get_account_details(account_id=account, **user.creds).body
    assert details["sync_status"]["transactions"]["last_successful_sync"] == "2026-06-15"


def test_backdated_rows_appear_inside_the_window(sb, client, user, account):
    ids = sb.add_backdated(account, count=7, days_back=10)
    assert len(ids) == len(set(ids)) == 7
    recent = _activities(client, user, account, start_date="2026-06-05", end_date="2026-06-14")
    assert set(ids) <= {r["id"] for r in recent["data"]}
    truth = sb.ground_truth(user.user_id)[account]
    assert len(truth) == 2507 and len({r["id"] for r in truth}) == 2507
    assert _all_pages(client, user, account) == truth


def test_rekey_keeps_content_and_swaps_the_id(sb, client, user, account):
    before = {r["id"]: r for r in sb.iter_ground_truth(account)}
    pairs = sb.rekey(account, count=5)
    after = {r["id"]: r for r in _all_pages(client, user, account)}
    assert len(pairs) == 5 and len(after) == len(before)
    for old, new in pairs:
        assert old not in after and new in after
        assert {**before[old], "id": new} == after[new]


def test_malformed_records_at_a_seeded_rate(sb, client, user, account):
    sb.set_faults(malformed_rate=0.05, seed=3)
    rows = _all_pages(client, user, account)
    bad = [r for r in rows if "id" not in r or r.get("amount") == "abc" or "trade_date" not in r
           or (isinstance(r.get("trade_date"), str) and "/" in r["trade_date"]) or isinstance(r.get("units"), str)]  # fmt: skip
    assert 50 <= len(bad) <= 200
    assert rows == _all_pages(client, user, account)  # reproducible
    sb.set_faults()
    assert len(_all_pages(client, user, account)) == len(rows)
    assert all("id" in r for r in _all_pages(client, user, account))


def test_million_row_account_pages_without_materializing(sb, client, user):
    sb.create_connection(user.user_id, "SANDBOX_CRYPTO", history_size=1_000_000)
    account = sb.connections(user.user_id)[0]["account_ids"][0]
    body = _activities(client, user, account, offset=654_321, limit=1000)
    assert body["pagination"]["total"] == 1_000_000 and len(body["data"]) == 1000
    deep = _activities(client, user, account, offset=999_999, limit=10)
    assert len(deep["data"]) == 1
    stream = sb.iter_ground_truth(account)
    first = [next(stream) for _ in range(3)]
    assert first == _activities(client, user, account, limit=3)["data"]
