"""The trade engine: round trips, FIFO open lots, per-currency metrics and daily P&L, as pure functions.

Input is a sequence of `Fill` records (one per stored activity that changes a position; `fill_from_row`
builds them from stored BrokerageTransaction-like rows) and `Unplaceable` records (activities the engine
cannot place). Output is exact `Decimal` throughout; the JSON helpers give the CLI's contract (issue 22).
The conventions of issue 22 are implemented as written. Where the issue leaves a choice open, this module
decides as follows:

- Currencies are never mixed: round trips and lots are kept per (account, instrument, currency). An
  instrument bought in USD and sold in CAD is two separate positions (a long and a short).
- Order within a date: activities with a UTC instant come first, by instant; activities without a time
  come after them (a SPLIT or an expiration without a time then follows the day's timed trades, as the
  issue's tie rule does). Activity ids compare as plain text. A naive timestamp is read as UTC.
- For options the first word of `option_action` gives the side (BUY_TO_CLOSE is buy side); without it the
  type does. The OPEN/CLOSE half is not trusted: the position arithmetic decides what opens and closes.
- SPLIT changes the absolute open quantity by its signed units (a short of 100 with SPLIT +100 becomes a
  short of 200). REVERSE_SPLIT is a SPLIT that always shrinks: the quantity falls by |units|, whatever sign
  the broker wrote. A split that would take the position to zero or past it cannot be placed (below).
- Option events (expiration, assignment, exercise) and splits while flat change nothing: they are returned
  in `JournalResult.ignored`, not put in any round trip.
- `cost_unknown` also marks a round trip holding any activity whose notional is unknown: a sell side or a
  transfer out without a price (besides the issue's transfer in and BUY/REI with price missing or zero).
  A transfer in is cost_unknown even when the broker gave a price. `transferred` marks every round trip a
  transfer out takes part in, not only the one it closes.
- Activities the engine cannot place carry the flag `unplaceable`: an `Unplaceable` record (unknown
  multiplier, missing or zero units, a negative price, a type that moves a position but is not modelled
  such as STOCK_MERGER or SPINOFF, an option event without an option contract, a float where a Decimal
  belongs) and a split that would cross zero. Such an activity is listed in the round trip open at that
  moment (its fee counts there) and always in `JournalResult.unplaceable`; while flat it joins no round trip
  (flagging a neighbour that it did not touch would hide that neighbour from the metrics for nothing).
- Multiplier of an option row: 10 when the stored raw activity says `is_mini_option: true`, 100 when it
  says false or does not say (the field is optional in SnapTrade's schema); any other value is unknown.
  An activity without a usable instrument (no symbol, or an option event with no option contract) joins no
  book and is only listed in `JournalResult.unplaceable`.
- Crypto cannot be sold short: in a crypto instrument the part of a sell side beyond the position opens a
  short round trip flagged `unplaceable` (the units most likely came from outside the imported history:
  staking, an untracked transfer), and the activity is also listed in `JournalResult.unplaceable`.
- Exactness: sums and products are exact Decimals. A lot is kept as quantity × unit notional, so a partial
  sell never divides; only a split does (a 3-for-2 split of one share is 1.5, of three lots [1, 2] it is
  4/3 and 8/3), and then that lot switches to Fractions. A value given out is exact when it has a finite
  decimal expansion, else rounded half-even to 10 decimal places (such a lot's quantity or cost, and the
  ratios). JSON numbers are normalized ("1050.00" is written "1050").
- Metrics: gross profit and gross loss are "0" when nothing qualifies, max drawdown is "0" with no days;
  every other ratio, average and extreme is null without a qualifying trade. Trades without a currency form
  their own summary row with currency null, listed last.
"""

from __future__ import annotations

import decimal
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from functools import wraps
from typing import Any, TypeVar

