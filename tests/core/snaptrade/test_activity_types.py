"""core/snaptrade/activity_types.py: the one list of SnapTrade activity types, their normalized form and categories."""

from __future__ import annotations

import pytest

from core.reads.analytics import CASH_FLOW_CATEGORIES
from core.snaptrade.activity_types import (
    CATEGORY_BY_TYPE,
    DOCUMENTED_TYPES,
    NORMALIZED_TYPES,
    OPTION_ACTIONS,
    normalize_type,
)


@pytest.mark.parametrize("activity_type", DOCUMENTED_TYPES)
def test_every_documented_type_maps_to_itself_whatever_its_case_and_spacing(activity_type):
    assert normalize_type(activity_type) == activity_type
    assert normalize_type(f"  {activity_type.lower()}\n") == activity_type


@pytest.mark.parametrize("raw", ["CRYPTO_STAKING", "", "   ", "BUY_SELL", "DIVIDENDS", "OTHER"])
def test_an_unknown_type_is_other(raw):
    assert normalize_type(raw) == "OTHER"


@pytest.mark.parametrize("raw", [None, 1, 1.5, True, b"BUY", ["BUY"], {"type": "BUY"}])
def test_a_type_that_is_not_a_string_is_other(raw):
    assert normalize_type(raw) == "OTHER"


def test_the_normalized_types_are_the_documented_ones_plus_other_each_once():
    assert NORMALIZED_TYPES == (*DOCUMENTED_TYPES, "OTHER")
    assert len(set(NORMALIZED_TYPES)) == len(NORMALIZED_TYPES)
    assert all(t == t.strip().upper() for t in NORMALIZED_TYPES)  # what normalize_type compares against


def test_every_categorized_type_is_a_documented_one():
    assert set(CATEGORY_BY_TYPE) <= set(DOCUMENTED_TYPES)


def test_each_cash_flow_category_of_the_analytics_page_has_its_types():
    expected = {
        "contributions": {"CONTRIBUTION"},
        "withdrawals": {"WITHDRAWAL"},
        "dividends": {"DIVIDEND", "SUBSTITUTE_DIVIDEND", "REI", "STOCK_DIVIDEND", "DISTRIBUTION", "RETURN_OF_CAPITAL"},
        "interest": {"INTEREST"},
        "fees": {"FEE", "REBATE"},
        "taxes": {"TAX"},
    }
    assert set(CASH_FLOW_CATEGORIES) == set(expected)
    for category, types in expected.items():
        assert {t for t, c in CATEGORY_BY_TYPE.items() if c == category} == types, category


def test_trades_and_options_have_their_own_categories_and_movements_of_securities_none():
    assert {t for t, c in CATEGORY_BY_TYPE.items() if c == "trade"} == {"BUY", "SELL"}
    assert {t for t, c in CATEGORY_BY_TYPE.items() if c == "options"} == {
        "OPTIONEXPIRATION",
        "OPTIONASSIGNMENT",
        "OPTIONEXERCISE",
    }
    uncategorized = {"TRANSFER", "SPLIT", "REVERSE_SPLIT", "SPINOFF", "STOCK_MERGER", "ADJUSTMENT", "OTHER"}
    assert not uncategorized & set(CATEGORY_BY_TYPE)


def test_option_actions_are_the_four_opening_and_closing_sides():
    assert sorted(OPTION_ACTIONS) == ["BUY_TO_CLOSE", "BUY_TO_OPEN", "SELL_TO_CLOSE", "SELL_TO_OPEN"]
