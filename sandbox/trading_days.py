"""Exchange calendars: the days the NYSE and the TSX are open, and settlement dates counted in those days.

Full-day closures only (weekends and each exchange's regular holidays); early closes and one-off closures such as
national days of mourning are not modelled. Days are `date.toordinal()` integers, like everywhere in the sandbox.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date, timedelta
from functools import cache

FIRST_YEAR, LAST_YEAR = 1990, 2100
US, CA = "US", "CA"


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's name
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th `weekday` (0 = Monday) of a month; n = -1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _nearest_weekday(d: date) -> date:
    """NYSE rule: a holiday on Saturday is observed on Friday, on Sunday on Monday."""
    return d - timedelta(days=1) if d.weekday() == 5 else d + timedelta(days=1) if d.weekday() == 6 else d


def _us_holidays(year: int) -> set[date]:
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _nearest_weekday(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _nearest_weekday(date(year, 12, 25)),
    }
    if date(year, 1, 1).weekday() != 5:  # a Saturday New Year is not observed on the Friday before
        days.add(_nearest_weekday(date(year, 1, 1)))
    if year >= 2022:
        days.add(_nearest_weekday(date(year, 6, 19)))  # Juneteenth
    return days


def _ca_holidays(year: int) -> set[date]:
    may24 = date(year, 5, 24)
    days = {
        _nth_weekday(year, 2, 0, 3),  # Family Day
        _easter(year) - timedelta(days=2),  # Good Friday
        may24 - timedelta(days=may24.weekday()),  # Victoria Day: the Monday on or before May 24
        _nth_weekday(year, 8, 0, 1),  # Civic Holiday
        _nth_weekday(year, 9, 0, 1),  # Labour Day
        _nth_weekday(year, 10, 0, 2),  # Thanksgiving
    }
    # New Year, Canada Day, Christmas and Boxing Day move forward past weekends and each other
    for d in (date(year, 1, 1), date(year, 7, 1), date(year, 12, 25), date(year, 12, 26)):
        while d.weekday() >= 5 or d in days:
            d += timedelta(days=1)
        days.add(d)
    return days


@cache
def open_days(market: str) -> tuple[int, ...]:
    """Every day the market is open, FIRST_YEAR to LAST_YEAR, ascending."""
    holidays_of = _us_holidays if market == US else _ca_holidays
    closed = {d.toordinal() for y in range(FIRST_YEAR, LAST_YEAR + 1) for d in holidays_of(y)}
    first, last = date(FIRST_YEAR, 1, 1).toordinal(), date(LAST_YEAR, 12, 31).toordinal()
    # date(1, 1, 1) is a Monday, so (ordinal - 1) % 7 is the weekday
    return tuple(d for d in range(first, last + 1) if (d - 1) % 7 < 5 and d not in closed)


def is_open(market: str, day: int) -> bool:
    days = open_days(market)
    i = bisect_left(days, day)
    return i < len(days) and days[i] == day


def count_before(market: str, day: int) -> int:
    """How many open days come before `day`: the position `day` has (or would have) in `open_days`."""
    return bisect_left(open_days(market), day)


def last_open_on_or_before(market: str, day: int) -> int:
    days = open_days(market)
    return days[max(0, bisect_right(days, day) - 1)]


def settlement_day(market: str, day: int, business_days: int) -> int:
    """The open day `business_days` after `day` (T+1, T+2): a trade settles on the exchange's calendar."""
    days = open_days(market)
    return days[min(len(days) - 1, bisect_right(days, day) + business_days - 1)]
