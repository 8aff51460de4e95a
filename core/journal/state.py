"""Where the engine stopped in one (account, pair), as stored JSON: its books (position, how many lots it
ever opened, the open round trip's running sums) and the last activity processed, so upkeep can continue a
pair with only its new activities (core.journal.store) instead of rebuilding it.

The open lots themselves are not repeated here: they are the pair's rows of journal_open_lots, each lot's
unit value being its cost ÷ its quantity (an exact division, checked). Only a lot a split left as a
Fraction is kept here too, exactly, by its seq; and per book the lots' count, the exact sum of their known
costs and how many have none, so a continuation may load only the oldest lots (those its new activities can
consume: attach_lots) and the book stands for the rest. So the JSON stays small however many lots a pair
holds, and a continuation does not read them all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Context, Decimal, Inexact
from fractions import Fraction
from typing import Any

from core.journal.exact import ZERO, exact, simplest
from core.journal.fills import Fill, Unplaceable
from core.journal.trips import Books, _Book, _Lot, _Trip, order_key

VERSION = 3  # 2: an open round trip's activities are read from its stored row; 3: its lots from their rows
_DIVIDE = Context(prec=200, traps=[Inexact])  # a unit value that is not exactly cost ÷ quantity: rebuilt


def _number(value: Decimal | Fraction | None) -> str | None:
    # A Fraction (a lot after an awkward split) is kept exact as "n/d": a continuation never rounds.
    if value is None:
        return None
    return f"{value.numerator}/{value.denominator}" if isinstance(value, Fraction) else str(value)


def _parse(text: str | None) -> Decimal | Fraction | None:
    if text is None:
        return None
    return Fraction(text) if "/" in text else Decimal(text)


StoredLot = Sequence  # (id, seq, activity_id, opened_on, quantity, cost): a row of journal_open_lots, signed


@dataclass(slots=True)
class PairState:
    """The books of one pair, the order key of the last item processed, how many items shared its date
    (to tell a new row on that date from one already processed) and the pair's display symbol."""

    books: Books
    last: tuple | None
    last_day_items: int
    symbol: str | None
    # As loaded, per book (instrument, currency): its stored lots (StoredLot rows, by seq) and its stored
    # open round trip (id, seq, on_date), so a continuation writes only what changed.
    stored_lots: dict[tuple, Sequence[StoredLot]] | None = None
    open_trips: dict[tuple, tuple] | None = None
    # Per book, what the JSON says of its lots until attach_lots: (count, known cost, unknown, exact).
    lot_info: dict[tuple, tuple] | None = None


def key_of_items(items: list[Fill | Unplaceable]) -> tuple[tuple | None, int]:
    """The last order key among the items and how many items fall on its date."""
    if not items:
        return None, 0
    day = max(item.trade_date for item in items)  # the order key leads with the date: only that day's count
    on_day = [item for item in items if item.trade_date == day]
    return max(order_key(item) for item in on_day), len(on_day)


@exact
def dump(state: PairState) -> dict[str, Any]:
    last = state.last
    return {
        "v": VERSION,
        "symbol": state.symbol,
        "last": None
        if last is None
        else [last[0].isoformat(), last[2].isoformat() if not last[1] else None, last[3], last[4]],  # fmt: skip
        "last_day_items": state.last_day_items,
        "books": [_dump_book(key, book) for key, book in state.books.items()],
    }


def _dump_book(key: tuple[str, str, str | None], book: _Book) -> dict[str, Any]:
    trip = book.trip
    return {
        "account": key[0], "instrument": key[1], "currency": key[2],
        "position": str(book.position), "is_option": book.is_option,
        "closed": book.closed_before + len(book.trips), "opened": book.opened,
        "lots": book.hidden + len(book.lots), "cost": _number(_known_cost(book)),
        "unknown": book.hidden_unknown + sum(1 for lot in book.lots if lot.unit_value is None),
        "exact": [*book.hidden_exact,
                  *([lot.seq, _number(lot.quantity), _number(lot.unit_value)] for lot in book.lots
                    if type(lot.quantity) is Fraction or type(lot.unit_value) is Fraction)],
        "trip": None if trip is None else {
            "direction": trip.direction, "opened_on": trip.opened_on.isoformat(), "from_flat": trip.from_flat,
            "activities": trip.earlier + len(trip.activities), "buys": str(trip.buys), "sells": str(trip.sells), "fees": str(trip.fees),
            "peak": str(trip.peak), "flags": sorted(trip.flags),
        },
    }  # fmt: skip


def _known_cost(book: _Book) -> Decimal | Fraction:
    """The exact sum of the known costs of the book's lots (loaded or not); under the exact context."""
    costs = [c for c in (lot.cost for lot in book.lots) if c is not None]
    costs.append(book.hidden_cost)
    if all(type(c) is Decimal for c in costs):
        return sum(costs, ZERO)  # type: ignore[arg-type]
    return sum(map(Fraction, costs), Fraction(0))  # type: ignore[arg-type]


