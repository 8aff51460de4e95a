"""core/reads/periods.py: the Transactions page's date presets and the trade-date bounds they stand for."""

from __future__ import annotations

from datetime import date

import pytest

from core.reads import periods


def test_choices_list_relative_periods_then_each_year_of_the_data_newest_first():
    got = periods.choices(date(2023, 5, 1), date(2026, 2, 3))

    assert list(got) == ["all", "30d", "90d", "ytd", "12m", "y2026", "y2025", "y2024", "y2023", "custom"]
    assert got["all"] == "All time" and got["y2024"] == "2024" and got["custom"] == "Custom range…"


def test_without_data_there_are_no_years():
    assert "y2026" not in periods.choices(None, None)
    assert list(periods.choices(None, None))[-1] == periods.CUSTOM


@pytest.mark.parametrize(
    ("key", "today", "expected"),
    [
        ("all", date(2026, 12, 2), (None, None)),
        ("30d", date(2026, 12, 2), (date(2026, 11, 3), date(2026, 12, 2))),  # 30 days, both ends included
        ("90d", date(2026, 3, 1), (date(2025, 12, 2), date(2026, 3, 1))),
        ("ytd", date(2026, 12, 2), (date(2026, 1, 1), date(2026, 12, 2))),
        ("ytd", date(2026, 1, 1), (date(2026, 1, 1), date(2026, 1, 1))),
        ("12m", date(2026, 12, 2), (date(2025, 12, 3), date(2026, 12, 2))),
        ("12m", date(2028, 2, 29), (date(2027, 3, 1), date(2028, 2, 29))),  # leap day: no 2027-02-29
        ("y2024", date(2026, 12, 2), (date(2024, 1, 1), date(2024, 12, 31))),
    ],
)
def test_bounds(key, today, expected):
    assert periods.bounds(key, today) == expected


@pytest.mark.parametrize("key", [periods.CUSTOM, "", "yesterday", "y20x4"])
def test_custom_and_unknown_keys_have_no_preset_bounds(key):
    with pytest.raises(ValueError):
        periods.bounds(key, date(2026, 12, 2))