BUY_SIDE_TYPES = frozenset({"BUY", "REI", "STOCK_DIVIDEND", "EXTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_IN"})
SELL_SIDE_TYPES = frozenset({"SELL", "EXTERNAL_ASSET_TRANSFER_OUT", "INTERNAL_ASSET_TRANSFER_OUT"})
TRANSFER_IN_TYPES = frozenset({"EXTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_IN"})
TRANSFER_OUT_TYPES = frozenset({"EXTERNAL_ASSET_TRANSFER_OUT", "INTERNAL_ASSET_TRANSFER_OUT"})
SPLIT_TYPES = frozenset({"SPLIT", "REVERSE_SPLIT"})
OPTION_EVENT_TYPES = frozenset({"OPTIONEXPIRATION", "OPTIONASSIGNMENT", "OPTIONEXERCISE"})
POSITION_TYPES = BUY_SIDE_TYPES | SELL_SIDE_TYPES | SPLIT_TYPES | OPTION_EVENT_TYPES
# Types that can move units the engine has no rule for: with units and an instrument they are Unplaceable.
UNMODELLED_TYPES = frozenset({"SPINOFF", "STOCK_MERGER", "ADJUSTMENT", "TRANSFER", "OTHER"})
# Zero-notional activities that sort after the buys and sells they tie with.
_LATE_TYPES = SPLIT_TYPES | OPTION_EVENT_TYPES | {"STOCK_DIVIDEND"}

COST_UNKNOWN = "cost_unknown"
TRANSFERRED = "transferred"
INCOMPLETE_HISTORY = "incomplete_history"
UNPLACEABLE = "unplaceable"
FLAG_ORDER = (COST_UNKNOWN, TRANSFERRED, INCOMPLETE_HISTORY, UNPLACEABLE)

LONG, SHORT = "long", "short"
OPEN, CLOSED = "open", "closed"
STANDARD_MULTIPLIER, MINI_MULTIPLIER = Decimal(100), Decimal(10)

# Sums and products of Decimals are exact under this context; nothing divides under it (a non-terminating
# quotient at this precision would exhaust memory): divisions go through Fraction.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_ZERO = Decimal(0)
_RATIO_PLACES = 10
_NO_INSTANT = datetime.min.replace(tzinfo=UTC)
_EXACT_NUMBER_TYPES = (Decimal, int, type(None))  # a fast first check before isinstance

_F = TypeVar("_F", bound=Callable[..., Any])


def _exact(function: _F) -> _F:
    """Run `function` with exact Decimal addition and multiplication (the default context rounds at 28)."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with decimal.localcontext(_EXACT):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------
# Records in and out
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One activity that changes a position, with its normalized SnapTrade type."""

    activity_id: str
    account: str  # SnapTrade account id
    instrument: str  # symbol for stocks, ETFs and crypto; canonical option ticker for options
    currency: str | None
    type: str
    trade_date: date
    option_action: str | None = None  # BUY_TO_OPEN, SELL_TO_CLOSE, SELL_TO_OPEN, BUY_TO_CLOSE
    instant: datetime | None = None  # UTC, when the broker gave a time
    units: Decimal | None = None
    price: Decimal | None = None
    fee: Decimal | None = None
    multiplier: Decimal = Decimal(1)  # 100 options, 10 mini options, 1 otherwise
    is_option: bool = False
    is_crypto: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Unplaceable:
    """An activity the engine cannot place, with the reason; it is listed, never dropped."""

    activity_id: str
    account: str
    instrument: str | None  # None when the activity names no usable instrument
    currency: str | None
    type: str
    trade_date: date
    reason: str
    option_action: str | None = None
    instant: datetime | None = None
    fee: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenLot:
    activity_id: str  # the activity that opened the lot
    opened_on: date
    quantity: Decimal  # signed: negative for a short lot
    cost: Decimal | None  # signed like quantity; None when unknown


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    currency: str | None
    closed_trades: int
    wins: int
    losses: int
    scratches: int
    win_rate: Decimal | None
    gross_profit: Decimal
    gross_loss: Decimal  # zero or negative
    profit_factor: Decimal | None
    expectancy: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None
    max_drawdown: Decimal  # zero or positive
    average_holding_days: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyPnl:
    date: date
    currency: str | None
    net_pnl: Decimal
    trades: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerPosition:
    """Units of one instrument the broker reports for an account."""

    account: str
    instrument: str
    currency: str | None
    units: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciledPosition:
    account: str
    instrument: str
    currency: str | None
    quantity: Decimal
    cost_basis: Decimal | None
    broker_quantity: Decimal | None
    status: str  # "matched" | "differs" | "not_at_broker" | "only_at_broker"


