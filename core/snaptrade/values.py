"""SnapTrade's values as exact Python: numbers, calendar dates, timestamps and OCC option tickers.

One parser per kind, used by the normalizer, the connection reconciler and the display of option contracts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "NormalizationError",
    "OccContract",
    "OPTION_RIGHTS",
    "canonical_occ",
    "occ_from_fields",
    "short_repr",
    "date_or_none",
    "datetime_or_none",
    "decimal_or_none",
    "parse_decimal",
    "parse_occ",
    "parse_snaptrade_date",
]


class NormalizationError(ValueError):
    """An activity that cannot be stored; `str(e)` is the human-readable reason."""


# NUMERIC(38, 18) on PostgreSQL holds at most 20 integer digits; PostgreSQL also refuses huge exponents.
_MAX_ADJUSTED = 20
_MIN_ADJUSTED = -100
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
OPTION_RIGHTS = {"CALL": "CALL", "PUT": "PUT", "C": "CALL", "P": "PUT"}


@dataclass(frozen=True, slots=True)
class OccContract:
    underlying: str  # the OCC root, e.g. "AAPL"
    expiration: date
    right: str  # "CALL" | "PUT"
    strike: Decimal
    canonical: str  # 21 chars, root space-padded to 6: "AAPL  261218C00240000"


def short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr
        return f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


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
        raise NormalizationError(f"{field} {short_repr(value)} is not a number")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise NormalizationError(f"{field} {short_repr(value)} is not a number")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if len(text) > 200 or not _NUMBER_RE.fullmatch(text):
            raise NormalizationError(f"{field} {short_repr(value)} is not a number")
        result = Decimal(text)
    else:
        raise NormalizationError(f"{field} {short_repr(value)} is not a number")
    if not result.is_finite():
        raise NormalizationError(f"{field} {short_repr(value)} is not a number")
    if not _MIN_ADJUSTED <= result.adjusted() < _MAX_ADJUSTED:
        raise NormalizationError(f"{field} {short_repr(value)} is out of range")
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
        raise NormalizationError(f"{field} {short_repr(value)} is not a date")
    text = value.strip()
    if not text:
        return None, None
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise NormalizationError(f"{field} {short_repr(value)} is not a date")
    try:
        # fromisoformat reads the matched YYYY-MM-DD in C, in a third of the time; the regex's \d also matches
        # other scripts' digits, which int() reads and fromisoformat refuses
        day = date.fromisoformat(text[:10]) if text.isascii() else date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise NormalizationError(f"{field} {short_repr(value)} is not a valid date") from None
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


def occ_from_fields(root: str | None, expiration: date | None, right: str | None, strike: Decimal | None):
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
