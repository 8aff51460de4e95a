"""core.journal.trips: worked examples with hand-computed numbers for every convention of issue 22."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.journal.metrics import daily_pnl, summarize
from core.journal.trips import build, build_instrument, order_fills
from tests.core.journal.builders import PUT, D, day, fill, nums, one, opt

# ---------------------------------------------------------------------------------------------------------
# Worked examples, one per convention
# ---------------------------------------------------------------------------------------------------------


def test_simple_long_win():
    trips, position = one([fill("b", "BUY", 100, "10", 1, fee="1"), fill("s", "SELL", -100, "12", 3, fee="1")])
    (rt,) = trips
    assert (rt.direction, rt.status, rt.opened_on, rt.closed_on) == ("long", "closed", day(1), day(3))
    assert rt.quantity == 100 and nums(rt) == (D(200), D(2), D(198))
    assert rt.flags == () and rt.activities == ("b", "s")
    assert position is None


def test_short_loss():
    trips, position = one([fill("s", "SELL", 50, "20", 1, fee="0.5"), fill("b", "BUY", 50, "21.5", 2, fee="0.5")])
    (rt,) = trips
    assert (rt.direction, rt.status, rt.quantity) == ("short", "closed", D(50))
    assert nums(rt) == (D(-75), D(1), D(-76))  # 1000 received - 1075 paid - 1 fees
    assert rt.flags == () and position is None


def test_direction_comes_from_the_type_never_the_sign_of_units():
    for sell_units in (100, -100):
        for buy_units in (100, -100):
            (rt,), _ = one([fill("b", "BUY", buy_units, "10", 1), fill("s", "SELL", sell_units, "11", 2)])
            assert (rt.direction, rt.status, rt.gross_pnl) == ("long", "closed", D(100))


def test_partial_fills_and_fifo_cost_of_the_rest():
    fills = [
        fill("b1", "BUY", 30, "10.00", 1, fee="0.30"),
        fill("b2", "BUY", 70, "10.10", 1, fee="0.70"),
        fill("s1", "SELL", 60, "11", 2, fee="0.60"),
    ]
    (rt,), position = one(fills)
    assert (rt.status, rt.gross_pnl, rt.net_pnl, rt.fees, rt.quantity) == ("open", None, None, D("1.60"), D(100))
    # 30 @ 10.00 are gone, then 30 of the 70 @ 10.10: 40 @ 10.10 remain.
    assert (position.quantity, position.cost_basis) == (D(40), D("404"))
    assert [(lot.activity_id, lot.quantity, lot.cost) for lot in position.lots] == [("b2", D(40), D(404))]
    (rt,), position = one(fills + [fill("s2", "SELL", 40, "10.50", 3, fee="0.40")])
    # buys 300 + 707 = 1007; sells 660 + 420 = 1080
    assert nums(rt) == (D(73), D(2), D(71)) and position is None
    assert rt.activities == ("b1", "b2", "s1", "s2")


def test_scaling_in_and_out_with_fifo_lots():
    fills = [
        fill("b1", "BUY", 10, "100", 1),
        fill("b2", "BUY", 10, "110", 2),
        fill("s1", "SELL", 15, "120", 3),
        fill("b3", "BUY", 5, "90", 4),
    ]
    (rt,), position = one(fills)
    assert rt.status == "open" and rt.quantity == 20
    # s1 took all of b1 and 5 of b2: left 5 @ 110 and 5 @ 90.
    assert [(lot.activity_id, lot.quantity, lot.cost) for lot in position.lots] == [
        ("b2", D(5), D(550)),
        ("b3", D(5), D(450)),
    ]
    assert (position.quantity, position.cost_basis) == (D(10), D(1000))
    (rt,), position = one(fills + [fill("s2", "SELL", 10, "100", 5)])
    assert rt.gross_pnl == D(250)  # sells 1800 + 1000 - buys 1000 + 1100 + 450
    assert rt.quantity == 20 and position is None


def test_flip_splits_notional_by_quantity_and_gives_the_fee_to_the_closed_trip():
    fills = [fill("b1", "BUY", 100, "10", 1, fee="1"), fill("s1", "SELL", 150, "12", 2, fee="3")]
    (first, second), position = one(fills)
    assert first.activities == ("b1", "s1") and second.activities == ("s1",)
    assert nums(first) == (D(200), D(4), D(196))  # 100 x 12 - 1000; fees 1 + 3
    assert (second.direction, second.status, second.opened_on, second.quantity) == ("short", "open", day(2), D(50))
    assert second.fees == 0 and second.flags == ()  # not from flat: no incomplete_history
    assert (position.quantity, position.cost_basis) == (D(-50), D(-600))
    (_, second), position = one(fills + [fill("b2", "BUY", 50, "11", 3, fee="1")])
    assert nums(second) == (D(50), D(1), D(49)) and second.activities == ("s1", "b2")
    assert position is None


def test_split_mid_trip_keeps_cost_and_scales_quantity():
    fills = [fill("b", "BUY", 100, "50", 1), fill("x", "SPLIT", 100, None, 2)]
    (rt,), position = one(fills)
    assert (position.quantity, position.cost_basis, rt.quantity) == (D(200), D(5000), D(200))
    (rt,), position = one(fills + [fill("s", "SELL", 200, "26", 3)])
    assert rt.activities == ("b", "x", "s") and rt.gross_pnl == D(200) and position is None


def test_three_for_two_split_over_two_lots_then_a_partial_sell():
    fills = [
        fill("b1", "BUY", 10, "30", 1),
        fill("b2", "BUY", 20, "33", 2),
        fill("x", "SPLIT", 15, None, 3),
        fill("s", "SELL", 20, "25", 4),
    ]
    _, position = one(fills)
    # Lots become 15 (cost 300) and 30 (cost 660); the sell takes 15 and 5 of 30 (cost 110): 25 left for 550.
    assert (position.quantity, position.cost_basis) == (D(25), D(550))
    assert [(lot.quantity, lot.cost) for lot in position.lots] == [(D(25), D(550))]


def test_split_with_a_non_terminating_factor_stays_exact():
    fills = [
        fill("b1", "BUY", 1, "10", 1),
        fill("b2", "BUY", 2, "10", 1),
        fill("x", "SPLIT", 1, None, 2),  # 3 -> 4 shares: lots 4/3 and 8/3
        fill("s", "SELL", 2, "9", 3),  # takes 4/3 (cost 10) and 2/3 of the second lot (cost 5)
    ]
    _, position = one(fills)
    assert (position.quantity, position.cost_basis) == (D(2), D(15))
    assert [(lot.activity_id, lot.quantity, lot.cost) for lot in position.lots] == [("b2", D(2), D(15))]
    _, position = one(fills[:3])
    assert [lot.quantity for lot in position.lots] == [D("1.3333333333"), D("2.6666666667")]  # rounded out
    assert position.quantity == 4 and position.cost_basis == 30


def test_split_while_flat_is_ignored():
    fills = [
        fill("x1", "SPLIT", 10, None, 1),
        fill("b", "BUY", 10, "5", 2),
        fill("s", "SELL", 10, "6", 3),
        fill("x2", "SPLIT", 10, None, 4),
    ]
    result = build(fills)
    (rt,) = result.round_trips
    assert rt.activities == ("b", "s") and rt.gross_pnl == D(10) and rt.quantity == 10
    assert [f.activity_id for f in result.ignored] == ["x1", "x2"] and result.positions == ()


def test_reverse_split_shrinks_whatever_sign_the_broker_wrote():
    for units in (90, -90):
        fills = [fill("b", "BUY", 100, "1", 1), fill("r", "REVERSE_SPLIT", units, None, 2)]
        (rt,), position = one(fills)
        assert (position.quantity, position.cost_basis, rt.quantity) == (D(10), D(100), D(100))
        (rt,), _ = one(fills + [fill("s", "SELL", 10, "12", 3)])
        assert rt.gross_pnl == D(20) and rt.activities == ("b", "r", "s")


def test_split_that_would_cross_zero_is_unplaceable():
    result = build([fill("b", "BUY", 10, "1", 1), fill("r", "REVERSE_SPLIT", 10, None, 2, fee="2")])
    (rt,) = result.round_trips
    assert rt.flags == ("unplaceable",) and rt.activities == ("b", "r") and rt.fees == D(2)
    assert result.positions[0].quantity == 10
    assert [(u.activity_id, u.reason) for u in result.unplaceable] == [("r", "REVERSE_SPLIT of 10 on a position of 10")]


def test_split_on_a_short_grows_the_short():
    (rt,), position = one([fill("s", "SELL", 100, "4", 1), fill("x", "SPLIT", 100, None, 2)], broker_short=True)
    assert (position.quantity, position.cost_basis, rt.quantity, rt.flags) == (D(-200), D(-400), D(200), ())


def test_stock_dividend_adds_units_at_zero_notional():
    fills = [fill("b", "BUY", 100, "10", 1), fill("d", "STOCK_DIVIDEND", 5, "12", 2), fill("s", "SELL", 105, "11", 3)]
    (rt,), _ = one(fills)
    assert rt.gross_pnl == D(155) and rt.quantity == 105 and rt.flags == ()  # 1155 - 1000
    _, position = one(fills[:2])
    assert [(lot.quantity, lot.cost) for lot in position.lots] == [(D(100), D(1000)), (D(5), D(0))]


def test_stock_dividend_sorts_after_a_sell_on_the_same_day_and_opens_at_zero_cost():
    fills = [fill("d", "STOCK_DIVIDEND", 5, None, 2), fill("s", "SELL", 100, "11", 2), fill("b", "BUY", 100, "10", 1)]
    (first, second), position = one(fills)
    assert first.activities == ("b", "s") and first.gross_pnl == D(100)
    assert (second.activities, second.direction, second.flags) == (("d",), "long", ())
    assert (position.quantity, position.cost_basis) == (D(5), D(0))


def test_option_buy_to_open_sell_to_close():
    fills = [
        opt("o", "BUY", 2, "4.15", 1, fee="1.30", action="BUY_TO_OPEN"),
        opt("c", "SELL", -2, "5.00", 2, fee="1.30", action="SELL_TO_CLOSE"),
    ]
    (rt,), position = one(fills)
    assert (rt.direction, rt.quantity) == ("long", D(2))
    assert nums(rt) == (D(170), D("2.60"), D("167.40"))  # 1000 - 830
    assert position is None


def test_option_sell_to_open_buy_to_close():
    sto = opt("o", "SELL", -1, "4.15", 1, fee="0.65", action="SELL_TO_OPEN")
    (rt,), position = one([sto])  # options sold from flat are real shorts: never incomplete_history
    assert (rt.direction, rt.status, rt.flags, position.quantity, position.cost_basis) == (
        "short",
        "open",
        (),
        D(-1),
        D(-415),
    )
    (rt,), _ = one([sto, opt("c", "BUY", 1, "1.20", 2, fee="0.65", action="BUY_TO_CLOSE")])
    assert nums(rt) == (D(295), D("1.30"), D("293.70"))


def test_option_action_gives_the_side_of_an_option_row():
    # A broker that writes type SELL on a buy-to-close: the action's first word decides.
    fills = [opt("o", "SELL", 1, "3", 1, action="SELL_TO_OPEN"), opt("c", "SELL", 1, "1", 2, action="BUY_TO_CLOSE")]
    (rt,), position = one(fills)
    assert (rt.status, rt.gross_pnl, position) == ("closed", D(200), None)


def test_sell_to_open_then_expiration_keeps_the_premium():
    fills = [
        opt("o", "SELL", 2, "1.50", 1, fee="1.30", action="SELL_TO_OPEN"),
        opt("e", "OPTIONEXPIRATION", 2, None, 30),
    ]
    (rt,), position = one(fills)
    assert (rt.closed_on, rt.activities) == (day(30), ("o", "e"))
    assert nums(rt) == (D(300), D("1.30"), D("298.70")) and position is None
    mini = [opt(f.activity_id, f.type, f.units, f.price, 1, action=f.option_action, multiplier=10) for f in fills]
    (rt,), _ = one(mini)
    assert rt.gross_pnl == D(30)


def test_option_assignment_closes_the_option_and_the_stock_leg_is_its_own_buy():
    fills = [
        opt("o", "SELL", 1, "2.00", 1, instrument=PUT, action="SELL_TO_OPEN"),
        opt("a", "OPTIONASSIGNMENT", 1, None, 5, instrument=PUT),
        fill("b", "BUY", 100, "200", 5),
    ]
    result = build(fills)
    (stock, option) = sorted(result.round_trips, key=lambda rt: rt.instrument)
    assert (option.instrument, option.status, option.gross_pnl, option.activities) == (
        PUT,
        "closed",
        D(200),
        ("o", "a"),
    )
    assert (stock.status, stock.direction, stock.activities) == ("open", "long", ("b",))
    (position,) = result.positions
    assert (position.instrument, position.quantity, position.cost_basis) == ("AAPL", D(100), D(20000))


def test_long_option_exercise_and_expiration_after_a_same_day_partial_close():
    (rt,), _ = one([opt("o", "BUY", 1, "3", 1, action="BUY_TO_OPEN"), opt("x", "OPTIONEXERCISE", None, None, 9)])
    assert rt.gross_pnl == D(-300) and rt.direction == "long"
    # Untimed on the same day: the sell to close comes before the expiration that it ties with.
    fills = [
        opt("e", "OPTIONEXPIRATION", 1, None, 9),
        opt("c", "SELL", 1, "2", 9, action="SELL_TO_CLOSE"),
        opt("o", "BUY", 2, "1", 1, action="BUY_TO_OPEN"),
    ]
    (rt,), _ = one(fills)
    assert (rt.activities, rt.gross_pnl, rt.quantity) == (("o", "c", "e"), D(0), D(2))


def test_option_event_while_flat_is_ignored():
    result = build([opt("e", "OPTIONEXPIRATION", 1, None, 3)])
    assert result.round_trips == () and [f.activity_id for f in result.ignored] == ["e"]


def test_transfer_in_is_cost_unknown():
    fills = [fill("t", "EXTERNAL_ASSET_TRANSFER_IN", 50, "100", 1), fill("s", "SELL", 50, "120", 2, fee="1")]
    (rt,), position = one(fills[:1])
    assert (rt.flags, position.cost_basis, position.quantity) == (("cost_unknown",), None, D(50))
    (rt,), _ = one(fills)
    assert (rt.status, rt.flags, rt.gross_pnl, rt.net_pnl, rt.fees) == ("closed", ("cost_unknown",), None, None, D(1))
    (summary,) = summarize([rt])
    assert (summary.currency, summary.closed_trades, summary.win_rate) == ("USD", 0, None)


def test_transfer_out_is_transferred():
    (rt,), _ = one([fill("b", "BUY", 10, "100", 1), fill("t", "INTERNAL_ASSET_TRANSFER_OUT", 10, "105", 2)])
    assert (rt.status, rt.flags, rt.gross_pnl) == ("closed", ("transferred",), D(50))
    (rt,), _ = one([fill("b", "BUY", 10, "100", 1), fill("t", "EXTERNAL_ASSET_TRANSFER_OUT", 10, None, 2)])
    assert (rt.flags, rt.gross_pnl) == (("cost_unknown", "transferred"), None)
    assert daily_pnl([rt]) == []


def test_buy_with_price_zero_or_missing_is_cost_unknown():
    for price in ("0", None):
        (rt,), _ = one([fill("b", "BUY", 10, price, 1), fill("s", "SELL", 10, "5", 2)])
        assert (rt.flags, rt.gross_pnl) == (("cost_unknown",), None)
    _, position = one([fill("b1", "BUY", 10, "0", 1), fill("b2", "BUY", 10, "5", 2)])
    assert position.cost_basis is None and [lot.cost for lot in position.lots] == [None, D(50)]
    # Once the unknown lot is sold (FIFO), the rest of the position has a known cost again.
    _, position = one([fill("b1", "BUY", 10, "0", 1), fill("b2", "BUY", 10, "5", 2), fill("s", "SELL", 10, "6", 3)])
    assert position.cost_basis == D(50)


def test_sell_from_flat_in_a_stock_is_incomplete_history_unless_the_broker_is_short():
    sells = [fill("s", "SELL", 10, "50", 1)]
    (rt,), position = one(sells)
    assert (rt.direction, rt.status, rt.flags, position.quantity) == ("short", "open", ("incomplete_history",), D(-10))
    (rt,), _ = one(sells, broker_short=True)
    assert rt.flags == ()
    result = build(sells, broker_shorts=frozenset({("acc-1", "AAPL")}))
    assert result.round_trips[0].flags == ()
    (rt,), _ = one(sells + [fill("b", "BUY", 10, "45", 2)])  # a short that was covered: a real trade
    assert (rt.status, rt.flags, rt.gross_pnl) == ("closed", (), D(50))


def test_two_currencies_are_never_mixed():
    fills = [
        fill("u1", "BUY", 10, "100", 1),
        fill("u2", "SELL", 10, "110", 2),
        fill("c1", "BUY", 10, "50", 1, account="acc-2", instrument="RY.TO", currency="CAD"),
        fill("c2", "SELL", 10, "45", 2, account="acc-2", instrument="RY.TO", currency="CAD"),
        # One instrument bought in USD and sold in CAD: two positions, never netted.
        fill("m1", "BUY", 5, "10", 3, instrument="SHOP", currency="USD"),
        fill("m2", "SELL", 5, "12", 3, instrument="SHOP", currency="CAD"),
    ]
    result = build(fills)
    shop = sorted((p.currency, p.quantity, p.cost_basis) for p in result.positions)
    assert shop == [("CAD", D(-5), D(-60)), ("USD", D(5), D(50))]
    summary = {s.currency: s for s in summarize(result.round_trips)}
    assert (summary["USD"].wins, summary["USD"].gross_profit, summary["USD"].closed_trades) == (1, D(100), 1)
    assert (summary["CAD"].losses, summary["CAD"].gross_loss, summary["CAD"].closed_trades) == (1, D(-50), 1)
    daily = [(d.date, d.currency, d.net_pnl, d.trades) for d in daily_pnl(result.round_trips)]
    assert daily == [(day(2), "CAD", D(-50), 1), (day(2), "USD", D(100), 1)]


def test_ordering_ties():
    minus5 = timezone(timedelta(hours=-5))
    fills = [
        fill("a", "SELL", 10, "11", 2, instant=datetime(2024, 1, 2, 10, tzinfo=minus5)),  # 15:00 UTC
        fill("b", "BUY", 10, "10", 2, instant=datetime(2024, 1, 2, 14, tzinfo=UTC)),
    ]
    # By the UTC instant, not the local clock: the 14:00 UTC buy precedes the 10:00 (15:00 UTC) sell.
    assert [f.activity_id for f in order_fills(fills)] == ["b", "a"]
    (rt,), _ = one(fills)
    assert (rt.direction, rt.gross_pnl) == ("long", D(10))
    # Same instant: buy side first, then sell side, then split / stock dividend / option events, then id.
    same = datetime(2024, 1, 2, 9, tzinfo=UTC)
    mixed = [
        fill("z-split", "SPLIT", 1, None, 2, instant=same),
        fill("y-sell", "SELL", 1, "1", 2, instant=same),
        fill("x-div", "STOCK_DIVIDEND", 1, None, 2, instant=same),
        fill("w-buy2", "BUY", 1, "1", 2, instant=same),
        fill("v-tin", "EXTERNAL_ASSET_TRANSFER_IN", 1, None, 2, instant=same),
        fill("u-untimed", "BUY", 1, "1", 2),
        fill("t-earlier", "SELL", 1, "1", 1),
    ]
    order = [f.activity_id for f in order_fills(mixed)]
    assert order == ["t-earlier", "v-tin", "w-buy2", "y-sell", "x-div", "z-split", "u-untimed"]
    # Without times: a buy and a sell of the same day go buy first, whatever their ids.
    (rt,), _ = one([fill("a", "SELL", 5, "11", 2), fill("b", "BUY", 5, "10", 2)])
    assert (rt.direction, rt.activities) == ("long", ("b", "a"))


def test_unplaceable_activity_is_flagged_on_its_round_trip_and_listed():
    fills = [
        fill("b", "BUY", 10, "10", 1),
        fill("bad", "BUY", 0, "10", 2, fee="1"),
        fill("s", "SELL", 10, "11", 3),
        fill("late", "BUY", None, "10", 4),  # while flat: listed, joins no round trip
        fill("float", "BUY", 1, 10.5, 5),  # a float price never crashes the engine
    ]
    result = build(fills)
    (rt,) = result.round_trips
    assert (rt.flags, rt.activities, rt.fees, rt.gross_pnl) == (("unplaceable",), ("b", "bad", "s"), D(1), D(10))
    assert [(u.activity_id, u.reason) for u in result.unplaceable] == [
        ("bad", "missing or zero units"),
        ("late", "missing or zero units"),
        ("float", "a number that is not an exact Decimal"),
    ]
    assert summarize(result.round_trips)[0].closed_trades == 0


def test_crypto_sold_beyond_the_position_opens_a_flagged_short():
    fills = [
        fill("b", "BUY", "1", "100", 1, instrument="BTC", crypto=True),
        fill("s", "SELL", "1.5", "110", 2, instrument="BTC", crypto=True),
    ]
    result = build(fills)
    first, second = result.round_trips
    assert (first.gross_pnl, first.flags) == (D(10), ())
    assert (second.direction, second.quantity, second.flags) == ("short", D("0.5"), ("unplaceable",))
    assert [u.activity_id for u in result.unplaceable] == ["s"]


def test_build_instrument_refuses_two_instruments():
    with pytest.raises(ValueError):
        build_instrument([fill("a", "BUY", 1, "1"), fill("b", "BUY", 1, "1", instrument="MSFT")])