# ---------------------------------------------------------------------------------------------------------
# From stored rows
# ---------------------------------------------------------------------------------------------------------


def parse_instant(text: Any) -> datetime | None:
    """The UTC instant of a stored trade_timestamp, or None when it holds no time of day (or no sense)."""
    if isinstance(text, datetime):
        value = text
    elif isinstance(text, str) and len(text.strip()) > 10:  # longer than YYYY-MM-DD: a time is given
        try:
            value = datetime.fromisoformat(text.strip().replace("z", "Z"))
        except ValueError:
            return None
    else:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def option_multiplier(raw: Any) -> Decimal | None:
    """Contract multiplier from the stored raw activity: 10 for a mini option, else 100; None if unreadable.

    SnapTrade's `option_symbol.is_mini_option` is optional: when absent the contract is taken as standard.
    """
    option = raw.get("option_symbol") if isinstance(raw, dict) else None
    mini = option.get("is_mini_option") if isinstance(option, dict) else None
    if mini is None:
        return STANDARD_MULTIPLIER
    if isinstance(mini, bool):
        return MINI_MULTIPLIER if mini else STANDARD_MULTIPLIER
    return None


def fill_from_row(
    row: Any, *, account: str | None = None, multiplier: Decimal | None = None
) -> Fill | Unplaceable | None:
    """A Fill from a stored BrokerageTransaction-like object (any object with its attributes).

    None when the activity does not affect positions (DIVIDEND, FEE, …); an Unplaceable with the reason when
    it does but cannot be placed. `account` is the SnapTrade account id (default: str(row.account_id));
    `multiplier` overrides the one read from `row.raw` for options.
    """
    kind = getattr(row, "transaction_type", None)
    if kind not in POSITION_TYPES and kind not in UNMODELLED_TYPES:
        return None
    is_option = getattr(row, "security_type", None) == "option" or getattr(row, "option_ticker", None) is not None
    instrument = getattr(row, "option_ticker", None) if is_option else getattr(row, "symbol", None)
    common: dict[str, Any] = {
        "activity_id": str(row.snaptrade_activity_id),
        "account": account if account is not None else str(getattr(row, "account_id", "")),
        "currency": getattr(row, "currency", None),
        "type": kind,
        "trade_date": row.trade_date,
        "option_action": getattr(row, "option_action", None),
        "instant": parse_instant(getattr(row, "trade_timestamp", None)),
        "fee": getattr(row, "fee", None),
    }
    units = getattr(row, "quantity", None)
    if kind in UNMODELLED_TYPES:
        if not instrument or not units:
            return None
        return Unplaceable(**common, instrument=instrument, reason=f"{kind} moves units; the engine has no rule for it")
    if kind in OPTION_EVENT_TYPES and not is_option:
        reason = f"{kind} for {getattr(row, 'symbol', None) or 'no symbol'} without an option contract"
        return Unplaceable(**common, instrument=None, reason=reason)
    if not instrument:
        return Unplaceable(**common, instrument=None, reason="no instrument (no symbol or option ticker)")
    if is_option:
        multiplier = multiplier if multiplier is not None else option_multiplier(getattr(row, "raw", None))
        if multiplier is None:
            return Unplaceable(**common, instrument=instrument, reason="unknown option multiplier")
    fill = Fill(
        **common,
        instrument=instrument,
        units=units,
        price=getattr(row, "price", None),
        multiplier=multiplier if multiplier is not None else Decimal(1),
        is_option=is_option,
        is_crypto=str(getattr(row, "security_type", "") or "").lower() == "crypto",
    )
    return checked(fill)


