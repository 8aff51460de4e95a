"""Activities in: the `Fill` and `Unplaceable` records, building them from stored rows, and the side of
an activity (from its type, never from the sign of its units).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# SnapTrade types not in its documented list, stored as OTHER with the type kept in raw_type, that the engine
# places: a staking reward adds units at zero cost, as a stock dividend does.
RAW_PLACED_TYPES = frozenset({"STAKING_REWARD"})
ZERO_COST_TYPES = frozenset({"STOCK_DIVIDEND", "STAKING_REWARD"})
BUY_SIDE_TYPES = frozenset({"BUY", "REI", "STOCK_DIVIDEND", "EXTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_IN",
                            "STAKING_REWARD"})  # fmt: skip
SELL_SIDE_TYPES = frozenset({"SELL", "EXTERNAL_ASSET_TRANSFER_OUT", "INTERNAL_ASSET_TRANSFER_OUT"})
TRANSFER_IN_TYPES = frozenset({"EXTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_IN"})
TRANSFER_OUT_TYPES = frozenset({"EXTERNAL_ASSET_TRANSFER_OUT", "INTERNAL_ASSET_TRANSFER_OUT"})
SPLIT_TYPES = frozenset({"SPLIT", "REVERSE_SPLIT"})
OPTION_EVENT_TYPES = frozenset({"OPTIONEXPIRATION", "OPTIONASSIGNMENT", "OPTIONEXERCISE"})
# The stored (normalized) types that change a position; the engine also places RAW_PLACED_TYPES.
POSITION_TYPES = (BUY_SIDE_TYPES | SELL_SIDE_TYPES | SPLIT_TYPES | OPTION_EVENT_TYPES) - RAW_PLACED_TYPES
# Types that can move units the engine has no rule for: with units and an instrument they are Unplaceable.
UNMODELLED_TYPES = frozenset({"SPINOFF", "STOCK_MERGER", "ADJUSTMENT", "TRANSFER", "OTHER"})

STANDARD_MULTIPLIER, MINI_MULTIPLIER = Decimal(100), Decimal(10)
_ONE = Decimal(1)
_EXACT_NUMBER_TYPES = (Decimal, int, type(None))  # a fast first check before isinstance


# Not frozen, like the engine's other per-activity records (Unplaceable, trips.RoundTrip, OpenLot): a frozen
# dataclass sets each field through object.__setattr__, which made creating one 4× slower (1.6 vs 0.4 µs), and a
# rebuild creates one per activity. Nothing changes them after they are made.
@dataclass(slots=True, kw_only=True)
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


@dataclass(slots=True, kw_only=True)
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


def parse_instant(text: Any) -> datetime | None:
    """The UTC instant of a stored trade_timestamp, or None when it holds no time of day (or no sense)."""
    if isinstance(text, datetime):
        value = text
    elif isinstance(text, str) and len(text := text.strip()) > 10:  # longer than YYYY-MM-DD: a time is given
        try:
            value = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            return None
    else:
        return None
    if value.tzinfo is UTC:  # as brokers mostly write it (Z or +00:00): nothing to convert
        return value
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


def is_option_row(row: Any) -> bool:
    return getattr(row, "security_type", None) == "option" or getattr(row, "option_ticker", None) is not None


def row_instrument(row: Any) -> str | None:
    """The instrument a stored row belongs to: its option ticker for an option row, else its symbol.

    Migration 0006's triggers spell this rule in SQL to mark the (account, instrument) pairs a write
    changes; tests/core/journal/test_upkeep.py holds the two equal."""
    return getattr(row, "option_ticker", None) if is_option_row(row) else getattr(row, "symbol", None)


def fill_from_row(
    row: Any, *, account: str | None = None, multiplier: Decimal | None = None
) -> Fill | Unplaceable | None:
    """A Fill from a stored BrokerageTransaction-like object (any object with its attributes).

    None when the activity does not affect positions (DIVIDEND, FEE, …); an Unplaceable with the reason when
    it does but cannot be placed. `account` is the SnapTrade account id (default: str(row.account_id));
    `multiplier` overrides the one read from `row.raw` for options.
    """
    kind = getattr(row, "transaction_type", None)
    if kind == "OTHER" and str(getattr(row, "raw_type", None) or "").strip().upper() in RAW_PLACED_TYPES:
        kind = str(row.raw_type).strip().upper()
    elif kind not in POSITION_TYPES and kind not in UNMODELLED_TYPES:
        return None
    is_option = is_option_row(row)
    instrument = row_instrument(row)
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
    if fill.type not in POSITION_TYPES and fill.type not in RAW_PLACED_TYPES:
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
    return item if problem is None else unplaceable_of(item, problem)


def unplaceable_of(fill: Fill, reason: str) -> Unplaceable:
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


def is_buy_side(item: Fill | Unplaceable) -> bool | None:
    """True for buy side, False for sell side, None for splits and option events (no side of their own)."""
    if item.type in ("BUY", "SELL") and item.option_action:
        return item.option_action.startswith("BUY")  # only option rows carry an option action
    if item.type in BUY_SIDE_TYPES:
        return True
    if item.type in SELL_SIDE_TYPES:
        return False
    return None


def fills_from_rows(rows: list[Any], account: str) -> list[Fill | Unplaceable]:
    """fill_from_row over stored rows of the journal's reading (core.journal.rows.Row: every attribute
    present), skipping those that give nothing: the same records, without its per-row getattr and keyword
    building, which were a fifth of a full rebuild."""
    out: list[Fill | Unplaceable] = []
    append = out.append
    for row in rows:
        kind = row.transaction_type
        if kind == "BUY" or kind == "SELL":  # most rows: the general path below, spelled out
            is_option = row.security_type == "option" or row.option_ticker is not None
            instrument = row.option_ticker if is_option else row.symbol
            units = row.quantity
            multiplier = option_multiplier(row.raw) if is_option else _ONE
            if not instrument or multiplier is None or type(units) is not Decimal or not units:
                append(fill_from_row(row, account=account))
                continue
            price, fee = row.price, row.fee
            if price is not None and (type(price) is not Decimal or price < 0) or type(fee) not in _EXACT_NUMBER_TYPES:
                append(fill_from_row(row, account=account))
                continue
            append(Fill(activity_id=str(row.snaptrade_activity_id), account=account, currency=row.currency, type=kind,
                        trade_date=row.trade_date, option_action=row.option_action,
                        instant=parse_instant(row.trade_timestamp), fee=fee, instrument=instrument, units=units,
                        price=price, multiplier=multiplier, is_option=is_option,
                        is_crypto=str(row.security_type or "").lower() == "crypto"))  # fmt: skip
        elif (item := fill_from_row(row, account=account)) is not None:
            append(item)
    return out
