"""Date-range presets for the Transactions filter: the periods a trader reaches for (year to date, last 12
months, a tax year) as one choice, with "Custom range" for anything else.

A period is a key; `bounds()` turns it into inclusive (from, to) trade dates, None meaning open-ended.
Relative periods count back from `today` in the trader's own time zone, which the caller passes in.
"""

from __future__ import annotations

from datetime import date, timedelta

ALL = "all"
CUSTOM = "custom"
_RELATIVE = {"30d": "Last 30 days", "90d": "Last 90 days", "ytd": "Year to date", "12m": "Last 12 months"}


def choices(first: date | None, last: date | None) -> dict[str, str]:
    """{key: label} in display order: all time, the relative periods, each calendar year the data spans
    (newest first), then a custom range."""
    out = {ALL: "All time", **_RELATIVE}
    if first is not None and last is not None:
        out.update({f"y{year}": str(year) for year in range(last.year, first.year - 1, -1)})
    out[CUSTOM] = "Custom range…"
    return out


def bounds(key: str, today: date) -> tuple[date | None, date | None]:
    """Inclusive (from, to) for a preset key; (None, None) for all time. Raises ValueError for CUSTOM
    (the caller asks for the dates) and for an unknown key."""
    if key == ALL:
        return None, None
    if key == "30d":
        return today - timedelta(days=29), today
    if key == "90d":
        return today - timedelta(days=89), today
    if key == "ytd":
        return date(today.year, 1, 1), today
    if key == "12m":
        try:
            start = today.replace(year=today.year - 1)
        except ValueError:  # 29 February: a year back has no such day
            start = today.replace(year=today.year - 1, day=28)
        return start + timedelta(days=1), today
    if key.startswith("y") and key[1:].isdigit():
        year = int(key[1:])
        return date(year, 1, 1), date(year, 12, 31)
    raise ValueError(f"not a preset period: {key!r}")
