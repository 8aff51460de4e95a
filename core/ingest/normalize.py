"""Turn one SnapTrade activity (a dict as read from the API) into a `BrokerageTransaction` row dict.

Pure functions: no database, no SnapTrade client. Anything that cannot be stored raises `NormalizationError`.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from core.ingest.activity_types import OPTION_ACTIONS, normalize_type

__all__ = [
    "NormalizationError",
    "OccContract",
    "canonical_occ",
    "content_fingerprint",
    "date_or_none",
    "datetime_or_none",
    "decimal_or_none",
    "normalize_activity",
    "option_ticker_of",
    "parse_decimal",
    "parse_occ",
    "parse_snaptrade_date",
]


class NormalizationError(ValueError):
    """An activity that cannot be stored; `str(e)` is the human-readable reason."""


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

# NUMERIC(38, 18) on PostgreSQL holds at most 20 integer digits; PostgreSQL also refuses huge exponents.
_MAX_ADJUSTED = 20
_MIN_ADJUSTED = -100
# Exact arithmetic for normalize(): the default context (28 digits) would round long values.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,6})?")

# The calendar date is read from the text as written; the rest is only validated, never converted.
_DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::(?:[0-5]\d|60)(?:\.\d{1,9})?)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?)?"
)

# OCC: root (1-6 chars, space-padded to 6 in the standard form) + YYMMDD + C/P + strike x 1000 as 8 digits.
_OCC_TAIL_RE = re.compile(r"(\d{2})(\d{2})(\d{2})([CP])(\d{8})")
_OCC_ROOT_RE = re.compile(r"[A-Z0-9][A-Z0-9.]{0,5}")
_RIGHTS = {"CALL": "CALL", "PUT": "PUT", "C": "CALL", "P": "PUT"}
_OPTION_ACTIONS = frozenset(OPTION_ACTIONS)


@dataclass(frozen=True, slots=True)
class OccContract:
    underlying: str  # the OCC root, e.g. "AAPL"
    expiration: date
    right: str  # "CALL" | "PUT"
    strike: Decimal
    canonical: str  # 21 chars, root space-padded to 6: "AAPL  261218C00240000"


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr
        return f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


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


def parse_decimal(value: Any, field: str) -> Decimal | None:
    """An exact Decimal from a JSON number; None for null or an empty string.

    Decimal stays as is, str and int are parsed exactly, a float goes through its shortest repr
    (0.07 -> Decimal("0.07")). bool, NaN, infinity, text that is not a number and values too large
    for NUMERIC(38, 18) raise NormalizationError naming the field.
    """
    if value is None:
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise NormalizationError(f"{field} {_short(value)} is not a number")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise NormalizationError(f"{field} {_short(value)} is not a number")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if len(text) > 200 or not _NUMBER_RE.fullmatch(text):
            raise NormalizationError(f"{field} {_short(value)} is not a number")
        result = Decimal(text)
    else:
        raise NormalizationError(f"{field} {_short(value)} is not a number")
    if not result.is_finite():
        raise NormalizationError(f"{field} {_short(value)} is not a number")
    if not _MIN_ADJUSTED <= result.adjusted() < _MAX_ADJUSTED:
        raise NormalizationError(f"{field} {_short(value)} is out of range")
    return result


def parse_snaptrade_date(value: Any, field: str = "date") -> tuple[date | None, str | None]:
    """(calendar date as written, original text); (None, None) for null or an empty string.

    No timezone conversion: "2024-03-22T23:30:00-05:00" is 2024-03-22. Text that is not an ISO date or
    timestamp raises NormalizationError naming the field. date/datetime objects are accepted too.
    """
    if value is None:
        return None, None
    if isinstance(value, datetime):
        return value.date(), value.isoformat()
    if isinstance(value, date):
        return value, value.isoformat()
    if not isinstance(value, str):
        raise NormalizationError(f"{field} {_short(value)} is not a date")
    text = value.strip()
    if not text:
        return None, None
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise NormalizationError(f"{field} {_short(value)} is not a date")
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise NormalizationError(f"{field} {_short(value)} is not a valid date") from None
    return day, value


def decimal_or_none(value: Any) -> Decimal | None:
    """parse_decimal for fields that are only informative (balances): a bad value reads as unknown."""
    try:
        return parse_decimal(value, "value")
    except NormalizationError:
        return None


def date_or_none(value: Any) -> date | None:
    """parse_snaptrade_date for informative fields: the calendar date as written, or None."""
    try:
        return parse_snaptrade_date(value)[0]
    except NormalizationError:
        return None


def datetime_or_none(value: Any) -> datetime | None:
    """An ISO timestamp as an aware datetime (UTC when SnapTrade wrote no offset), or None."""
    if not isinstance(value, str) or _DATE_RE.fullmatch(value.strip()) is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_occ(ticker: Any) -> OccContract | None:
    """Parse an OCC option ticker, padded ("AAPL  261218C00240000") or not ("AAPL261218C00240000")."""
    if not isinstance(ticker, str):
        return None
    text = ticker.strip().upper()
    if len(text) < 16 or len(text) > 40:
        return None
    tail = _OCC_TAIL_RE.fullmatch(text, len(text) - 15)
    root = text[:-15].rstrip(" ")
    if tail is None or not _OCC_ROOT_RE.fullmatch(root):
        return None
    yy, mm, dd, right, strike = tail.groups()
    try:
        expiration = date(2000 + int(yy), int(mm), int(dd))
    except ValueError:
        return None
    return OccContract(
        underlying=root,
        expiration=expiration,
        right="CALL" if right == "C" else "PUT",
        strike=Decimal(int(strike)) / 1000,
        canonical=f"{root:<6}{yy}{mm}{dd}{right}{strike}",
    )


def canonical_occ(ticker: Any) -> str | None:
    """The one canonical spelling (21 chars, root space-padded to 6) of an OCC ticker, or None."""
    contract = parse_occ(ticker)
    return contract.canonical if contract else None


def _occ_from_fields(root: str | None, expiration: date | None, right: str | None, strike: Decimal | None):
    """Build the canonical OCC ticker from SnapTrade's structured option fields, when they fit the format."""
    if root is None or expiration is None or right is None or strike is None:
        return None
    root = root.strip().upper()
    if not _OCC_ROOT_RE.fullmatch(root) or "." in root or not 2000 <= expiration.year <= 2099:
        return None
    thousandths = strike * 1000
    if strike < 0 or thousandths >= 10**8 or thousandths != thousandths.to_integral_value():
        return None
    return f"{root:<6}{expiration:%y%m%d}{right[0]}{int(thousandths):08d}"


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
        right = _RIGHTS.get(raw_right.strip().upper()) if isinstance(raw_right, str) else None
        try:
            strike = parse_decimal(option_symbol.get("strike_price"), "strike_price")
        except NormalizationError:
            strike = None
        try:
            expiration = parse_snaptrade_date(option_symbol.get("expiration_date"), "expiration_date")[0]
        except NormalizationError:
            expiration = None
        canonical = _occ_from_fields(underlying, expiration, right, strike)
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
    return hashlib.sha256(_COMPACT.encode(content).encode()).hexdigest()