def placement_problem(fill: Fill) -> str | None:
    """Why the engine cannot place this Fill, or None when it can."""
    if fill.type not in POSITION_TYPES:
        return f"{fill.type} does not change a position the engine models"
    if not fill.instrument:
        return "no instrument"
    for value in (fill.units, fill.price, fill.fee, fill.multiplier):
        if type(value) not in _EXACT_NUMBER_TYPES and not isinstance(value, Decimal | int | None):
            return "a number that is not an exact Decimal"
    if fill.type in OPTION_EVENT_TYPES:
        return None if fill.is_option else f"{fill.type} on an instrument that is not an option"
    if not fill.units:
        return "missing or zero units"
    if fill.type in SPLIT_TYPES:
        return None
    if fill.multiplier is None or fill.multiplier <= 0:
        return "unknown multiplier"
    if fill.price is not None and fill.price < 0:
        return "negative price"
    return None


def checked(item: Fill | Unplaceable) -> Fill | Unplaceable:
    """The Fill itself, or an Unplaceable carrying the reason it cannot be placed."""
    if isinstance(item, Unplaceable):
        return item
    problem = placement_problem(item)
    return item if problem is None else _unplaceable_of(item, problem)


def _unplaceable_of(fill: Fill, reason: str) -> Unplaceable:
    return Unplaceable(
        activity_id=fill.activity_id,
        account=fill.account,
        instrument=fill.instrument or None,
        currency=fill.currency,
        type=fill.type,
        trade_date=fill.trade_date,
        reason=reason,
        option_action=fill.option_action,
        instant=fill.instant,
        fee=fill.fee if isinstance(fill.fee, Decimal | int | None) else None,
    )


# ---------------------------------------------------------------------------------------------------------
# Order and sides
# ---------------------------------------------------------------------------------------------------------


def is_buy_side(item: Fill | Unplaceable) -> bool | None:
    """True for buy side, False for sell side, None for splits and option events (no side of their own)."""
    if item.type in ("BUY", "SELL") and item.option_action:
        return item.option_action.startswith("BUY")  # only option rows carry an option action
    if item.type in BUY_SIDE_TYPES:
        return True
    if item.type in SELL_SIDE_TYPES:
        return False
    return None


def _tie_rank(item: Fill | Unplaceable) -> int:
    if item.type in _LATE_TYPES:
        return 2
    side = is_buy_side(item)
    return 2 if side is None else (0 if side else 1)


def order_key(item: Fill | Unplaceable) -> tuple:
    """Trade date; timed before untimed, by UTC instant; buy side, sell side, then the rest; activity id."""
    instant = item.instant
    if instant is not None:
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
    buys: Decimal = _ZERO
    sells: Decimal = _ZERO
    fees: Decimal = _ZERO
    peak: Decimal = _ZERO
    flags: set[str] = field(default_factory=set)
    closed_on: date | None = None

    def add(self, activity_id: str, *, buy: bool, value: Decimal, fee: Decimal) -> None:
        self.activities.append(activity_id)
        if buy:
            self.buys += value
        else:
            self.sells += value
        self.fees += fee


def _fee(item: Fill | Unplaceable) -> Decimal:
    return abs(Decimal(item.fee)) if item.fee is not None else _ZERO


def _unit_value(fill: Fill) -> Decimal | None:
    """Notional of one unit (price × multiplier); zero for a stock dividend; None when unknown."""
    if fill.type == "STOCK_DIVIDEND":
        return _ZERO
    if fill.type in TRANSFER_IN_TYPES or fill.price is None:
        return None
    if fill.type in ("BUY", "REI") and fill.price == 0:
        return None  # a purchase at zero is a missing price, not a gift
    return fill.price * fill.multiplier


