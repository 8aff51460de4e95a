"""Exchange calendars: the NYSE's and the TSX's full-day closures, and settlement counted in open days."""

from __future__ import annotations

from datetime import date

from sandbox import trading_days
from sandbox.trading_days import CA, US


def _closed_weekdays(market: str, year: int) -> set[str]:
    days = trading_days.open_days(market)
    first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
    opened = {d for d in days if first <= d <= last}
    return {date.fromordinal(d).isoformat() for d in range(first, last + 1) if (d - 1) % 7 < 5 and d not in opened}


def test_nyse_closes_on_its_ten_holidays():
    assert _closed_weekdays(US, 2025) == {
        "2025-01-01", "2025-01-20", "2025-02-17", "2025-04-18", "2025-05-26", "2025-06-19", "2025-07-04",
        "2025-09-01", "2025-11-27", "2025-12-25",
    }  # fmt: skip
    # weekend holidays move to the nearest weekday, except a Saturday New Year's Day
    closed = _closed_weekdays(US, 2021) | _closed_weekdays(US, 2022) | _closed_weekdays(US, 2023)
    assert {"2021-07-05", "2021-12-24", "2022-06-20", "2023-01-02"} <= closed
    assert "2021-12-31" not in closed


def test_tsx_closes_on_canadian_holidays_and_moves_them_forward():
    assert _closed_weekdays(CA, 2025) == {
        "2025-01-01", "2025-02-17", "2025-04-18", "2025-05-19", "2025-07-01", "2025-08-04", "2025-09-01",
        "2025-10-13", "2025-12-25", "2025-12-26",
    }  # fmt: skip
    closed = _closed_weekdays(CA, 2021) | _closed_weekdays(CA, 2022) | _closed_weekdays(CA, 2023)
    assert {"2021-12-27", "2021-12-28", "2022-01-03", "2023-07-03"} <= closed


def test_settlement_counts_open_days():
    thursday = date(2025, 7, 3).toordinal()
    assert trading_days.settlement_day(US, thursday, 1) == date(2025, 7, 7).toordinal()  # Friday is July 4th
    assert trading_days.settlement_day(CA, thursday, 1) == date(2025, 7, 4).toordinal()
    saturday = date(2025, 7, 5).toordinal()
    assert trading_days.last_open_on_or_before(US, saturday) == thursday
    assert trading_days.settlement_day(US, saturday, 2) == date(2025, 7, 8).toordinal()
