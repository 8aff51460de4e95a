"""Activities read the way the trade journal reads them (issue 22's conventions), written apart from the sandbox so
the tests check its histories against an independent reading rather than against its own ledger.

Direction comes from the type, never from the sign of `units`; SPLIT changes the quantity held (ignored while flat);
option expirations, assignments and exercises close what is left of the contract. STAKING_REWARD is not among the
conventions' types: the broker counts the coins, so this reading adds them like a stock dividend.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

BUY_SIDE = {"BUY", "REI", "STOCK_DIVIDEND", "EXTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_IN"}
SELL_SIDE = {"SELL", "EXTERNAL_ASSET_TRANSFER_OUT", "INTERNAL_ASSET_TRANSFER_OUT"}
OPTION_EVENTS = {"OPTIONEXPIRATION", "OPTIONASSIGNMENT", "OPTIONEXERCISE"}
UNITS_ONLY = {"STAKING_REWARD"}
AFTER_TIES = {"SPLIT", "STOCK_DIVIDEND"} | OPTION_EVENTS


def instrument(row: dict) -> str | None:
    """The stored symbol, or the canonical (unpadded) OCC ticker of an option."""
    if row.get("option_symbol"):
        return row["option_symbol"]["ticker"].replace(" ", "")
    return row["symbol"]["symbol"] if row.get("symbol") else None


def is_option(name: str) -> bool:
    return len(name) > 15 and name[-9] in "CP" and name[-8:].isdigit()


def engine_order(row: dict) -> tuple:
    """Trade date as written; then the instant where a time is given; buys, then sells, then splits and events."""
    written = row["trade_date"] or row["settlement_date"]
    timed = len(written) > 10 and not written.endswith("T00:00:00Z")
    t = row["type"]
    rank = 2 if t in AFTER_TIES else 0 if t in BUY_SIDE or t in UNITS_ONLY else 1
    return written[:10], written if timed else "", rank, row["id"]


def signed_units(row: dict, held: Decimal) -> Decimal | None:
    """The change in position a row makes under the conventions, or None when it does not touch one."""
    t, units = row["type"], abs(Decimal(str(row["units"])))
    if t in BUY_SIDE or t in UNITS_ONLY:
        return units
    if t in SELL_SIDE:
        return -units
    if t == "SPLIT":
        return Decimal(str(row["units"])) if held else Decimal(0)
    if t in OPTION_EVENTS:
        return -held
    return None


@dataclass
class RoundTrip:
    instrument: str
    opened_on: str
    closed_on: str | None = None
    gross: Decimal = Decimal(0)  # sell-side notional minus buy-side notional
    rows: list[dict] = field(default_factory=list)
    short: bool = False


@dataclass
class Replay:
    holdings: dict[str, Decimal]  # instrument -> units held at the end (zero positions dropped)
    lowest: dict[str, Decimal]  # instrument -> the lowest position on the way
    round_trips: list[RoundTrip]
    crossings: list[dict]  # rows that took a position through zero in one step


def replay(rows: list[dict]) -> Replay:
    held: dict[str, Decimal] = defaultdict(Decimal)
    lowest: dict[str, Decimal] = defaultdict(Decimal)
    open_trips: dict[str, RoundTrip] = {}
    trips, crossings = [], []
    for row in sorted(rows, key=engine_order):
        name = instrument(row)
        if name is None:
            continue
        before = held[name]
        change = signed_units(row, before)
        if change is None or (change == 0 and row["type"] == "SPLIT"):
            continue
        after = before + change
        if before and after and (before > 0) != (after > 0):
            crossings.append(row)
        trip = open_trips.get(name)
        if trip is None:
            trip = open_trips[name] = RoundTrip(name, row["trade_date"] or "", short=change < 0)
            trips.append(trip)
        multiplier = 100 if is_option(name) else 1
        notional = Decimal(str(row["price"])) * abs(Decimal(str(row["units"]))) * multiplier
        if row["type"] in BUY_SIDE:
            trip.gross -= notional
        elif row["type"] in SELL_SIDE:
            trip.gross += notional
        trip.rows.append(row)
        held[name] = after
        lowest[name] = min(lowest[name], after)
        if after == 0:
            trip.closed_on = row["trade_date"]
            del open_trips[name]
    return Replay({k: v for k, v in held.items() if v}, dict(lowest), trips, crossings)
