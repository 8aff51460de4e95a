"""core.journal.trips: property tests against a brute-force unit-by-unit reference written here,
independent of the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.journal.exact import fraction_to_decimal
from core.journal.fills import Fill
from core.journal.jsonout import trades_json
from core.journal.metrics import daily_pnl, summarize
from core.journal.trips import build, build_instrument
from tests.core.journal.builders import OPT, D, day, fill

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
    trips, position = build_instrument(acts, broker_short=broker_short)
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
        assert position.cost_basis == fraction_to_decimal(basis)
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
    result = build(shuffled)
    assert result.positions == () and all(t.status == "closed" and not t.flags for t in result.round_trips)
    notional = {a.activity_id: (a.price * abs(a.units) if a.type != "STOCK_DIVIDEND" else D(0)) for a in acts}
    sells = sum((notional[a.activity_id] for a in acts if a.type == "SELL"), D(0))
    buys = sum((notional[a.activity_id] for a in acts if a.type != "SELL"), D(0))
    assert sum((t.gross_pnl for t in result.round_trips), D(0)) == sells - buys
    total_fees = sum((abs(a.fee) for a in acts if a.fee is not None), D(0))
    assert sum((t.net_pnl for t in result.round_trips), D(0)) == sells - buys - total_fees
    daily = daily_pnl(result.round_trips)
    assert sum((d.net_pnl for d in daily), D(0)) == sells - buys - total_fees
    assert sum(d.trades for d in daily) == len(result.round_trips) == summarize(result.round_trips)[0].closed_trades
    assert result == build(acts)
    json.dumps(trades_json(result.round_trips))  # always serializable


@PROPERTY
@given(activity_sequences(), st.booleans(), st.integers(min_value=0, max_value=25))
def test_continuing_stored_books_with_the_later_activities_equals_building_everything(acts, broker_short, cut):
    """Build the first activities (in engine order), store the books as JSON (core.journal.state; an open round
    trip's activities come from its stored row, the lots from their stored rows: quantity and cost, the unit
    value being their exact quotient), continue them with the rest: the round trips closed before, then those
    the continuation gives, are build's; so are the open position, its lots and the unplaceable activities
    (splits leave Fraction lots: kept exact in the JSON)."""
    from core.journal.state import PairState, dump, key_of_items, load
    from core.journal.trips import build_books, order_fills

    shorts = frozenset({("acc", "XYZ")}) if broker_short else frozenset()
    ordered = order_fills(acts)
    first, rest = ordered[:cut], ordered[cut:]
    before, books = build_books(first, shorts)
    last, on_last_day = key_of_items(first)
    stored = json.loads(json.dumps(dump(PairState(books, last, on_last_day, "XYZ"))))
    earlier = {(t.instrument, t.currency): t.activities for t in before.round_trips if t.status == "open"}
    opened = {(t.instrument, t.currency): (0, 0, t.opened_on, len(t.activities))
              for t in before.round_trips if t.status == "open"}  # fmt: skip
    lots = {(p.instrument, p.currency): [(0, kept.seq, lot.activity_id, lot.opened_on, lot.quantity, lot.cost)
                                         for lot, kept in zip(p.lots, books[(p.account, p.instrument, p.currency)].lots)]
            for p in before.positions}  # fmt: skip
    after, _ = build_books(rest, shorts, load(stored, opened, lots).books)
    whole = build(acts, shorts)
    closed_before = tuple(t for t in before.round_trips if t.status == "closed")
    # A restored open round trip (its book's first in `after`) lists only its new activities: upkeep appends
    # them to the stored ones (core.journal.saved).
    restored: set[tuple] = set()

    def completed(trip):
        which = (trip.instrument, trip.currency)
        if which in earlier and which not in restored:
            restored.add(which)
            return replace(trip, activities=earlier[which] + trip.activities)
        return trip

    assert closed_before + tuple(map(completed, after.round_trips)) == whole.round_trips
    assert (after.positions, before.unplaceable + after.unplaceable) == (whole.positions, whole.unplaceable)

    # Again with each book given only its oldest lots when the rest cannot be reached (core.journal.store's
    # rule: lots holding more than the units the later activities move; all of them when those may take the
    # book to flat, or split it, or close it): the same round trips, quantities and cost bases.
    from core.journal.fills import OPTION_EVENT_TYPES, SPLIT_TYPES, Fill, checked
    from core.journal.state import attach_lots

    partial = load(stored, opened)
    later = [checked(a) for a in rest]
    for (_, instrument, currency), book in partial.books.items():
        which, rows = (instrument, currency), lots.get((instrument, currency), [])
        mine = [a for a in later if (a.instrument, a.currency) == which]
        moved = sum((abs(a.units) for a in mine if isinstance(a, Fill) and a.units is not None), D(0))
        if any(a.type in SPLIT_TYPES | OPTION_EVENT_TYPES for a in mine) or moved >= abs(book.position):
            assert attach_lots(partial, which, rows, complete=True)
            continue
        held, cut_at = D(0), len(rows)
        for i, row in enumerate(rows):
            held += abs(row[4])
            if held > moved:
                cut_at = i + 1
                break
        assert attach_lots(partial, which, rows[:cut_at], complete=cut_at == len(rows))
    again, _ = build_books(rest, shorts, partial.books)
    assert (again.round_trips, again.unplaceable) == (after.round_trips, after.unplaceable)
    assert [(p.instrument, p.currency, p.quantity, p.cost_basis) for p in again.positions] == [
        (p.instrument, p.currency, p.quantity, p.cost_basis) for p in whole.positions
    ]
