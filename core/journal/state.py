"""Where the engine stopped in one (account, pair), as stored JSON: its books (position, FIFO lots with their
exact unit value, the open round trip's running sums) and the last activity processed, so upkeep can
continue a pair with only its new activities (core.journal.store) instead of rebuilding it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from core.journal.fills import Fill, Unplaceable
from core.journal.trips import Books, _Book, _Lot, _Trip, order_key

VERSION = 2  # 2: an open round trip's activities are read from its stored row


def _number(value: Decimal | Fraction | None) -> str | None:
    # A Fraction (a lot after an awkward split) is kept exact as "n/d": a continuation never rounds.
    if value is None:
        return None
    return f"{value.numerator}/{value.denominator}" if isinstance(value, Fraction) else str(value)


def _parse(text: str | None) -> Decimal | Fraction | None:
    if text is None:
        return None
    return Fraction(text) if "/" in text else Decimal(text)


@dataclass(slots=True)
class PairState:
    """The books of one pair, the order key of the last item processed, how many items shared its date
    (to tell a new row on that date from one already processed) and the pair's display symbol."""

    books: Books
    last: tuple | None
    last_day_items: int
    symbol: str | None


def key_of_items(items: list[Fill | Unplaceable]) -> tuple[tuple | None, int]:
    """The last order key among the items and how many items fall on its date."""
    if not items:
        return None, 0
    last = max(order_key(item) for item in items)
    return last, sum(1 for item in items if item.trade_date == last[0])


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
        "closed": book.closed_before + len(book.trips),
        "lots": [[lot.activity_id, lot.opened_on.isoformat(), _number(lot.quantity), _number(lot.unit_value)]
                 for lot in book.lots],
        "trip": None if trip is None else {
            "direction": trip.direction, "opened_on": trip.opened_on.isoformat(), "from_flat": trip.from_flat,
            "activities": len(trip.activities), "buys": str(trip.buys), "sells": str(trip.sells), "fees": str(trip.fees),
            "peak": str(trip.peak), "flags": sorted(trip.flags),
        },
    }  # fmt: skip


def load(data: dict[str, Any], open_activities: dict[tuple[str | None, str | None], list[str]]) -> PairState | None:
    """The stored state, or None when it is of another version or does not agree with the pair's open round
    trips (the pair is then rebuilt). An open round trip's activities are not repeated in the state: they are
    those of the stored open round trip, given here by (instrument, currency)."""
    if data.get("v") != VERSION:
        return None
    books: Books = {}
    for b in data["books"]:
        book = _Book()
        book.position = Decimal(b["position"])
        book.is_option = b["is_option"]
        book.closed_before = b["closed"]
        book.lots = deque(_Lot(aid, date.fromisoformat(on), _parse(q), _parse(uv)) for aid, on, q, uv in b["lots"])  # type: ignore[misc]
        if (t := b["trip"]) is not None:
            activities = open_activities.get((b["instrument"], b["currency"]))
            if activities is None or len(activities) != t["activities"]:
                return None
            book.trip = _Trip(direction=t["direction"], opened_on=date.fromisoformat(t["opened_on"]),
                              from_flat=t["from_flat"], activities=list(activities), buys=Decimal(t["buys"]),
                              sells=Decimal(t["sells"]), fees=Decimal(t["fees"]), peak=Decimal(t["peak"]),
                              flags=set(t["flags"]))  # fmt: skip
        books[(b["account"], b["instrument"], b["currency"])] = book
    last = data["last"]
    if last is not None:
        day, instant, rank, activity = last
        moment = datetime.fromisoformat(instant) if instant is not None else None
        last = order_key_parts(date.fromisoformat(day), moment, rank, activity)
    return PairState(books=books, last=last, last_day_items=data["last_day_items"], symbol=data["symbol"])


def order_key_parts(day: date, instant: datetime | None, rank: int, activity_id: str) -> tuple:
    """An order key (trips.order_key) from its parts."""
    from core.journal.trips import _NO_INSTANT

    return (day, instant is None, instant or _NO_INSTANT, rank, activity_id)