class _Book:
    """Position, FIFO lots and round trips of one (account, instrument, currency), fed in engine order."""

    def __init__(self) -> None:
        self.position = _ZERO
        self.lots: deque[_Lot] = deque()
        self.trip: _Trip | None = None
        self.trips: list[_Trip] = []
        self.unplaceable: list[Unplaceable] = []
        self.ignored: list[Fill] = []
        self.is_option = False

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
        closing = min(units, abs(self.position)) if reduces else _ZERO
        if closing:
            self._close_part(fill, buy, closing, unit_value)
        if units - closing:
            self._open_part(fill, buy, units - closing, unit_value, crossed=bool(closing))

    def _close_part(self, fill: Fill, buy: bool, quantity: Decimal, unit_value: Decimal | None) -> None:
        trip = self.trip
        assert trip is not None  # a reducing activity always finds the open round trip
        value = unit_value * quantity if unit_value is not None else _ZERO
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
        value = unit_value * quantity if unit_value is not None else _ZERO
        trip.add(fill.activity_id, buy=buy, value=value, fee=_ZERO if crossed else _fee(fill))
        _flag_activity(trip, fill, unit_value)
        self.lots.append(_Lot(fill.activity_id, fill.trade_date, quantity, unit_value))
        self.position += quantity if buy else -quantity
        trip.peak = max(trip.peak, abs(self.position))
        if fill.is_crypto and not buy:
            trip.flags.add(UNPLACEABLE)
            reason = "sell side larger than the position in a crypto instrument (crypto cannot be sold short)"
            self.unplaceable.append(_unplaceable_of(fill, reason))

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
                left = _ZERO

    def _close(self, on: date) -> None:
        assert self.trip is not None
        self.trip.closed_on = on
        self.trips.append(self.trip)
        self.trip = None
        self.lots.clear()

    def _split(self, fill: Fill) -> None:
        if not self.position or self.trip is None:
            self.ignored.append(fill)  # nothing is held: the split changes nothing
            return
        change = Decimal(fill.units) if fill.type == "SPLIT" else -abs(Decimal(fill.units))
        old = abs(self.position)
        new = old + change
        if new <= 0:
            self._unplaceable(_unplaceable_of(fill, f"{fill.type} of {fill.units} on a position of {old}"))
            return
        factor = Fraction(new) / Fraction(old)
        for lot in self.lots:
            # Cost unchanged: the same money now holds more (or fewer) units.
            lot.quantity = _simplest(Fraction(lot.quantity) * factor)
            if lot.unit_value is not None:
                lot.unit_value = _simplest(Fraction(lot.unit_value) / factor)
        self.position = new if self.position > 0 else -new
        self.trip.add(fill.activity_id, buy=True, value=_ZERO, fee=_fee(fill))
        self.trip.peak = max(self.trip.peak, new)

    def _option_event(self, fill: Fill) -> None:
        if not self.position or self.trip is None:
            self.ignored.append(fill)
            return
        # Expiration, assignment and exercise close what remains at zero notional, long or short.
        self.trip.add(fill.activity_id, buy=self.position < 0, value=_ZERO, fee=_fee(fill))
        self.position = _ZERO
        self._close(fill.trade_date)

    def _unplaceable(self, item: Unplaceable) -> None:
        self.unplaceable.append(item)
        if self.trip is not None:
            self.trip.add(item.activity_id, buy=True, value=_ZERO, fee=_fee(item))
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


def _open_position(key: tuple[str, str, str | None], book: _Book) -> OpenPosition | None:
    if not book.position:
        return None
    sign = 1 if book.position > 0 else -1
    lots = tuple(
        OpenLot(
            activity_id=lot.activity_id,
            opened_on=lot.opened_on,
            quantity=fraction_to_decimal(sign * Fraction(lot.quantity)),
            cost=fraction_to_decimal(sign * Fraction(lot.cost)) if lot.cost is not None else None,
        )
        for lot in book.lots
    )
    costs = [lot.cost for lot in book.lots]
    known = all(cost is not None for cost in costs)
    basis = fraction_to_decimal(sign * sum(map(Fraction, costs), Fraction(0))) if known else None  # type: ignore[arg-type]
    return OpenPosition(
        account=key[0], instrument=key[1], currency=key[2], quantity=book.position, cost_basis=basis, lots=lots
    )


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
    key = next(iter(keys))
    trips = [_round_trip(key, trip, trip.flags) for trip in book.trips]
    if book.trip is not None:
        flags = set(book.trip.flags)
        sold_from_flat = book.trip.direction == SHORT and book.trip.from_flat
        if sold_from_flat and not book.is_option and not broker_short:
            flags.add(INCOMPLETE_HISTORY)  # most likely bought before the imported history begins
        trips.append(_round_trip(key, book.trip, flags))
    return book, trips, _open_position(key, book)


