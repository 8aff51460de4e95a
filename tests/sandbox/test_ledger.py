"""What the broker reports: `/positions/all` holds exactly the units the history implies (except in the late-history
account, which also holds what it bought before its history begins), and `/balances` the cash its rows add up to."""

from __future__ import annotations

from decimal import Decimal

import pytest
from snaptrade_client.type.account_position import AccountPosition

from sandbox import Sandbox
from sandbox.scenarios import BOOKS, LATE_HISTORY_PROFILE
from tests.sandbox.conftest import BROKERS, broker_units, check_shape, make_client
from tests.sandbox.replay import instrument, is_option, replay


def test_positions_all_answers_what_the_history_implies(demo):
    for acct in demo:
        if acct.profile != LATE_HISTORY_PROFILE:
            assert acct.positions == replay(acct.rows).holdings, acct.profile


def test_the_late_history_account_holds_more_than_its_history_explains(demo):
    [acct] = [a for a in demo if a.profile == LATE_HISTORY_PROFILE]
    history = replay(acct.rows)
    names = set(history.holdings) | set(acct.positions)
    differs = {k: (history.holdings.get(k, 0), acct.positions.get(k, 0)) for k in names
               if history.holdings.get(k, 0) != acct.positions.get(k, 0)}  # fmt: skip
    # a stock and an ETF bought before the history begins: the broker holds more of both than the history explains
    assert len(differs) == 2 and all(broker > mine for mine, broker in differs.values()), differs
    # one stock is sold before any purchase (the history starts after its first buy); both positions stay long
    sold_first = [name for name, low in history.lowest.items() if low < 0 and not is_option(name)]
    assert len(sold_first) == 1 and acct.positions[sold_first[0]] > 0
    first_row = min(acct.rows, key=lambda r: (r["trade_date"] or "9", r["id"]))
    assert first_row["type"] == "SELL" and instrument(first_row) == sold_first[0] in differs


def test_contributions_pay_for_net_buys_and_cash_is_what_the_rows_add_up_to(demo):
    for acct in demo:
        contributions = sum(Decimal(str(r["amount"])) for r in acct.rows if r["type"] == "CONTRIBUTION")
        net_buys = -sum(Decimal(str(r["amount"])) for r in acct.rows if r["type"] in ("BUY", "SELL", "REI"))
        assert contributions >= net_buys, acct.profile
        assert acct.cash == sum(Decimal(str(r["amount"])) for r in acct.rows if r["amount"] is not None)
        assert acct.cash >= 0, acct.profile


@pytest.mark.parametrize("broker", BROKERS)
def test_every_story_keeps_positions_consistent_in_long_histories(broker):
    """12,000 rows (1,500 blocks) per account draw every weighted story many times; days appended and backdated
    rows arrive; the broker's units still equal the replay everywhere but the late-history account."""
    with Sandbox(seed=99, today="2026-06-15") as sb:
        client = make_client(sb)
        secret = client.authentication.register_snap_trade_user(user_id="busy").body["userSecret"]
        sb.create_connection("busy", broker, history_size=12_000)
        sb.advance_day(4)
        for acct in sb.state.user_accounts("busy"):
            sb.add_backdated(acct.id, count=5, days_back=4)
            rows = list(sb.iter_ground_truth(acct.id))
            view, book = sb.state.view(acct), BOOKS[acct.profile]
            assert {view.scenario(b).kinds for b in range(1500)} == {s.kinds for s in book.stories + book.tour}
            r = replay(rows)
            assert r.crossings == []
            body = client.account_information.get_all_account_positions(
                account_id=acct.id, user_id="busy", user_secret=secret
            ).body
            if acct.profile != LATE_HISTORY_PROFILE:
                assert broker_units(body) == r.holdings
            shorts = {k for k, low in r.lowest.items() if low < 0 and not is_option(k)}
            assert acct.profile in ("us_margin", LATE_HISTORY_PROFILE) or not shorts, shorts


def test_open_options_are_positions_of_their_own_with_shorts_negative(sb, client, user):
    # the margin account's third tour story opens a long call and sells a put; cut the history right after
    sb.create_connection(user.user_id, "SANDBOX_US", history_size=2 * 5 * 8 + 2)
    account = sb.connections(user.user_id)[0]["account_ids"][0]
    body = client.account_information.get_all_account_positions(account_id=account, **user.creds).body
    for p in body["results"]:
        check_shape(p, AccountPosition)
    options = {p["instrument"]["option_type"]: p for p in body["results"] if p["instrument"]["kind"] == "option"}
    assert set(options) == {"CALL", "PUT"}
    assert Decimal(options["CALL"]["units"]) > 0 > Decimal(options["PUT"]["units"])
    call = options["CALL"]["instrument"]
    assert call["multiplier"] == "100" and call["underlying"]["kind"] == "stock"
    assert len(call["symbol"]) == 21 and call["symbol"][:6].rstrip() == call["underlying"]["symbol"]
    assert broker_units(body) == replay(list(sb.iter_ground_truth(account))).holdings
