"""core.journal.engine: worked examples with hand-computed numbers for every convention of issue 22, and
property tests against a brute-force unit-by-unit reference written here, independent of the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.journal import engine as je
from core.journal.engine import BrokerPosition, Fill, RoundTrip, Unplaceable

D = Decimal
OPT = "AAPL  261218C00240000"
PUT = "AAPL  261218P00200000"


def day(n: int) -> date:
    return date(2024, 1, 1) + timedelta(days=n - 1)


def fill(aid, kind, units=None, price=None, on=1, *, fee=None, instrument="AAPL", account="acc-1", currency="USD",
         instant=None, action=None, option=False, crypto=False, multiplier=None) -> Fill:  # fmt: skip
    def dec(value):
        return D(str(value)) if isinstance(value, int | str) else value

    return Fill(
        activity_id=aid,
        account=account,
        instrument=instrument,
        currency=currency,
        type=kind,
        trade_date=day(on) if isinstance(on, int) else on,
        option_action=action,
        instant=instant,
        units=dec(units),
        price=dec(price),
        fee=dec(fee),
        multiplier=D(multiplier) if multiplier is not None else (D(100) if option else D(1)),
        is_option=option,
        is_crypto=crypto,
    )


def opt(aid, kind, units, price=None, on=1, **kw) -> Fill:
    return fill(aid, kind, units, price, on, instrument=kw.pop("instrument", OPT), option=True, **kw)


def one(fills, broker_short=False):
    return je.build_instrument(fills, broker_short=broker_short)


def nums(rt: RoundTrip):
    return (rt.gross_pnl, rt.fees, rt.net_pnl)


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
    result = je.build(fills)
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
    result = je.build([fill("b", "BUY", 10, "1", 1), fill("r", "REVERSE_SPLIT", 10, None, 2, fee="2")])
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
    result = je.build(fills)
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
    result = je.build([opt("e", "OPTIONEXPIRATION", 1, None, 3)])
    assert result.round_trips == () and [f.activity_id for f in result.ignored] == ["e"]


def test_transfer_in_is_cost_unknown():
    fills = [fill("t", "EXTERNAL_ASSET_TRANSFER_IN", 50, "100", 1), fill("s", "SELL", 50, "120", 2, fee="1")]
    (rt,), position = one(fills[:1])
    assert (rt.flags, position.cost_basis, position.quantity) == (("cost_unknown",), None, D(50))
    (rt,), _ = one(fills)
    assert (rt.status, rt.flags, rt.gross_pnl, rt.net_pnl, rt.fees) == ("closed", ("cost_unknown",), None, None, D(1))
    (summary,) = je.summarize([rt])
    assert (summary.currency, summary.closed_trades, summary.win_rate) == ("USD", 0, None)


def test_transfer_out_is_transferred():
    (rt,), _ = one([fill("b", "BUY", 10, "100", 1), fill("t", "INTERNAL_ASSET_TRANSFER_OUT", 10, "105", 2)])
    assert (rt.status, rt.flags, rt.gross_pnl) == ("closed", ("transferred",), D(50))
    (rt,), _ = one([fill("b", "BUY", 10, "100", 1), fill("t", "EXTERNAL_ASSET_TRANSFER_OUT", 10, None, 2)])
    assert (rt.flags, rt.gross_pnl) == (("cost_unknown", "transferred"), None)
    assert je.daily_pnl([rt]) == []


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
    result = je.build(sells, broker_shorts=frozenset({("acc-1", "AAPL")}))
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
    result = je.build(fills)
    shop = sorted((p.currency, p.quantity, p.cost_basis) for p in result.positions)
    assert shop == [("CAD", D(-5), D(-60)), ("USD", D(5), D(50))]
    summary = {s.currency: s for s in je.summarize(result.round_trips)}
    assert (summary["USD"].wins, summary["USD"].gross_profit, summary["USD"].closed_trades) == (1, D(100), 1)
    assert (summary["CAD"].losses, summary["CAD"].gross_loss, summary["CAD"].closed_trades) == (1, D(-50), 1)
    daily = [(d.date, d.currency, d.net_pnl, d.trades) for d in je.daily_pnl(result.round_trips)]
    assert daily == [(day(2), "CAD", D(-50), 1), (day(2), "USD", D(100), 1)]


def test_ordering_ties():
    minus5 = timezone(timedelta(hours=-5))
    fills = [
        fill("a", "SELL", 10, "11", 2, instant=datetime(2024, 1, 2, 10, tzinfo=minus5)),  # 15:00 UTC
        fill("b", "BUY", 10, "10", 2, instant=datetime(2024, 1, 2, 14, tzinfo=UTC)),
    ]
    # By the UTC instant, not the local clock: the 14:00 UTC buy precedes the 10:00 (15:00 UTC) sell.
    assert [f.activity_id for f in je.order_fills(fills)] == ["b", "a"]
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
    order = [f.activity_id for f in je.order_fills(mixed)]
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
    result = je.build(fills)
    (rt,) = result.round_trips
    assert (rt.flags, rt.activities, rt.fees, rt.gross_pnl) == (("unplaceable",), ("b", "bad", "s"), D(1), D(10))
    assert [(u.activity_id, u.reason) for u in result.unplaceable] == [
        ("bad", "missing or zero units"),
        ("late", "missing or zero units"),
        ("float", "a number that is not an exact Decimal"),
    ]
    assert je.summarize(result.round_trips)[0].closed_trades == 0


def test_crypto_sold_beyond_the_position_opens_a_flagged_short():
    fills = [
        fill("b", "BUY", "1", "100", 1, instrument="BTC", crypto=True),
        fill("s", "SELL", "1.5", "110", 2, instrument="BTC", crypto=True),
    ]
    result = je.build(fills)
    first, second = result.round_trips
    assert (first.gross_pnl, first.flags) == (D(10), ())
    assert (second.direction, second.quantity, second.flags) == ("short", D("0.5"), ("unplaceable",))
    assert [u.activity_id for u in result.unplaceable] == ["s"]


def test_build_instrument_refuses_two_instruments():
    with pytest.raises(ValueError):
        je.build_instrument([fill("a", "BUY", 1, "1"), fill("b", "BUY", 1, "1", instrument="MSFT")])


# ---------------------------------------------------------------------------------------------------------
# Metrics and daily P&L
# ---------------------------------------------------------------------------------------------------------


def rt(net, opened, closed, *, currency="USD", flags=(), fees="0") -> RoundTrip:
    net = D(net) if net is not None else None
    return RoundTrip(
        account="acc-1", instrument="AAPL", currency=currency, direction="long",
        status="closed" if closed else "open", opened_on=day(opened), closed_on=day(closed) if closed else None,
        quantity=D(1), gross_pnl=net + D(fees) if net is not None else None, fees=D(fees), net_pnl=net,
        flags=tuple(flags), activities=("x",),
    )  # fmt: skip


def test_metrics_by_hand():
    trips = [
        rt("100", 1, 1),
        rt("-150", 1, 2),
        rt("30", 1, 3),
        rt("-50", 4, 4),
        rt("0", 2, 2),  # a scratch
        rt("999", 1, 5, flags=["transferred"]),  # flagged: out of every metric
        rt(None, 1, None),  # open: out too
    ]
    (s,) = je.summarize(trips)
    assert (s.closed_trades, s.wins, s.losses, s.scratches) == (5, 2, 2, 1)
    assert (s.win_rate, s.gross_profit, s.gross_loss, s.profit_factor) == (D("0.5"), D(130), D(-200), D("0.65"))
    assert (s.expectancy, s.average_win, s.average_loss) == (D(-14), D(65), D(-100))
    assert (s.largest_win, s.largest_loss) == (D(100), D(-150))
    # Daily: d1 +100, d2 -150 + 0, d3 +30, d4 -50 -> cumulative 100, -50, -20, -70: fall from 100 to -70.
    assert s.max_drawdown == D(170)
    assert s.average_holding_days == D("0.6")  # (0 + 1 + 2 + 0 + 0) / 5
    daily = [(d.date, d.net_pnl, d.trades) for d in je.daily_pnl(trips)]
    assert daily == [(day(1), D(100), 1), (day(2), D(-150), 2), (day(3), D(30), 1), (day(4), D(-50), 1)]


def test_metrics_with_zero_denominators():
    (s,) = je.summarize([rt("0", 1, 1), rt("0", 1, 2)])  # scratches only
    assert (s.closed_trades, s.scratches, s.win_rate, s.profit_factor) == (2, 2, None, None)
    assert (s.expectancy, s.average_win, s.average_loss, s.average_holding_days) == (D(0), None, None, D("0.5"))
    (s,) = je.summarize([rt("10", 1, 1), rt("20", 1, 2)])  # wins only: no loss to divide by
    assert (s.win_rate, s.profit_factor, s.average_loss, s.largest_loss, s.max_drawdown) == (D(1), None, None, None, 0)
    # Only flagged and open trades: a row with zero counts and null ratios for each currency traded.
    summaries = je.summarize([rt(None, 1, 2, currency="EUR", flags=["cost_unknown"]), rt(None, 1, None)])
    assert [je.to_json_dict(s) for s in summaries] == [
        {"currency": cur, "closed_trades": 0, "wins": 0, "losses": 0, "scratches": 0, "win_rate": None,
         "gross_profit": "0", "gross_loss": "0", "profit_factor": None, "expectancy": None, "average_win": None,
         "average_loss": None, "largest_win": None, "largest_loss": None, "max_drawdown": "0",
         "average_holding_days": None}
        for cur in ("EUR", "USD")
    ]  # fmt: skip
    assert je.summarize([]) == [] and je.daily_pnl([]) == []


def test_ratios_round_to_ten_places_only_when_not_terminating():
    (s,) = je.summarize([rt("10", 1, 1), rt("-5", 1, 1), rt("-1", 1, 1)])
    assert s.win_rate == D("0.3333333333") and s.profit_factor == D("1.6666666667")
    assert s.expectancy == D("1.3333333333") and s.average_loss == D(-3)
    assert je.fraction_to_decimal(Fraction(1, 1024)) == D("0.0009765625")


# ---------------------------------------------------------------------------------------------------------
# JSON contract
# ---------------------------------------------------------------------------------------------------------


def test_trades_json_shape():
    result = je.build([fill("b1", "BUY", 100, "10", 1, fee="1"), fill("s1", "SELL", 150, "12.50", 2, fee="3")])
    payload = json.loads(json.dumps(je.trades_json(result.round_trips)))
    assert list(payload) == ["round_trips", "summary", "daily"]
    assert payload["round_trips"] == [
        {"account": "acc-1", "instrument": "AAPL", "currency": "USD", "direction": "long", "status": "closed",
         "opened_on": "2024-01-01", "closed_on": "2024-01-02", "quantity": "100", "gross_pnl": "250", "fees": "4",
         "net_pnl": "246", "flags": [], "activities": ["b1", "s1"]},
        {"account": "acc-1", "instrument": "AAPL", "currency": "USD", "direction": "short", "status": "open",
         "opened_on": "2024-01-02", "closed_on": None, "quantity": "50", "gross_pnl": None, "fees": "0",
         "net_pnl": None, "flags": [], "activities": ["s1"]},
    ]  # fmt: skip
    assert payload["summary"] == [
        {"currency": "USD", "closed_trades": 1, "wins": 1, "losses": 0, "scratches": 0, "win_rate": "1",
         "gross_profit": "246", "gross_loss": "0", "profit_factor": None, "expectancy": "246",
         "average_win": "246", "average_loss": None, "largest_win": "246", "largest_loss": None,
         "max_drawdown": "0", "average_holding_days": "1"}
    ]  # fmt: skip
    assert payload["daily"] == [{"date": "2024-01-02", "currency": "USD", "net_pnl": "246", "trades": 1}]


def test_decimal_text_is_plain_and_exact():
    assert [je.decimal_text(D(v)) for v in ("1050.00", "1E+3", "-0", "0.000001", "-12.3400")] == [
        "1050",
        "1000",
        "0",
        "0.000001",
        "-12.34",
    ]
    assert je.decimal_text(D("37037036703703703670.370370367037037034")) == "37037036703703703670.370370367037037034"


def test_large_numbers_stay_exact():
    # 3 x a 38-digit price needs more than the default context's 28 digits.
    big = "12345678901234567890.123456789012345678"
    (rt,), _ = one([fill("b", "BUY", 3, big, 1), fill("s", "SELL", 3, big[:-1] + "9", 2)])
    assert rt.gross_pnl == D("0.000000000000000003")
    _, position = one([fill("b", "BUY", 3, big, 1)])
    assert position.cost_basis == D("37037036703703703670.370370367037037034")


def test_reconcile_and_positions_json():
    positions = je.build(
        [
            fill("a", "BUY", 40, "10", 1, instrument="TSLA"),
            fill("b", "BUY", 5, "20", 1, instrument="MSFT"),
            fill("c", "BUY", 7, "1", 1, instrument="KO"),
        ]
    ).positions
    broker = [
        BrokerPosition(account="acc-1", instrument="TSLA", currency="USD", units=D(50)),
        BrokerPosition(account="acc-1", instrument="MSFT", currency="USD", units=D("5.000")),
        BrokerPosition(account="acc-1", instrument="VTI", currency="USD", units=D(3)),
        BrokerPosition(account="acc-1", instrument="SPY", currency="USD", units=D(0)),
    ]
    payload = je.positions_json(je.reconcile(positions, broker))
    assert [(p["instrument"], p["quantity"], p["cost_basis"], p["broker_quantity"], p["status"]) for p in payload["positions"]] == [
        ("KO", "7", "7", None, "not_at_broker"),
        ("MSFT", "5", "100", "5", "matched"),
        ("TSLA", "40", "400", "50", "differs"),
        ("VTI", "0", None, "3", "only_at_broker"),
    ]  # fmt: skip
    assert set(payload["positions"][0]) == {"account", "instrument", "currency", "quantity", "cost_basis",
                                            "broker_quantity", "status"}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# From stored rows
# ---------------------------------------------------------------------------------------------------------


def row(**kw):
    base = dict(
        snaptrade_activity_id="act-1", account_id=7, transaction_type="BUY", symbol="AAPL", security_type="cs",
        option_ticker=None, option_action=None, quantity=D(10), price=D("150.25"), fee=D("0.99"), currency="USD",
        trade_date=date(2024, 3, 22), trade_timestamp="2024-03-22T15:31:07-04:00", raw=None,
    )  # fmt: skip
    base.update(kw)
    return SimpleNamespace(**base)


def test_fill_from_row_stock_and_option():
    f = je.fill_from_row(row(), account="snap-acc")
    assert isinstance(f, Fill)
    assert (f.account, f.instrument, f.units, f.price, f.multiplier, f.is_option) == (
        "snap-acc", "AAPL", D(10), D("150.25"), D(1), False,
    )  # fmt: skip
    assert f.instant == datetime(2024, 3, 22, 19, 31, 7, tzinfo=UTC)
    assert je.fill_from_row(row(trade_timestamp="2024-03-22")).instant is None
    assert je.fill_from_row(row()).account == "7"
    option = dict(security_type="option", option_ticker=OPT, option_action="SELL_TO_OPEN", transaction_type="SELL")
    assert je.fill_from_row(row(**option)).multiplier == 100  # is_mini_option absent: a standard contract
    mini = je.fill_from_row(row(**option, raw={"option_symbol": {"is_mini_option": True}}))
    assert (mini.instrument, mini.multiplier, mini.is_option) == (OPT, D(10), True)
    odd = je.fill_from_row(row(**option, raw={"option_symbol": {"is_mini_option": "maybe"}}))
    assert isinstance(odd, Unplaceable) and odd.reason == "unknown option multiplier"
    crypto = je.fill_from_row(row(symbol="BTC", security_type="crypto"))
    assert crypto.is_crypto


def test_fill_from_row_non_position_and_unplaceable_rows():
    assert je.fill_from_row(row(transaction_type="DIVIDEND")) is None
    assert je.fill_from_row(row(transaction_type="FEE", symbol=None)) is None
    assert je.fill_from_row(row(transaction_type="STOCK_MERGER", quantity=None)) is None
    merger = je.fill_from_row(row(transaction_type="STOCK_MERGER"))
    assert isinstance(merger, Unplaceable) and merger.instrument == "AAPL"
    zero = je.fill_from_row(row(quantity=D(0)))
    assert isinstance(zero, Unplaceable) and zero.reason == "missing or zero units"
    expiry = je.fill_from_row(row(transaction_type="OPTIONEXPIRATION"))
    assert isinstance(expiry, Unplaceable) and expiry.instrument is None
    nothing = je.fill_from_row(row(symbol=None))
    assert isinstance(nothing, Unplaceable) and nothing.instrument is None
    result = je.build([nothing, expiry])
    assert result.round_trips == () and len(result.unplaceable) == 2


def test_fill_from_row_reads_a_stored_model():
    from core.storage.models import BrokerageTransaction

    stored = BrokerageTransaction(
        user_id=1, account_id=3, snaptrade_activity_id="x-1", transaction_type="SELL", symbol="AAPL",
        security_type="option", option_ticker=OPT, option_action="SELL_TO_CLOSE", quantity=D(-2), price=D("4.15"),
        fee=D("1.30"), currency="USD", trade_date=date(2024, 3, 22), trade_timestamp="2024-03-22T15:31:07Z",
        fingerprint="f", raw_hash="h", raw={"option_symbol": {"ticker": OPT, "is_mini_option": False}},
    )  # fmt: skip
    f = je.fill_from_row(stored, account="snap-3")
    assert (f.instrument, f.is_option, f.multiplier, je.is_buy_side(f)) == (OPT, True, D(100), False)


# ---------------------------------------------------------------------------------------------------------
# The brute-force reference: unit by unit, FIFO, Fractions; shares nothing with the engine
# ---------------------------------------------------------------------------------------------------------

_RANK_BUY = {"BUY", "REI", "EXTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_IN"}
_RANK_SELL = {"SELL", "EXTERNAL_ASSET_TRANSFER_OUT", "INTERNAL_ASSET_TRANSFER_OUT"}
_EVENTS = {"OPTIONEXPIRATION", "OPTIONASSIGNMENT", "OPTIONEXERCISE"}


def ref_sort_key(a: Fill):
    if a.type in ("BUY", "SELL") and a.option_action:
        rank = 0 if a.option_action.split("_")[0] == "BUY" else 1
    else:
        rank = 0 if a.type in _RANK_BUY else 1 if a.type in _RANK_SELL else 2
    stamp = a.instant.timestamp() if a.instant else 0.0  # whole seconds in the generated data: exact
    return (a.trade_date.toordinal(), 1 if a.instant is None else 0, stamp, rank, a.activity_id)


@dataclass
class RefTrip:
    direction: int  # +1 long, -1 short
    from_flat: bool
    ids: list = field(default_factory=list)
    pnl: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)
    peak: Fraction = Fraction(0)
    closed: bool = False


class Reference:
    """Every unit is its own FIFO entry [weight, cost]; a split multiplies weights, a close matches units."""

    def __init__(self) -> None:
        self.units: list[list[Fraction]] = []  # [weight, cost] oldest first
        self.sign = 0
        self.trips: list[RefTrip] = []

    def held(self) -> Fraction:
        return sum((u[0] for u in self.units), Fraction(0))

    def touch(self, trip: RefTrip, aid: str) -> None:
        if not trip.ids or trip.ids[-1] != aid:
            trip.ids.append(aid)

    def run(self, acts) -> Reference:
        for a in sorted(acts, key=ref_sort_key):
            if a.type in _EVENTS:
                self.event(a)
            elif a.type == "SPLIT":
                self.split(a)
            else:
                self.trade(a)
        return self

    def trade(self, a: Fill) -> None:
        word = a.option_action.split("_")[0] if a.option_action else None
        side = 1 if (word == "BUY" if word else a.type in _RANK_BUY | {"STOCK_DIVIDEND"}) else -1
        value = Fraction(0) if a.type == "STOCK_DIVIDEND" else Fraction(a.price) * Fraction(a.multiplier)
        fee = abs(Fraction(a.fee or 0))
        fee_paid = False
        crossed = False
        for _ in range(int(abs(a.units))):
            if self.units and self.sign != side:  # this unit closes one unit of the position
                trip = self.trips[-1]
                self.touch(trip, a.activity_id)
                if not fee_paid:
                    trip.fees += fee
                    fee_paid = True
                trip.pnl += self.match(Fraction(1), value)
                if not self.units:
                    trip.closed = True
                    crossed = True
            else:  # this unit opens
                if not self.units:
                    self.trips.append(RefTrip(direction=side, from_flat=not crossed))
                    self.sign = side
                trip = self.trips[-1]
                self.touch(trip, a.activity_id)
                if not fee_paid:
                    trip.fees += fee
                    fee_paid = True
                self.units.append([Fraction(1), value])
                trip.peak = max(trip.peak, self.held())

    def match(self, amount: Fraction, value: Fraction) -> Fraction:
        """Close `amount` units against the oldest entries at `value` each; the realized P&L."""
        pnl = Fraction(0)
        while amount:
            weight, cost = self.units[0]
            take = min(weight, amount)
            part_cost = cost * take / weight
            pnl += (value * take - part_cost) if self.sign > 0 else (part_cost - value * take)
            if take == weight:
                self.units.pop(0)
            else:
                self.units[0] = [weight - take, cost - part_cost]
            amount -= take
        return pnl

    def split(self, a: Fill) -> None:
        if not self.units:
            return
        before = self.held()
        factor = (before + Fraction(a.units)) / before
        self.units = [[w * factor, c] for w, c in self.units]
        trip = self.trips[-1]
        self.touch(trip, a.activity_id)
        trip.fees += abs(Fraction(a.fee or 0))
        trip.peak = max(trip.peak, self.held())

    def event(self, a: Fill) -> None:
        if not self.units:
            return
        trip = self.trips[-1]
        self.touch(trip, a.activity_id)
        trip.fees += abs(Fraction(a.fee or 0))
        trip.pnl += self.match(self.held(), Fraction(0))
        trip.closed = True


# ---------------------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------------------

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
cents = st.integers(min_value=1, max_value=500_000).map(lambda c: D(c).scaleb(-2))
fees = st.one_of(st.none(), st.integers(min_value=-300, max_value=300).map(lambda c: D(c).scaleb(-2)))
seconds = st.one_of(st.none(), st.integers(min_value=0, max_value=86_399))


@st.composite
def activity_sequences(draw, option: bool = False, with_splits: bool = True):
    if option:
        kinds = ["BUY", "SELL", "BUY", "SELL", "OPTIONEXPIRATION", "OPTIONASSIGNMENT", "OPTIONEXERCISE"]
    else:
        kinds = ["BUY", "SELL", "BUY", "SELL", "STOCK_DIVIDEND"] + (["SPLIT"] if with_splits else [])
    n = draw(st.integers(min_value=1, max_value=25))
    ids = draw(st.permutations([f"id{i:02d}" for i in range(n)]))
    multiplier = draw(st.sampled_from([D(100), D(10)])) if option else D(1)
    acts = []
    for i in range(n):
        kind = draw(st.sampled_from(kinds))
        units = D(draw(st.integers(min_value=1, max_value=20)))
        if kind == "SELL" or (kind in _EVENTS and draw(st.booleans())):
            units = -units if draw(st.booleans()) else units  # the sign must not matter
        action = None
        if option and kind in ("BUY", "SELL"):
            action = kind + draw(st.sampled_from(["_TO_OPEN", "_TO_CLOSE"]))
        second = draw(seconds)
        on = day(1 + draw(st.integers(min_value=0, max_value=6)))
        instant = (
            datetime.combine(on, datetime.min.time(), UTC) + timedelta(seconds=second) if second is not None else None
        )
        acts.append(
            Fill(
                activity_id=ids[i], account="acc", instrument=OPT if option else "XYZ", currency="USD", type=kind,
                trade_date=on, option_action=action, instant=instant, units=units, price=draw(cents),
                fee=draw(fees), multiplier=multiplier, is_option=option,
            )
        )  # fmt: skip
    return acts


def check_against_reference(acts, broker_short=False):
    ref = Reference().run(acts)
    trips, position = je.build_instrument(acts, broker_short=broker_short)
    assert len(trips) == len(ref.trips)
    for got, want in zip(trips, ref.trips, strict=True):
        assert got.direction == ("long" if want.direction > 0 else "short")
        assert got.status == ("closed" if want.closed else "open")
        assert got.activities == tuple(want.ids)
        assert Fraction(got.fees) == want.fees and Fraction(got.quantity) == want.peak
        if want.closed:
            assert Fraction(got.gross_pnl) == want.pnl and Fraction(got.net_pnl) == want.pnl - want.fees
            assert got.flags == ()
        else:
            assert got.gross_pnl is None and got.net_pnl is None
            stock_short = want.direction < 0 and want.from_flat and not acts[0].is_option and not broker_short
            assert got.flags == (("incomplete_history",) if stock_short else ())
    held = ref.held() * ref.sign if ref.units else Fraction(0)
    if position is None:
        assert held == 0
    else:
        assert Fraction(position.quantity) == held
        basis = sum((c for _, c in ref.units), Fraction(0)) * ref.sign
        assert position.cost_basis == je.fraction_to_decimal(basis)
    closed_net = sum((t.pnl - t.fees for t in ref.trips if t.closed), Fraction(0))
    assert sum((Fraction(t.net_pnl) for t in trips if t.status == "closed"), Fraction(0)) == closed_net


@PROPERTY
@given(activity_sequences(), st.booleans())
def test_stock_sequences_match_the_reference(acts, broker_short):
    check_against_reference(acts, broker_short)


@PROPERTY
@given(activity_sequences(option=True))
def test_option_sequences_match_the_reference(acts):
    check_against_reference(acts)


@PROPERTY
@given(activity_sequences(with_splits=False), st.randoms(use_true_random=False))
def test_gross_over_round_trips_is_sells_minus_buys_when_everything_closes_flat(acts, rnd):
    held = sum((a.units if a.type in ("BUY", "STOCK_DIVIDEND") else -abs(a.units) for a in acts), D(0))
    if held:
        kind = "SELL" if held > 0 else "BUY"
        acts = acts + [fill("zz-close", kind, abs(held), "77.77", 9, instrument="XYZ", account="acc")]
    shuffled = list(acts)
    rnd.shuffle(shuffled)  # input order never matters
    result = je.build(shuffled)
    assert result.positions == () and all(t.status == "closed" and not t.flags for t in result.round_trips)
    notional = {a.activity_id: (a.price * abs(a.units) if a.type != "STOCK_DIVIDEND" else D(0)) for a in acts}
    sells = sum((notional[a.activity_id] for a in acts if a.type == "SELL"), D(0))
    buys = sum((notional[a.activity_id] for a in acts if a.type != "SELL"), D(0))
    assert sum((t.gross_pnl for t in result.round_trips), D(0)) == sells - buys
    total_fees = sum((abs(a.fee) for a in acts if a.fee is not None), D(0))
    assert sum((t.net_pnl for t in result.round_trips), D(0)) == sells - buys - total_fees
    daily = je.daily_pnl(result.round_trips)
    assert sum((d.net_pnl for d in daily), D(0)) == sells - buys - total_fees
    assert sum(d.trades for d in daily) == len(result.round_trips) == je.summarize(result.round_trips)[0].closed_trades
    assert result == je.build(acts)
    json.dumps(je.trades_json(result.round_trips))  # always serializable