def _activity_id(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        if len(value) > _ID_MAX:
            # Cutting an id could merge two activities: refuse instead.
            raise NormalizationError(f"activity id is longer than {_ID_MAX} characters")
        return _clean(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise NormalizationError("activity has no id")


def _normalize(raw: dict) -> dict:
    activity_id = _activity_id(raw.get("id"))

    raw_type_value = raw.get("type")
    raw_type = _text(raw_type_value, _LIMITS["raw_type"])
    transaction_type = normalize_type(raw_type_value)

    trade_date, trade_timestamp = parse_snaptrade_date(raw.get("trade_date"), "trade_date")
    settlement_date = parse_snaptrade_date(raw.get("settlement_date"), "settlement_date")[0]
    from_settlement = trade_date is None
    if from_settlement:
        if settlement_date is None:
            raise NormalizationError("no usable trade_date or settlement_date")
        trade_date = settlement_date

    quantity = parse_decimal(raw.get("units"), "units")
    price = parse_decimal(raw.get("price"), "price")
    amount = parse_decimal(raw.get("amount"), "amount")
    fee = parse_decimal(raw.get("fee"), "fee")
    fx_rate = parse_decimal(raw.get("fx_rate"), "fx_rate")

    currency = raw.get("currency")
    currency_code = _text(currency.get("code") if isinstance(currency, dict) else currency, _LIMITS["currency"])

    symbol = raw.get("symbol")
    if isinstance(symbol, dict):
        symbol_ticker = _text(symbol.get("symbol"))
        symbol_id = _ident(symbol.get("id"), _LIMITS["symbol_id"])
        security_name = _text(symbol.get("description"))
        security_type = _text(_field(symbol.get("type"), "code"), _LIMITS["security_type"])
    else:
        symbol_ticker, symbol_id, security_name, security_type = _text(symbol), None, None, None

    # option_symbol first: some brokers put the underlying in `symbol` on option trades.
    option = _option_fields(raw.get("option_symbol"))
    if option is not None:
        symbol_ticker = option["underlying_ticker"] or option["option_underlying"] or symbol_ticker
        symbol_id = option["underlying_id"] or symbol_id
        security_name = option["underlying_name"] or security_name
        security_type = "option"

    action = raw.get("option_type")
    option_action = action.strip().upper() if isinstance(action, str) else None
    if option_action not in _OPTION_ACTIONS:
        option_action = None

    row = {
        "snaptrade_activity_id": activity_id,
        "transaction_type": transaction_type,
        "raw_type": raw_type,
        "symbol": _clean(symbol_ticker)[: _LIMITS["symbol"]] if symbol_ticker else None,
        "symbol_id": symbol_id,
        "security_name": security_name,
        "security_type": security_type,
        "option_ticker": option["option_ticker"] if option else None,
        "option_underlying": option["option_underlying"] if option else None,
        "option_right": option["option_right"] if option else None,
        "option_strike": option["option_strike"] if option else None,
        "option_expiration": option["option_expiration"] if option else None,
        "option_action": option_action,
        "quantity": quantity,
        "price": price,
        "amount": amount,
        "fee": fee,
        "currency": currency_code,
        "fx_rate": fx_rate,
        "trade_date": trade_date,
        "trade_timestamp": trade_timestamp[: _LIMITS["trade_timestamp"]] if trade_timestamp else None,
        "trade_date_from_settlement": from_settlement,
        "settlement_date": settlement_date,
        "description": _text(raw.get("description"), _LIMITS["description"]),
        "institution": _text(raw.get("institution"), _LIMITS["institution"]),
        "external_reference_id": _ident(raw.get("external_reference_id"), _LIMITS["external_reference_id"]),
        "fingerprint": "",
        "raw": None,
    }
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
