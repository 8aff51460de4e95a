"""Turn one SnapTrade activity (a dict as read from the API) into a `BrokerageTransaction` row dict.

Pure functions: no database, no SnapTrade client. Anything that cannot be stored raises `NormalizationError`.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import math
from datetime import date
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

from core.snaptrade.activity_types import OPTION_ACTIONS, normalize_type
from core.snaptrade.values import (
    OPTION_RIGHTS,
    NormalizationError,
    occ_from_fields,
    parse_decimal,
    parse_occ,
    parse_snaptrade_date,
)

__all__ = [
    "DESCRIPTION_LIMIT",
    "content_fingerprint",
    "json_safe",
    "normalize_activity",
    "option_mini",
    "option_ticker_of",
]


# Exact arithmetic for normalize(): the default context (28 digits) would round long values.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)

# The stored description's length limit (the whole text stays in `raw`; exports read it from there).
DESCRIPTION_LIMIT = 500
# Column limits from core.storage.models.BrokerageTransaction (max_length); longer text is cut, `raw` keeps it whole.
_ID_MAX = 128
_LIMITS = {
    "raw_type": 128,
    "symbol": 64,
    "symbol_id": 64,
    "security_type": 32,
    "option_ticker": 32,
    "option_underlying": 16,
    "currency": 8,
    "trade_timestamp": 64,
    "institution": 255,
    "external_reference_id": 128,
    # Shown and searched; the whole text stays in `raw`. Bounded so the covering index entry that holds
    # it stays under PostgreSQL's B-tree limit (~2,700 bytes) whatever the broker writes.
    "description": DESCRIPTION_LIMIT,
}

_OPTION_ACTIONS = frozenset(OPTION_ACTIONS)


def _clean(text: str) -> str:
    """Replace NUL and lone surrogates, which PostgreSQL text and JSONB cannot hold."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _text(value: Any, limit: int | None = None) -> str | None:
    """A string field kept as given (cleaned, cut to the column limit); anything else is None."""
    if not isinstance(value, str):
        return None
    value = _clean(value)
    return value[:limit] if limit is not None else value


def _ident(value: Any, limit: int) -> str | None:
    """An identifier: a non-empty string, or an int rendered as a string."""
    if isinstance(value, str):
        return _clean(value)[:limit] if value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)[:limit]
    return None