@_exact
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


@_exact
def build(
    items: Iterable[Fill | Unplaceable], broker_shorts: frozenset[tuple[str, str]] = frozenset()
) -> JournalResult:
    """The whole journal. `broker_shorts`: (account, instrument) pairs the broker reports as short."""
    groups: dict[tuple[str, str, str | None], list[Fill | Unplaceable]] = defaultdict(list)
    loose: list[Unplaceable] = []
    for item in items:
        item = checked(item)
        if item.instrument is None:
            loose.append(item)  # type: ignore[arg-type]  # only an Unplaceable lacks an instrument
        else:
            groups[(item.account, item.instrument, item.currency)].append(item)
    trips: list[RoundTrip] = []
    positions: list[OpenPosition] = []
    unplaceable: list[Unplaceable] = list(loose)
    ignored: list[Fill] = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2] is None, k[2] or "")):
        book, book_trips, position = _run_book(groups[key], (key[0], key[1]) in broker_shorts)
        trips.extend(book_trips)
        positions.extend([position] if position is not None else [])
        unplaceable.extend(book.unplaceable)
        ignored.extend(book.ignored)
    # Stable: round trips of one book keep their engine order on equal dates.
    trips.sort(key=lambda rt: rt.opened_on)
    return JournalResult(
        round_trips=tuple(trips),
        positions=tuple(positions),
        unplaceable=tuple(sorted(unplaceable, key=lambda u: (u.account, order_key(u)))),
        ignored=tuple(sorted(ignored, key=lambda f: (f.account, order_key(f)))),
    )


# ---------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------


def _terminating(value: Fraction) -> Decimal | None:
    """The exact Decimal of a Fraction with a finite decimal expansion, else None."""
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    if denominator != 1:
        return None
    places = max(twos, fives)
    return Decimal(f"{value.numerator * (10**places // value.denominator)}E-{places}")


def _simplest(value: Fraction) -> Decimal | Fraction:
    """A Decimal when exact (Decimal arithmetic is much faster), else the Fraction itself."""
    exact = _terminating(value)
    return value if exact is None else exact


def fraction_to_decimal(value: Fraction | int) -> Decimal:
    """Exact when the value has a finite decimal expansion, else rounded half-even to 10 decimal places."""
    value = Fraction(value)
    exact = _terminating(value)
    if exact is not None:
        return exact
    return Decimal(f"{round(value * 10**_RATIO_PLACES)}E-{_RATIO_PLACES}")


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    if not denominator:
        return None  # a ratio with a zero denominator is null
    return fraction_to_decimal(Fraction(numerator) / Fraction(denominator))


def _currency_key(currency: str | None) -> tuple[bool, str]:
    return (currency is None, currency or "")


def max_drawdown(daily_net: Sequence[Decimal]) -> Decimal:
    """Largest fall of the cumulative sum (from 0) below its running peak, as a positive number (or 0)."""
    cumulative = peak = worst = _ZERO
    for net in daily_net:
        cumulative += net
        peak = max(peak, cumulative)
        worst = max(worst, peak - cumulative)
    return worst


@_exact
def summarize(round_trips: Iterable[RoundTrip]) -> list[Summary]:
    """One Summary per currency traded (any round trip), over closed, unflagged round trips."""
    trips = list(round_trips)
    daily = daily_pnl(trips)
    summaries = []
    for currency in sorted({rt.currency for rt in trips}, key=_currency_key):
        counted = [rt for rt in trips if rt.currency == currency and rt.counts_in_metrics]
        days = [row.net_pnl for row in daily if row.currency == currency]
        summaries.append(_summary(currency, counted, days))
    return summaries