@exact
def load(data: dict[str, Any], open_trips: dict[tuple[str | None, str | None], tuple[int, int, date, int]],
         lots: dict[tuple[str | None, str | None], Sequence[StoredLot]] | None = None) -> PairState | None:  # fmt: skip
    """The stored state, or None when it is of another version or does not agree with the pair's stored
    open round trips and lots (the pair is then rebuilt). An open round trip's activities are not repeated in
    the state, nor loaded: the stored open round trip (id, seq, on_date, how many activities it lists), by
    (instrument, currency), holds them, and the restored trip collects only the new ones. The lots are every stored one, in seq order, by (instrument, currency); when None, the books
    hold no lot until attach_lots gives each its oldest ones."""
    if data.get("v") != VERSION:
        return None
    books: Books = {}
    trips: dict[tuple, tuple] = {}
    info: dict[tuple, tuple] = {}
    for b in data["books"]:
        which = (b["instrument"], b["currency"])
        book = _Book()
        book.position = Decimal(b["position"])
        book.is_option = b["is_option"]
        book.closed_before = b["closed"]
        book.opened = b["opened"]
        info[which] = (b["lots"], _parse(b["cost"]), b["unknown"], b["exact"])
        if (t := b["trip"]) is not None:
            stored = open_trips.get(which)
            if stored is None or stored[3] != t["activities"]:
                return None
            trips[which] = stored[:3]
            book.trip = _Trip(direction=t["direction"], opened_on=date.fromisoformat(t["opened_on"]),
                              from_flat=t["from_flat"], earlier=stored[3], buys=Decimal(t["buys"]),
                              sells=Decimal(t["sells"]), fees=Decimal(t["fees"]), peak=Decimal(t["peak"]),
                              flags=set(t["flags"]))  # fmt: skip
        books[(b["account"], b["instrument"], b["currency"])] = book
    if set(open_trips) - set(trips):
        return None  # a stored open round trip no book of the state knows
    last = data["last"]
    if last is not None:
        day, instant, rank, activity = last
        moment = datetime.fromisoformat(instant) if instant is not None else None
        last = order_key_parts(date.fromisoformat(day), moment, rank, activity)
    st = PairState(books=books, last=last, last_day_items=data["last_day_items"], symbol=data["symbol"],
                   stored_lots={}, open_trips=trips, lot_info=info)  # fmt: skip
    if lots is not None:
        if set(lots) - set(info):
            return None
        for which in info:
            if not attach_lots(st, which, lots.get(which, ()), complete=True):
                return None
    return st


@exact
def attach_lots(st: PairState, which: tuple, rows: Sequence[StoredLot], *, complete: bool) -> bool:
    """Give the book of (instrument, currency) its stored lots, the oldest first: all of them (complete), or
    only the oldest ones, the book standing for the rest (their count and costs from the JSON). False when
    they do not agree with the state (the pair is then rebuilt)."""
    count, known, unknown, exact_lots = st.lot_info[which]
    book = next(b for (_, i, c), b in st.books.items() if (i, c) == which)
    if len(rows) > count or complete and len(rows) != count:
        return False
    exact = {seq: (_parse(q), _parse(uv)) for seq, q, uv in exact_lots}
    try:
        book.lots = deque(_lot(row, exact) for row in rows)
    except (ArithmeticError, ValueError):
        return False  # a unit value that is not exactly the row's cost ÷ quantity: rebuilt
    st.stored_lots[which] = rows
    book.hidden = count - len(rows)
    if book.hidden:
        loaded = {lot.seq for lot in book.lots}
        book.hidden_exact = [e for e in exact_lots if e[0] not in loaded]
        book.hidden_unknown = unknown - sum(1 for lot in book.lots if lot.unit_value is None)
        held_cost = _known_cost(book)  # hidden_cost is zero until here
        if type(known) is Decimal and type(held_cost) is Decimal:
            book.hidden_cost = known - held_cost
        else:
            book.hidden_cost = simplest(Fraction(known) - Fraction(held_cost))  # type: ignore[arg-type]
        if book.hidden_unknown < 0:
            return False
    return True


def _lot(row: StoredLot, exact: dict[int, tuple]) -> _Lot:
    _, seq, activity_id, opened_on, quantity, cost = row
    if seq in exact:
        q, unit_value = exact[seq]
    else:
        q = quantity.copy_abs()  # copy_abs, not abs(): no context, no rounding
        unit_value = None if cost is None else _DIVIDE.divide(cost.copy_abs(), q)
    return _Lot(activity_id, opened_on, q, unit_value, seq)  # type: ignore[arg-type]


def order_key_parts(day: date, instant: datetime | None, rank: int, activity_id: str) -> tuple:
    """An order key (trips.order_key) from its parts."""
    from core.journal.trips import _NO_INSTANT

    return (day, instant is None, instant or _NO_INSTANT, rank, activity_id)