def _field(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _option_fields(option_symbol: Any) -> dict | None:
    """Option columns from `option_symbol`: the ticker first, its structured fields as fallback.

    Nothing here fails: an unusable option_symbol gives None (not an option row).
    """
    if not isinstance(option_symbol, dict) or not option_symbol:
        return None
    ticker = option_symbol.get("ticker")
    underlying_symbol = option_symbol.get("underlying_symbol")
    underlying_ticker = _text(_field(underlying_symbol, "symbol"))
    contract = parse_occ(ticker)
    if contract is not None:
        underlying, right, strike, expiration = (
            contract.underlying, contract.right, contract.strike, contract.expiration
        )  # fmt: skip
        canonical = contract.canonical
    else:
        underlying = underlying_ticker
        raw_right = option_symbol.get("option_type")
        right = OPTION_RIGHTS.get(raw_right.strip().upper()) if isinstance(raw_right, str) else None
        try:
            strike = parse_decimal(option_symbol.get("strike_price"), "strike_price")
        except NormalizationError:
            strike = None
        try:
            expiration = parse_snaptrade_date(option_symbol.get("expiration_date"), "expiration_date")[0]
        except NormalizationError:
            expiration = None
        canonical = occ_from_fields(underlying, expiration, right, strike)
        if canonical is None and isinstance(ticker, str) and ticker.strip():
            # Not OCC and not buildable: keep the broker's ticker (whitespace collapsed) so contracts stay apart.
            canonical = _clean(" ".join(ticker.split()))
    if canonical is None and underlying is None and right is None and strike is None and expiration is None:
        return None
    return {
        "option_ticker": canonical[: _LIMITS["option_ticker"]] if canonical else None,
        "option_underlying": underlying[: _LIMITS["option_underlying"]] if underlying else None,
        "option_right": right,
        "option_strike": strike,
        "option_expiration": expiration,
        "underlying_ticker": underlying_ticker,
        "underlying_id": _ident(_field(underlying_symbol, "id"), _LIMITS["symbol_id"]),
        "underlying_name": _text(_field(underlying_symbol, "description")),
    }


def option_ticker_of(option_symbol: Any) -> str | None:
    """The option ticker an activity with this `option_symbol` is stored under (its OCC ticker in canonical
    spelling, else one built from the structured fields): also how a broker's option position is named."""
    fields = _option_fields(option_symbol)
    return fields["option_ticker"] if fields else None


def json_safe(value: Any) -> Any:
    """A copy PostgreSQL JSONB accepts via core.storage.jsonexact: finite Decimals stay Decimal (written as exact
    JSON numbers), text is cleaned of NULs and lone surrogates."""
    if isinstance(value, str):
        return _clean(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # json refuses ints over 4300 digits; Decimal renders any int exactly.
        return value if value.bit_length() < 10_000 else str(Decimal(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {
            (_clean(k) if isinstance(k, str) else _clean(str(k))): json_safe(v) for k, v in value.items()
        }  # fmt: skip
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Decimal):
        return value if value.is_finite() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return _clean(str(value))


def _canonical_number(value: Any) -> str | None:
    if not isinstance(value, Decimal):
        value = parse_decimal(value, "number")
        if value is None:
            return None
    return "0" if not value else str(value.normalize(_EXACT))


# One encoder for every fingerprint: json.dumps with options builds a new one per call (slow).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _compact_list(items: list) -> str:
    """`_COMPACT.encode(items)`, in half the time for a list of str and None (all a fingerprint holds)."""
    try:
        return "[" + ",".join([encode_basestring_ascii(x) if x is not None else "null" for x in items]) + "]"
    except TypeError:  # an item of another type
        return _COMPACT.encode(items)


def content_fingerprint(row: dict) -> str:
    """sha256 hex over the activity's content, never its id (decimals compared by value: 1.50 == 1.5).

    Identical content with different ids gives the same fingerprint; scoping it to an account is the caller's job.
    """
    trade_date = row.get("trade_date")
    settlement_date = row.get("settlement_date")
    content = [
        row.get("transaction_type"),
        row.get("raw_type"),
        trade_date.isoformat() if trade_date else None,
        settlement_date.isoformat() if settlement_date else None,
        row.get("symbol_id") or row.get("symbol"),
        row.get("option_ticker"),
        _canonical_number(row.get("quantity")),
        _canonical_number(row.get("price")),
        _canonical_number(row.get("amount")),
        _canonical_number(row.get("fee")),
        row.get("currency"),
        _canonical_number(row.get("fx_rate")),
        row.get("external_reference_id"),
        row.get("description"),
        row.get("option_action"),
    ]
    return hashlib.sha256(_compact_list(content).encode()).hexdigest()


def _activity_id(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        if len(value) > _ID_MAX:
            # Cutting an id could merge two activities: refuse instead.
            raise NormalizationError(f"activity id is longer than {_ID_MAX} characters")
        return _clean(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise NormalizationError("activity has no id")


def _dates(raw: dict) -> tuple[date, str | None, bool, date | None]:
    """(trade date, its text as written, whether it came from the settlement date, settlement date)."""
    trade_date, trade_timestamp = parse_snaptrade_date(raw.get("trade_date"), "trade_date")
    settlement_date = parse_snaptrade_date(raw.get("settlement_date"), "settlement_date")[0]
    if trade_date is not None:
        return trade_date, trade_timestamp, False, settlement_date
    if settlement_date is None:
        raise NormalizationError("no usable trade_date or settlement_date")
    return settlement_date, trade_timestamp, True, settlement_date


def _security(raw: dict, option: dict | None) -> tuple[str | None, str | None, str | None, str | None]:
    """(symbol, symbol id, name, type); an option's underlying wins, since some brokers put it in `symbol` on
    option trades."""
    symbol = raw.get("symbol")
    if isinstance(symbol, dict):
        ticker = _text(symbol.get("symbol"))
        symbol_id = _ident(symbol.get("id"), _LIMITS["symbol_id"])
        name = _text(symbol.get("description"))
        kind = _text(_field(symbol.get("type"), "code"), _LIMITS["security_type"])
    else:
        ticker, symbol_id, name, kind = _text(symbol), None, None, None
    if option is not None:
        ticker = option["underlying_ticker"] or option["option_underlying"] or ticker
        symbol_id = option["underlying_id"] or symbol_id
        name = option["underlying_name"] or name
        kind = "option"
    return ticker[: _LIMITS["symbol"]] if ticker else None, symbol_id, name, kind  # every ticker here is cleaned


def _option_action(action: Any) -> str | None:
    option_action = action.strip().upper() if isinstance(action, str) else None
    return option_action if option_action in _OPTION_ACTIONS else None


_MINI_FLAGS = {True: "true", False: "false", None: "null"}


def option_mini(raw: Any, security_type: str | None, option_ticker: str | None) -> str | None:
    """An option row's `option_symbol.is_mini_option` as stored for the journal's multiplier: "true",
    "false", "null", or "other" for any other value (the multiplier is then unknown); None when absent or
    when the row is not an option (core.journal.fills.is_option_row's rule)."""
    if security_type != "option" and option_ticker is None:
        return None
    option_symbol = raw.get("option_symbol") if isinstance(raw, dict) else None
    if not isinstance(option_symbol, dict) or "is_mini_option" not in option_symbol:
        return None
    value = option_symbol["is_mini_option"]
    return _MINI_FLAGS[value] if value is None or isinstance(value, bool) else "other"


def _normalize(raw: dict) -> dict:
    # One dict literal, no intermediate ones: this runs for every activity of every sync (docs/PERFORMANCE.md §1).
    trade_date, trade_timestamp, from_settlement, settlement_date = _dates(raw)
    get = raw.get
    currency = get("currency")
    option = _option_fields(get("option_symbol"))
    symbol, symbol_id, security_name, security_type = _security(raw, option)
    row = {
        "snaptrade_activity_id": _activity_id(get("id")),
        "transaction_type": normalize_type(get("type")),
        "raw_type": _text(get("type"), _LIMITS["raw_type"]),
        "symbol": symbol,
        "symbol_id": symbol_id,
        "security_name": security_name,
        "security_type": security_type,
        "option_ticker": option["option_ticker"] if option else None,
        "option_underlying": option["option_underlying"] if option else None,
        "option_right": option["option_right"] if option else None,
        "option_strike": option["option_strike"] if option else None,
        "option_expiration": option["option_expiration"] if option else None,
        "option_action": _option_action(get("option_type")),
        "option_mini": None,
        "quantity": parse_decimal(get("units"), "units"),
        "price": parse_decimal(get("price"), "price"),
        "amount": parse_decimal(get("amount"), "amount"),
        "fee": parse_decimal(get("fee"), "fee"),
        "currency": _text(currency.get("code") if isinstance(currency, dict) else currency, _LIMITS["currency"]),
        "fx_rate": parse_decimal(get("fx_rate"), "fx_rate"),
        "trade_date": trade_date,
        "trade_timestamp": trade_timestamp[: _LIMITS["trade_timestamp"]] if trade_timestamp else None,
        "trade_date_from_settlement": from_settlement,
        "settlement_date": settlement_date,
        "description": _text(get("description"), _LIMITS["description"]),
        "institution": _text(get("institution"), _LIMITS["institution"]),
        "external_reference_id": _ident(get("external_reference_id"), _LIMITS["external_reference_id"]),
        "fingerprint": "",
        "raw": None,
    }
    if security_type == "option":  # what an option_symbol makes, or the symbol type says
        row["option_mini"] = option_mini(raw, security_type, row["option_ticker"])
    row["fingerprint"] = content_fingerprint(row)
    return row


def normalize_activity(raw: dict, *, clean_raw: bool = True) -> dict:
    """One SnapTrade activity -> a BrokerageTransaction row dict (all columns but id/user_id/account_id/timestamps).

    Amounts, fees and signs are kept exactly as SnapTrade sent them; the raw type is kept in raw_type;
    `raw` is a JSON-safe copy of the input (exact Decimals kept; NUL and lone surrogates -> U+FFFD), or the
    input itself with clean_raw=False (the sync engine checks the serialized text instead: faster).
    Raises NormalizationError, and only that, for a record that cannot be stored.
    """
    if not isinstance(raw, dict):
        raise NormalizationError("activity is not an object")
    try:
        row = _normalize(raw)
        row["raw"] = json_safe(raw) if clean_raw else raw
        return row
    except NormalizationError:
        raise
    except RecursionError:
        raise NormalizationError("activity is nested too deeply") from None
    except Exception as exc:  # a record the rules above did not foresee must be quarantined, not crash a sync
        raise NormalizationError(f"unexpected activity shape ({type(exc).__name__}: {exc})") from exc