def _summary(currency: str | None, trips: list[RoundTrip], daily_net: list[Decimal]) -> Summary:
    nets = [rt.net_pnl for rt in trips if rt.net_pnl is not None]
    wins = [net for net in nets if net > 0]
    losses = [net for net in nets if net < 0]
    gross_profit, gross_loss = sum(wins, _ZERO), sum(losses, _ZERO)
    holding_days = sum((rt.closed_on - rt.opened_on).days for rt in trips if rt.closed_on is not None)
    return Summary(
        currency=currency,
        closed_trades=len(nets),
        wins=len(wins),
        losses=len(losses),
        scratches=len(nets) - len(wins) - len(losses),
        win_rate=_ratio(len(wins), len(wins) + len(losses)),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=_ratio(gross_profit, abs(gross_loss)),
        expectancy=_ratio(sum(nets, _ZERO), len(nets)),
        average_win=_ratio(gross_profit, len(wins)),
        average_loss=_ratio(gross_loss, len(losses)),
        largest_win=max(wins) if wins else None,
        largest_loss=min(losses) if losses else None,
        max_drawdown=max_drawdown(daily_net),
        average_holding_days=_ratio(holding_days, len(nets)),
    )


@_exact
def daily_pnl(round_trips: Iterable[RoundTrip]) -> list[DailyPnl]:
    """Σ net P&L of closed, unflagged round trips by close date and currency, by date then currency."""
    totals: dict[tuple[date, str | None], list] = {}
    for rt in round_trips:
        if rt.counts_in_metrics and rt.closed_on is not None and rt.net_pnl is not None:
            entry = totals.setdefault((rt.closed_on, rt.currency), [_ZERO, 0])
            entry[0] += rt.net_pnl
            entry[1] += 1
    ordered = sorted(totals.items(), key=lambda item: (item[0][0], _currency_key(item[0][1])))
    return [DailyPnl(date=day, currency=cur, net_pnl=net, trades=n) for (day, cur), (net, n) in ordered]


# ---------------------------------------------------------------------------------------------------------
# Reconciliation with the broker's positions
# ---------------------------------------------------------------------------------------------------------


def reconcile(positions: Iterable[OpenPosition], broker: Iterable[BrokerPosition]) -> list[ReconciledPosition]:
    """History's holdings beside the broker's, one row per account and instrument held by either.

    A broker position is matched to the history row of the same account and instrument, preferring the same
    currency (the history may hold one instrument in two currencies); broker rows with zero units and no
    history are not holdings and give no row.
    """
    rows: list[ReconciledPosition] = []
    by_key: dict[tuple[str, str], list[OpenPosition]] = defaultdict(list)
    for position in positions:
        by_key[(position.account, position.instrument)].append(position)
    matched: dict[int, BrokerPosition] = {}
    for held in broker:
        candidates = by_key.get((held.account, held.instrument), [])
        free = [p for p in candidates if id(p) not in matched]
        target = next((p for p in free if p.currency == held.currency), free[0] if free else None)
        if target is not None:
            matched[id(target)] = held
        elif held.units:
            rows.append(_only_at_broker(held))
    for group in by_key.values():
        rows.extend(_history_row(position, matched.get(id(position))) for position in group)
    rows.sort(key=lambda r: (r.account, r.instrument, _currency_key(r.currency)))
    return rows


def _history_row(position: OpenPosition, held: BrokerPosition | None) -> ReconciledPosition:
    if held is None:
        status = "not_at_broker"
    else:
        status = "matched" if held.units == position.quantity else "differs"
    return ReconciledPosition(
        account=position.account,
        instrument=position.instrument,
        currency=position.currency,
        quantity=position.quantity,
        cost_basis=position.cost_basis,
        broker_quantity=held.units if held is not None else None,
        status=status,
    )


def _only_at_broker(held: BrokerPosition) -> ReconciledPosition:
    return ReconciledPosition(
        account=held.account,
        instrument=held.instrument,
        currency=held.currency,
        quantity=_ZERO,
        cost_basis=None,
        broker_quantity=held.units,
        status="only_at_broker",
    )


