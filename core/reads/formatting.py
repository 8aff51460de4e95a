"""How every page, the CSV and the CLI write money, quantities, option contracts, times and durations.

One function per fact: two spellings of the same number or run drift apart on screen.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timezone
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from core.snaptrade.values import parse_occ
from core.storage import jsonexact

_EXACT_CONTEXT = Context(prec=100)

__all__ = [
    "clause",
    "currency_decimals",
    "format_average",
    "format_date",
    "format_duration",
    "format_money",
    "format_number",
    "format_option",
    "format_quantity",
    "format_relative",
    "format_timestamp",
    "format_when",
    "zone",
]


# ISO 4217 minor units that are not 2 (every other currency, and an unknown code, gets 2).
_MINOR_UNITS = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),  # fmt: skip
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def clause(message: str) -> str:
    """A stored message (a short sentence) inside a longer one: without its full stop, which the sentence adds."""
    return message.rstrip().rstrip(".")


def currency_decimals(currency: str | None) -> int:
    """The decimals a currency is usually written with: 2 for USD, 0 for JPY, 3 for KWD."""
    return _MINOR_UNITS.get((currency or "").strip().upper(), 2)


def format_number(value: Decimal | None, min_decimals: int = 0, *, grouping: bool = True) -> str:
    """Decimal text that never loses digits: 1234.5 → '1,234.50' with min_decimals=2 ('1234.50' without
    grouping, as the CSV writes it)."""
    if value is None:
        return ""
    value = Decimal(value).normalize(_EXACT_CONTEXT)  # the default 28-digit context would round
    if value == 0:
        value = Decimal(0)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < min_decimals:
        value = value.quantize(Decimal(1).scaleb(-min_decimals), context=_EXACT_CONTEXT)  # past 28 digits too
    return f"{value:,f}" if grouping else f"{value:f}"


def format_money(value: Decimal | None, currency: str | None = None, *, code: bool = True,
                 grouping: bool = True) -> str:  # fmt: skip
    """'1,234.50 USD': at least the currency's usual decimals, more only when the value carries them
    (crypto); `code=False` leaves the currency code off (a table with its own currency column)."""
    if value is None:
        return ""
    text = format_number(value, min_decimals=currency_decimals(currency), grouping=grouping)
    return f"{text} {currency}" if currency and code else text


def format_average(value: Decimal | None, currency: str | None = None) -> str:
    """An average of amounts (expectancy, average win or loss), rounded half up to the currency's decimals:
    '49.33 USD', not '49.3333333333 USD'. A quotient's digits run on; sums and amounts keep theirs
    (format_money), and the CLI's JSON keeps the average's ten decimals."""
    if value is None:
        return ""
    places = Decimal(1).scaleb(-currency_decimals(currency))
    return format_money(Decimal(value).quantize(places, rounding=ROUND_HALF_UP, context=_EXACT_CONTEXT), currency)


def format_quantity(value: Decimal | None) -> str:
    """Units as stored: '10', '0.00012345', '1,000'."""
    return format_number(value, min_decimals=0)


def format_option(ticker: str | None) -> str:
    """OCC 'AAPL  261218C00240000' → 'AAPL 2026-12-18 240 C'; anything else comes back unchanged."""
    if not ticker:
        return ""
    contract = parse_occ(ticker)
    if contract is None:
        return ticker
    return f"{contract.underlying} {contract.expiration:%Y-%m-%d} {format_number(contract.strike)} {contract.right[0]}"


def zone(tz_name: str | None) -> ZoneInfo | timezone:
    """The named IANA zone, or UTC for none or an unknown name."""
    try:
        return ZoneInfo(tz_name) if tz_name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _aware(value: datetime) -> datetime:
    # SQLite rows read outside the ORM come back naive, but are UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_timestamp(value: datetime | None, tz_name: str | None = None, *, seconds: bool = False) -> str:
    """A stored UTC time shown in the user's zone: '2026-03-01 09:30 CET'."""
    if value is None or pd.isna(value):
        return ""
    local = _aware(value).astimezone(zone(tz_name))
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def format_date(value: datetime | None, tz_name: str | None = None) -> str:
    """The calendar day of a stored UTC time in the user's zone."""
    if value is None or pd.isna(value):
        return ""
    return _aware(value).astimezone(zone(tz_name)).strftime("%Y-%m-%d")


def format_relative(value: datetime | None, now: datetime | None = None) -> str:
    """'3 h ago', 'in 5 min', 'just now', or 'never'."""
    if value is None:
        return "never"
    delta = (_aware(value) - (now or datetime.now(UTC))).total_seconds()
    future, s = delta > 0, abs(delta)
    if s < 45:
        return "in a moment" if future else "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            n = round(s / size)
            text = f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def format_when(value: datetime | None, tz_name: str | None = None) -> str:
    """'2024-05-03 14:05 CEST (3 h ago)', or 'never'."""
    if value is None:
        return "never"
    return f"{format_timestamp(value, tz_name)} ({format_relative(value)})"


def format_duration(seconds: float | None) -> str:
    """'3 h 12 min' for a duration; under a minute it keeps a decimal ('0.2 s', '12.5 s') so that
    sub-second sync runs do not all read '0 s'."""
    if seconds is None or pd.isna(seconds):
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 59.95:
        text = f"{seconds:.1f}"
        return f"{text.removesuffix('.0') if seconds >= 10 else text} s"
    whole = int(round(seconds))
    minutes, sec = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {sec:02d} s"


# --------------------------------------------------------------------------- accounts and payloads

MASK = "••••"


def mask_account_number(number: str | None) -> str:
    """'••••1234': only the last four characters are ever shown, even if a raw number slipped into
    storage (SnapTrade sends '****1234'; every page masks the same way through this function)."""
    if not number:
        return "—"
    tail = re.sub(r"[\s*•·.-]", "", number)[-4:]
    return f"{MASK}{tail}" if tail else "—"


def account_short_name(account: Any) -> str:
    """The account's own name without a repeated brokerage prefix: SnapTrade often names accounts
    'Questrade TFSA' inside the Questrade connection, which says 'Questrade' twice."""
    name = (account.account_name or "").strip()
    institution = (getattr(account, "institution_name", None) or "").strip()
    rest = name[len(institution) :]
    if institution and name.lower().startswith(institution.lower()) and not rest[:1].isalnum():
        name = rest.lstrip(" -·:|")
    return name or (getattr(account, "account_type", None) or "").strip() or institution or f"Account {account.id}"


def _masked_or_none(number: str | None) -> str | None:
    masked = mask_account_number(number)
    return None if masked == "—" else masked


def account_short_label(account: Any) -> str:
    """'TFSA ••••1234': what a table row needs to tell a user's accounts apart."""
    return " ".join(p for p in (account_short_name(account), _masked_or_none(account.account_number)) if p)


def account_label(account: Any) -> str:
    """'Questrade · TFSA · ••••1234', the full label (filters, detail view, CSV)."""
    parts = [account.institution_name, account_short_name(account), _masked_or_none(account.account_number)]
    label = " · ".join(dict.fromkeys(p for p in parts if p))  # dict: drop a name equal to the institution
    return label or f"Account {account.id}"


def payload_json(payload: Any) -> str:
    """A stored JSON payload as text with its decimals exact, for st.json."""
    return jsonexact.dumps(payload)
