"""core.reads.formatting: money, quantities, options, durations, times and account labels, one spelling each."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from core.reads import formatting as fmt


@pytest.mark.parametrize(
    ("ticker", "shown"),
    [
        ("AAPL  261218C00240000", "AAPL 2026-12-18 240 C"),
        ("SPY   250117P00412500", "SPY 2025-01-17 412.5 P"),
        ("BRK.B 270115C00005000", "BRK.B 2027-01-15 5 C"),
        ("GE270115C00340000", "GE 2027-01-15 340 C"),
        ("not an option", "not an option"),
        (None, ""),
    ],
)
def test_format_option(ticker, shown):
    assert fmt.format_option(ticker) == shown


def test_averages_are_rounded_half_up_to_the_currencys_decimals():
    assert fmt.format_average(Decimal("49.3333333333"), "USD") == "49.33 USD"
    assert fmt.format_average(Decimal("-5.075033557"), "USD") == "-5.08 USD"  # half up, away from zero
    assert fmt.format_average(Decimal("-294.585"), "USD") == "-294.59 USD"
    assert fmt.format_average(Decimal("1234.5"), "JPY") == "1,235 JPY"
    assert fmt.format_average(Decimal("99"), "USD") == "99.00 USD"
    # past the default 28 digits: quantize must not raise or round the integer part
    big = Decimal("12345678901234567890123456789.999")
    assert fmt.format_average(big, "USD") == "12,345,678,901,234,567,890,123,456,790.00 USD"
    assert fmt.format_average(None, "USD") == ""


def test_money_and_quantity_formatting():
    assert fmt.format_money(Decimal("1234.5"), "USD") == "1,234.50 USD"
    assert fmt.format_money(Decimal("-0.000123450"), "BTC") == "-0.00012345 BTC"
    assert fmt.format_money(Decimal("0E-18"), "USD") == "0.00 USD"
    assert fmt.format_money(None, "USD") == ""
    assert fmt.format_quantity(Decimal("1000.000000000000000000")) == "1,000"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "—"),
        (0.2, "0.2 s"),
        (2.0, "2.0 s"),
        (9.94, "9.9 s"),
        (12.7, "12.7 s"),
        (59.9, "59.9 s"),
        (59.96, "1 min 00 s"),
        (192, "3 min 12 s"),
        (3 * 3600 + 12 * 60, "3 h 12 min"),
        (26 * 3600, "1 d 2 h"),
        (-1, "0.0 s"),
    ],
)
def test_format_duration_keeps_a_decimal_below_a_minute(seconds, shown):
    assert fmt.format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("****1008", "••••1008"),
        ("12345678", "••••5678"),
        ("•••• 5148", "••••5148"),
        ("", "—"),
        (None, "—"),
        ("****", "—"),
    ],
)
def test_account_numbers_are_masked_one_way(number, shown):
    assert fmt.mask_account_number(number) == shown


def test_account_labels_drop_a_repeated_brokerage_name():
    def account(name, institution="Sandbox US Brokerage", number="****1008", account_type=None):
        return SimpleNamespace(
            id=7, account_name=name, institution_name=institution, account_number=number, account_type=account_type
        )

    roth = account("Sandbox US Brokerage Roth IRA")
    assert fmt.account_short_label(roth) == "Roth IRA ••••1008"
    assert fmt.account_label(roth) == "Sandbox US Brokerage · Roth IRA · ••••1008"
    assert fmt.account_short_label(account("Questrade - TFSA", "Questrade")) == "TFSA ••••1008"
    # Only a whole-word prefix is dropped, and a name that is just the brokerage falls back to the type.
    assert fmt.account_short_label(account("Allyson IRA", "Ally")) == "Allyson IRA ••••1008"
    assert fmt.account_short_label(account("Alpaca", "Alpaca", account_type="Margin")) == "Margin ••••1008"
    assert fmt.account_label(account("Alpaca", "Alpaca", number=None)) == "Alpaca"


def test_timestamps_are_shown_in_the_users_zone():
    stamp = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert fmt.format_timestamp(stamp, "America/New_York") == "2026-07-01 08:00 EDT"
    assert fmt.format_timestamp(stamp, None) == "2026-07-01 12:00 UTC"
    assert fmt.format_timestamp(stamp, "Not/AZone") == "2026-07-01 12:00 UTC"


def test_numbers_past_28_digits_are_shown_whole():
    wide = Decimal("12345678901234567890.123456789012345678")
    assert fmt.format_number(wide) == "12,345,678,901,234,567,890.123456789012345678"
    assert (
        fmt.format_money(Decimal("-12345678901234567890.123456789012345678"), "USD")
        == "-12,345,678,901,234,567,890.123456789012345678 USD"
    )
    # a whole amount past 28 digits gets its decimals without rounding (or raising)
    assert fmt.format_money(Decimal("12345678901234567890123456789"), "USD") == (
        "12,345,678,901,234,567,890,123,456,789.00 USD"
    )