# ---------------------------------------------------------------------------------------------------------
# JSON (issue 22's contract: numbers as strings of exact decimals, dates YYYY-MM-DD, counts integers)
# ---------------------------------------------------------------------------------------------------------


def decimal_text(value: Decimal | None) -> str | None:
    """ "1050" for Decimal("1050.00"), never an exponent, never "-0"; None stays None."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(_EXACT), "f")


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_json_dict(record: RoundTrip | Summary | DailyPnl | ReconciledPosition) -> dict[str, Any]:
    """The contract's object for one record."""
    if isinstance(record, RoundTrip):
        return _round_trip_json(record)
    if isinstance(record, Summary):
        return _summary_json(record)
    if isinstance(record, DailyPnl):
        return {
            "date": _day(record.date),
            "currency": record.currency,
            "net_pnl": decimal_text(record.net_pnl),
            "trades": record.trades,
        }
    if isinstance(record, ReconciledPosition):
        return {
            "account": record.account,
            "instrument": record.instrument,
            "currency": record.currency,
            "quantity": decimal_text(record.quantity),
            "cost_basis": decimal_text(record.cost_basis),
            "broker_quantity": decimal_text(record.broker_quantity),
            "status": record.status,
        }
    raise TypeError(f"no JSON shape for {type(record).__name__}")


def _round_trip_json(rt: RoundTrip) -> dict[str, Any]:
    return {
        "account": rt.account,
        "instrument": rt.instrument,
        "currency": rt.currency,
        "direction": rt.direction,
        "status": rt.status,
        "opened_on": _day(rt.opened_on),
        "closed_on": _day(rt.closed_on),
        "quantity": decimal_text(rt.quantity),
        "gross_pnl": decimal_text(rt.gross_pnl),
        "fees": decimal_text(rt.fees),
        "net_pnl": decimal_text(rt.net_pnl),
        "flags": list(rt.flags),
        "activities": list(rt.activities),
    }


def _summary_json(s: Summary) -> dict[str, Any]:
    return {
        "currency": s.currency,
        "closed_trades": s.closed_trades,
        "wins": s.wins,
        "losses": s.losses,
        "scratches": s.scratches,
        "win_rate": decimal_text(s.win_rate),
        "gross_profit": decimal_text(s.gross_profit),
        "gross_loss": decimal_text(s.gross_loss),
        "profit_factor": decimal_text(s.profit_factor),
        "expectancy": decimal_text(s.expectancy),
        "average_win": decimal_text(s.average_win),
        "average_loss": decimal_text(s.average_loss),
        "largest_win": decimal_text(s.largest_win),
        "largest_loss": decimal_text(s.largest_loss),
        "max_drawdown": decimal_text(s.max_drawdown),
        "average_holding_days": decimal_text(s.average_holding_days),
    }


def trades_json(round_trips: Iterable[RoundTrip]) -> dict[str, Any]:
    """`{"round_trips": [...], "summary": [...], "daily": [...]}` as `python -m core trades` prints it."""
    trips = list(round_trips)
    return {
        "round_trips": [to_json_dict(rt) for rt in trips],
        "summary": [to_json_dict(s) for s in summarize(trips)],
        "daily": [to_json_dict(d) for d in daily_pnl(trips)],
    }


def positions_json(rows: Iterable[ReconciledPosition]) -> dict[str, Any]:
    """`{"positions": [...]}` as `python -m core positions` prints it."""
    return {"positions": [to_json_dict(row) for row in rows]}


__all__ = [
    "BrokerPosition",
    "DailyPnl",
    "Fill",
    "JournalResult",
    "OpenLot",
    "OpenPosition",
    "ReconciledPosition",
    "RoundTrip",
    "Summary",
    "Unplaceable",
    "build",
    "build_instrument",
    "checked",
    "daily_pnl",
    "decimal_text",
    "fill_from_row",
    "fraction_to_decimal",
    "max_drawdown",
    "option_multiplier",
    "order_fills",
    "order_key",
    "parse_instant",
    "placement_problem",
    "positions_json",
    "reconcile",
    "summarize",
    "to_json_dict",
    "trades_json",
]
