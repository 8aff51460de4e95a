"""Round trips and FIFO open lots: activities in engine order through one book per account, instrument and
currency (see core.journal.engine for the conventions)."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from core.journal.exact import ZERO, exact, fraction_to_decimal, simplest
from core.journal.fills import (
    OPTION_EVENT_TYPES,
    SPLIT_TYPES,
    TRANSFER_IN_TYPES,
    TRANSFER_OUT_TYPES,
    ZERO_COST_TYPES,
    Fill,
    Unplaceable,
    checked,
    is_buy_side,
    unplaceable_of,
)

# Zero-notional activities that sort after the buys and sells they tie with.
_LATE_TYPES = SPLIT_TYPES | OPTION_EVENT_TYPES | ZERO_COST_TYPES

COST_UNKNOWN = "cost_unknown"
TRANSFERRED = "transferred"
INCOMPLETE_HISTORY = "incomplete_history"
UNPLACEABLE = "unplaceable"
FLAG_ORDER = (COST_UNKNOWN, TRANSFERRED, INCOMPLETE_HISTORY, UNPLACEABLE)

LONG, SHORT = "long", "short"
OPEN, CLOSED = "open", "closed"
_NO_INSTANT = datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True, kw_only=True)  # not frozen: fills.Fill says why
class RoundTrip:
    account: str
    instrument: str
    currency: str | None
    direction: str  # "long" | "short"
    status: str  # "closed" | "open"
    opened_on: date
    closed_on: date | None
    quantity: Decimal  # the largest absolute position held during the round trip
    gross_pnl: Decimal | None  # null while open or when cost_unknown
    fees: Decimal
    net_pnl: Decimal | None
    flags: tuple[str, ...]
    activities: tuple[str, ...]  # activity ids in engine order

    @property
    def counts_in_metrics(self) -> bool:
        return self.status == CLOSED and not self.flags

    @property
    def outcome(self) -> str:
        """win / loss / scratch for a closed trip that counts; open; flagged (closed but out of the metrics)."""
        if self.status == OPEN:
            return "open"
        if not self.counts_in_metrics or self.net_pnl is None:
            return "flagged"
        return "win" if self.net_pnl > 0 else "loss" if self.net_pnl < 0 else "scratch"


@dataclass(slots=True, kw_only=True)  # not frozen: fills.Fill says why
class OpenLot:
    activity_id: str  # the activity that opened the lot
    opened_on: date
    quantity: Decimal  # signed: negative for a short lot
    cost: Decimal | None  # signed like quantity; None when unknown


@dataclass(slots=True, kw_only=True)  # not frozen: fills.Fill says why
class OpenPosition:
    account: str
    instrument: str
    currency: str | None
    quantity: Decimal  # signed, negative = short
    cost_basis: Decimal | None  # positive for a long, negative for a short, None when any lot's cost is unknown
    lots: tuple[OpenLot, ...]  # FIFO order, oldest first


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalResult:
    round_trips: tuple[RoundTrip, ...]
    positions: tuple[OpenPosition, ...]
    unplaceable: tuple[Unplaceable, ...]  # every activity the engine could not place, in engine order
    ignored: tuple[Fill, ...]  # splits and option events met while flat: they changed nothing


# ---------------------------------------------------------------------------------------------------------
# Order
# ---------------------------------------------------------------------------------------------------------


def _tie_rank(item: Fill | Unplaceable) -> int:
    if item.type in _LATE_TYPES:
        return 2
    side = is_buy_side(item)
    return 2 if side is None else (0 if side else 1)


def order_key(item: Fill | Unplaceable) -> tuple:
    """Trade date; timed before untimed, by UTC instant; buy side, sell side, then the rest; activity id."""
    instant = item.instant
    if instant is not None and instant.tzinfo is not UTC:  # parse_instant gives UTC; a Fill made by hand may not
        instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
    return (item.trade_date, instant is None, instant or _NO_INSTANT, _tie_rank(item), item.activity_id)


def order_fills(items: Iterable[Fill | Unplaceable]) -> list[Fill | Unplaceable]:
    return sorted(items, key=order_key)


# ---------------------------------------------------------------------------------------------------------
# One account, instrument and currency
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Lot:
    activity_id: str
    opened_on: date
    # > 0; the position's sign gives long or short. Decimal while exact, a Fraction after an awkward split.
    quantity: Decimal | Fraction
    # Notional of one unit (>= 0; None when unknown): the lot's cost is quantity × unit_value, so consuming
    # part of a lot only lowers its quantity and needs no division.
    unit_value: Decimal | Fraction | None
    # The lot's place among every lot its book ever opened: it never changes while the lot lives, so a
    # continuation (core.journal.store) rewrites only the stored lots that changed.
    seq: int = 0

    @property
    def cost(self) -> Decimal | Fraction | None:
        if self.unit_value is None:
            return None
        if type(self.quantity) is type(self.unit_value):
            return self.quantity * self.unit_value  # type: ignore[operator]
        return Fraction(self.quantity) * Fraction(self.unit_value)


@dataclass(slots=True)
class _Trip:
    direction: str
    opened_on: date
    from_flat: bool
    activities: list[str] = field(default_factory=list)
    buys: Decimal = ZERO
    sells: Decimal = ZERO
    fees: Decimal = ZERO
    peak: Decimal = ZERO
    flags: set[str] = field(default_factory=set)
    closed_on: date | None = None
    # A trip restored by a continuation holds only its new activities: this many came before and are stored
    # already (core.journal.saved appends the new ones to its row instead of rewriting them all).
    earlier: int = 0

    def add(self, activity_id: str, *, buy: bool, value: Decimal, fee: Decimal) -> None:
        self.activities.append(activity_id)
        if buy:
            self.buys += value
        else:
            self.sells += value
        self.fees += fee


def _fee(item: Fill | Unplaceable) -> Decimal:
    return abs(Decimal(item.fee)) if item.fee is not None else ZERO


def _unit_value(fill: Fill) -> Decimal | None:
    """Notional of one unit (price × multiplier); zero for a stock dividend or staking reward; None when unknown."""
    if fill.type in ZERO_COST_TYPES:
        return ZERO
    if fill.type in TRANSFER_IN_TYPES or fill.price is None:
        return None
    if fill.type in ("BUY", "REI") and fill.price == 0:
        return None  # a purchase at zero is a missing price, not a gift
    return fill.price * fill.multiplier


class _Book:
    """Position, FIFO lots and round trips of one (account, instrument, currency), fed in engine order.

    A book restored from its stored state (core.journal.state) holds only the round trips closed since;
    `closed_before` counts the earlier ones (the next round trip's place in the book)."""

    def __init__(self) -> None:
        self.position = ZERO
        self.lots: deque[_Lot] = deque()
        self.trip: _Trip | None = None
        self.trips: list[_Trip] = []
        self.unplaceable: list[Unplaceable] = []
        self.ignored: list[Fill] = []
        self.is_option = False
        self.closed_before = 0
        self.opened = 0  # lots ever opened (the next lot's seq)
        # A book restored with only its oldest lots (those a continuation can consume, core.journal.state)
        # stands for the lots it did not load, which come after those, by their count, the sum of their known
        # costs and how many have no known cost. Zero otherwise.
        self.hidden = 0
        self.hidden_cost: Decimal | Fraction = ZERO
        self.hidden_unknown = 0
        self.hidden_exact: list = []  # the JSON's exact entries (core.journal.state) of the lots not loaded

    def apply(self, item: Fill | Unplaceable) -> None:
        if isinstance(item, Unplaceable):
            self._unplaceable(item)
        elif item.type in SPLIT_TYPES:
            self._split(item)
        elif item.type in OPTION_EVENT_TYPES:
            self._option_event(item)
        else:
            self._trade(item)

    def _trade(self, fill: Fill) -> None:
        self.is_option = self.is_option or fill.is_option
        buy = bool(is_buy_side(fill))
        units = abs(Decimal(fill.units))
        unit_value = _unit_value(fill)
        reduces = self.position != 0 and (self.position < 0) == buy
        closing = min(units, abs(self.position)) if reduces else ZERO
        if closing:
            self._close_part(fill, buy, closing, unit_value)
        if units - closing:
            self._open_part(fill, buy, units - closing, unit_value, crossed=bool(closing))

    def _close_part(self, fill: Fill, buy: bool, quantity: Decimal, unit_value: Decimal | None) -> None:
        trip = self.trip
        assert trip is not None  # a reducing activity always finds the open round trip
        value = unit_value * quantity if unit_value is not None else ZERO
        trip.add(fill.activity_id, buy=buy, value=value, fee=_fee(fill))  # the fee goes wholly to this trip
        _flag_activity(trip, fill, unit_value)
        self._consume(quantity)
        self.position += quantity if buy else -quantity
        if not self.position:
            self._close(fill.trade_date)

    def _open_part(self, fill: Fill, buy: bool, quantity: Decimal, unit_value: Decimal | None, crossed: bool) -> None:
        if self.trip is None:
            # A round trip opened by a crossing activity is not "from flat".
            self.trip = _Trip(direction=LONG if buy else SHORT, opened_on=fill.trade_date, from_flat=not crossed)
        trip = self.trip
        value = unit_value * quantity if unit_value is not None else ZERO
        trip.add(fill.activity_id, buy=buy, value=value, fee=ZERO if crossed else _fee(fill))
        _flag_activity(trip, fill, unit_value)
        self.lots.append(_Lot(fill.activity_id, fill.trade_date, quantity, unit_value, self.opened))
        self.opened += 1
        self.position += quantity if buy else -quantity
        trip.peak = max(trip.peak, abs(self.position))
        if fill.is_crypto and not buy:
            trip.flags.add(UNPLACEABLE)
            reason = "sell side larger than the position in a crypto instrument (crypto cannot be sold short)"
            self.unplaceable.append(unplaceable_of(fill, reason))

    def _consume(self, quantity: Decimal) -> None:
        """FIFO: the oldest lots are consumed first; a partly consumed lot keeps its unit notional."""
        left: Decimal | Fraction = quantity
        while left and self.lots:
            lot = self.lots[0]
            if type(lot.quantity) is not type(left):  # a Fraction lot: Decimal and Fraction do not mix
                left, lot.quantity = Fraction(left), Fraction(lot.quantity)
            if lot.quantity <= left:
                left -= lot.quantity  # type: ignore[operator]
                self.lots.popleft()
            else:
                lot.quantity -= left  # type: ignore[operator]
                left = ZERO
        if left and self.hidden:
            raise RuntimeError("a restored book consumed past the lots it loaded")

    def _close(self, on: date) -> None:
        assert self.trip is not None
        self.trip.closed_on = on
        self.trips.append(self.trip)
        self.trip = None
        if self.hidden:
            raise RuntimeError("a restored book closed with lots it did not load")
        self.lots.clear()

    def _split(self, fill: Fill) -> None:
        if not self.position or self.trip is None:
            self.ignored.append(fill)  # nothing is held: the split changes nothing
            return
        change = Decimal(fill.units) if fill.type == "SPLIT" else -abs(Decimal(fill.units))
        old = abs(self.position)
        new = old + change
        if new <= 0:
            self._unplaceable(unplaceable_of(fill, f"{fill.type} of {fill.units} on a position of {old}"))
            return
        if self.hidden:
            raise RuntimeError("a split in a restored book that did not load all its lots")
        factor = Fraction(new) / Fraction(old)
        for lot in self.lots:
            # Cost unchanged: the same money now holds more (or fewer) units.
            lot.quantity = simplest(Fraction(lot.quantity) * factor)
            if lot.unit_value is not None:
                lot.unit_value = simplest(Fraction(lot.unit_value) / factor)
        self.position = new if self.position > 0 else -new
        self.trip.add(fill.activity_id, buy=True, value=ZERO, fee=_fee(fill))
        self.trip.peak = max(self.trip.peak, new)

    def _option_event(self, fill: Fill) -> None:
        if not self.position or self.trip is None:
            self.ignored.append(fill)
            return
        # Expiration, assignment and exercise close what remains at zero notional, long or short.
        self.trip.add(fill.activity_id, buy=self.position < 0, value=ZERO, fee=_fee(fill))
        self.position = ZERO
        self._close(fill.trade_date)

    def _unplaceable(self, item: Unplaceable) -> None:
        self.unplaceable.append(item)
        if self.trip is not None:
            self.trip.add(item.activity_id, buy=True, value=ZERO, fee=_fee(item))
            self.trip.flags.add(UNPLACEABLE)


def _flag_activity(trip: _Trip, fill: Fill, unit_value: Decimal | None) -> None:
    if unit_value is None:
        trip.flags.add(COST_UNKNOWN)
    if fill.type in TRANSFER_OUT_TYPES:
        trip.flags.add(TRANSFERRED)


def _round_trip(key: tuple[str, str, str | None], trip: _Trip, flags: set[str]) -> RoundTrip:
    account, instrument, currency = key
    closed = trip.closed_on is not None
    gross = trip.sells - trip.buys if closed and COST_UNKNOWN not in flags else None
    return RoundTrip(
        account=account,
        instrument=instrument,
        currency=currency,
        direction=trip.direction,
        status=CLOSED if closed else OPEN,
        opened_on=trip.opened_on,
        closed_on=trip.closed_on,
        quantity=trip.peak,
        gross_pnl=gross,
        fees=trip.fees,
        net_pnl=gross - trip.fees if gross is not None else None,
        flags=tuple(flag for flag in FLAG_ORDER if flag in flags),
        activities=tuple(trip.activities),
    )


def _given_out(sign: int, value: Decimal | Fraction) -> Decimal:
    """A lot's signed quantity or cost: a Decimal as it is (exact), a Fraction (left by a split) through
    fraction_to_decimal. Sending every Decimal through a Fraction cost ~30 us a lot and changed no value."""
    if type(value) is Decimal:
        return value if sign > 0 else -value
    return fraction_to_decimal(sign * value)


def _open_position(key: tuple[str, str, str | None], book: _Book) -> OpenPosition | None:
    if not book.position:
        return None
    sign = 1 if book.position > 0 else -1
    lots = tuple(
        OpenLot(
            activity_id=lot.activity_id,
            opened_on=lot.opened_on,
            quantity=_given_out(sign, lot.quantity),
            cost=_given_out(sign, lot.cost) if lot.cost is not None else None,
        )
        for lot in book.lots
    )
    costs = [lot.cost for lot in book.lots]
    costs.append(book.hidden_cost)  # the lots a restored book did not load (zero otherwise)
    if book.hidden_unknown or not all(cost is not None for cost in costs):
        basis = None
    elif all(type(cost) is Decimal for cost in costs):
        basis = sign * sum(costs, ZERO)  # type: ignore[arg-type]  # exact under the engine's context
    else:
        basis = fraction_to_decimal(sign * sum(map(Fraction, costs), Fraction(0)))  # type: ignore[arg-type]
    return OpenPosition(
        account=key[0], instrument=key[1], currency=key[2], quantity=book.position, cost_basis=basis, lots=lots
    )


def _book_output(key: tuple[str, str, str | None], book: _Book, broker_short: bool) -> tuple[list[RoundTrip], Any]:
    """The round trips the book closed (since it was restored) and its open one, and its open position."""
    trips = [_round_trip(key, trip, trip.flags) for trip in book.trips]
    if book.trip is not None:
        flags = set(book.trip.flags)
        sold_from_flat = book.trip.direction == SHORT and book.trip.from_flat
        if sold_from_flat and not book.is_option and not broker_short:
            flags.add(INCOMPLETE_HISTORY)  # most likely bought before the imported history begins
        trips.append(_round_trip(key, book.trip, flags))
    return trips, _open_position(key, book)


def _run_book(items: Iterable[Fill | Unplaceable], broker_short: bool) -> tuple[_Book, list[RoundTrip], Any]:
    """Run one book over items already passed through `checked`."""
    ordered = order_fills(items)
    keys = {(item.account, item.instrument, item.currency) for item in ordered}
    if len(keys) > 1:
        raise ValueError(f"build_instrument takes one account, instrument and currency, got {sorted(map(str, keys))}")
    book = _Book()
    for item in ordered:
        book.apply(item)
    if not ordered:
        return book, [], None
    trips, position = _book_output(next(iter(keys)), book, broker_short)
    return book, trips, position


@exact
def build_instrument(
    fills: Iterable[Fill | Unplaceable], broker_short: bool = False
) -> tuple[list[RoundTrip], OpenPosition | None]:
    """Round trips (chronological) and the open position of one account, instrument and currency.

    `broker_short`: the broker reports a short position in this instrument (so a sell from flat that is
    still open is a real short, not missing history).
    """
    _, trips, position = _run_book([checked(item) for item in fills], broker_short)
    return trips, position


def _group_key(item: Fill | Unplaceable) -> tuple:
    return (item.account, item.instrument or "", item.currency is None, item.currency or "")


Books = dict[tuple[str, str, str | None], _Book]


def settle(books: Books) -> None:
    """After storing what build_books gave: forget the books' closed round trips (counting them), their
    unplaceable and ignored items, so the next build_books over them gives only what is new."""
    for book in books.values():
        book.closed_before += len(book.trips)
        book.trips, book.unplaceable, book.ignored = [], [], []


@exact
def build(
    items: Iterable[Fill | Unplaceable], broker_shorts: frozenset[tuple[str, str]] = frozenset()
) -> JournalResult:
    """The whole journal. `broker_shorts`: (account, instrument) pairs the broker reports as short."""
    return build_books(items, broker_shorts)[0]


@exact
def build_books(
    items: Iterable[Fill | Unplaceable], broker_shorts: frozenset[tuple[str, str]] = frozenset(),
    books: Books | None = None, *, checked_already: bool = False,
) -> tuple[JournalResult, Books]:  # fmt: skip
    """`build`, continuing from `books` (restored by core.journal.state) when given: every item must then
    come after what those books already hold, and the result holds the round trips closed since, the open
    ones, the positions and the unplaceable items among `items`. Returns the books, to store again.
    `checked_already`: every item came from fill_from_row, which already passed it through `checked`."""
    groups: dict[tuple[str, str, str | None], list[Fill | Unplaceable]] = defaultdict(list)
    loose: list[Unplaceable] = []
    for item in items:
        item = item if checked_already else checked(item)
        if item.instrument is None:
            loose.append(item)  # type: ignore[arg-type]  # only an Unplaceable lacks an instrument
        else:
            groups[(item.account, item.instrument, item.currency)].append(item)
    books = dict(books or {})
    trips: list[RoundTrip] = []
    positions: list[OpenPosition] = []
    unplaceable: list[Unplaceable] = list(loose)
    ignored: list[Fill] = []
    for key in sorted(set(groups) | set(books), key=lambda k: (k[0], k[1], k[2] is None, k[2] or "")):
        book = books.setdefault(key, _Book())
        for item in order_fills(groups.get(key, ())):
            book.apply(item)
        book_trips, position = _book_output(key, book, (key[0], key[1]) in broker_shorts)
        trips.extend(book_trips)
        positions.extend([position] if position is not None else [])
        unplaceable.extend(book.unplaceable)
        ignored.extend(book.ignored)
    # Stable: round trips of one book keep their engine order on equal dates.
    trips.sort(key=lambda rt: rt.opened_on)
    result = JournalResult(
        round_trips=tuple(trips),
        positions=tuple(positions),
        unplaceable=tuple(sorted(unplaceable, key=lambda u: (u.account, order_key(u)))),
        ignored=tuple(sorted(ignored, key=lambda f: (f.account, order_key(f)))),
    )
    return result, books
