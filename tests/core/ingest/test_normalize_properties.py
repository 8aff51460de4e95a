"""Properties of normalize_activity over arbitrary input: it fails only with NormalizationError, and whatever it
returns is storable (valid type, a date, exact decimals, column-sized text, JSON-safe raw)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.ingest.normalize import normalize_activity
from core.snaptrade.activity_types import NORMALIZED_TYPES
from core.snaptrade.values import NormalizationError, parse_occ
from core.storage import jsonexact

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MONEY = ("option_strike", "quantity", "price", "amount", "fee", "fx_rate")
LIMITS = {
    "snaptrade_activity_id": 128, "raw_type": 128, "symbol": 64, "symbol_id": 64, "security_type": 32,
    "option_ticker": 32, "option_underlying": 16, "option_right": 4, "option_action": 16, "currency": 8,
    "trade_timestamp": 64, "institution": 255, "external_reference_id": 128, "fingerprint": 64,
}  # fmt: skip

# A valid option trade as SnapTrade sends it, read the way the sync reads it (floats as Decimal).
VALID = json.loads(
    """{
  "id": "0c2f9d8e-1b7a-4c55-8e0f-6a3b2c1d4e5f",
  "symbol": {"id": "sym-aapl", "symbol": "AAPL", "raw_symbol": "AAPL", "description": "Apple Inc.",
             "currency": {"id": "c-usd", "code": "USD", "name": "US Dollar"},
             "type": {"id": "t-cs", "code": "cs", "description": "Common Stock", "is_supported": true}},
  "option_symbol": {"id": "opt-1", "ticker": "AAPL  261218C00240000", "option_type": "CALL", "strike_price": 240,
                    "expiration_date": "2026-12-18", "is_mini_option": false,
                    "underlying_symbol": {"id": "sym-aapl", "symbol": "AAPL", "description": "Apple Inc."}},
  "price": 4.15, "units": -1, "amount": 414.35, "currency": {"id": "c-usd", "code": "USD", "name": "US Dollar"},
  "type": "SELL", "option_type": "SELL_TO_OPEN", "description": "SELL TO OPEN AAPL 240 CALL",
  "trade_date": "2024-03-22T15:31:07-04:00", "settlement_date": "2024-03-25T00:00:00Z", "fee": 0.65,
  "fx_rate": null, "institution": "Robinhood", "external_reference_id": "ord-77"
}""",
    parse_float=Decimal,
)
FIELDS = sorted(VALID)
NESTED = [("symbol", k) for k in VALID["symbol"]] + [("option_symbol", k) for k in VALID["option_symbol"]]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.decimals()
    | st.text(max_size=40)
    | st.sampled_from(["2024-03-22", "2024-03-22T23:30:00-05:00", "2024-02-30", "", "BUY", "DIVIDEND", "1.50",
                      "AAPL261218C00240000", "SPY   240322P00500000", "1e400", "NaN", "-0.00"])
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
arbitrary_dicts = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=12)


@st.composite
def mutated_activities(draw) -> dict:
    activity = json.loads(json.dumps(VALID, default=str))  # a deep copy
    activity.update({k: v for k, v in VALID.items() if not isinstance(v, dict)})  # keep the Decimals
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            activity[key] = draw(json_values)
        else:
            activity.pop(key, None)
    for parent, key in draw(st.lists(st.sampled_from(NESTED), max_size=3, unique=True)):
        if isinstance(activity.get(parent), dict):
            activity[parent][key] = draw(json_values)
    return activity


def check_outcome(activity) -> None:
    try:
        row = normalize_activity(activity)
    except NormalizationError as exc:
        text = str(exc)
        assert text and not text.startswith("unexpected"), text
        return
    assert row["transaction_type"] in NORMALIZED_TYPES
    assert type(row["trade_date"]) is date
    assert row["settlement_date"] is None or type(row["settlement_date"]) is date
    assert row["option_expiration"] is None or type(row["option_expiration"]) is date
    for column in MONEY:
        value = row[column]
        assert value is None or (isinstance(value, Decimal) and value.is_finite()), (column, value)
    for column, limit in LIMITS.items():
        value = row[column]
        assert value is None or (isinstance(value, str) and len(value) <= limit), (column, value)
    assert isinstance(row["snaptrade_activity_id"], str) and row["snaptrade_activity_id"]
    assert jsonexact.loads(jsonexact.dumps(row["raw"])) is not None
    "".join(v for v in (row["description"], row["security_name"]) if v).encode("utf-8")


@PROPERTY_SETTINGS
@given(arbitrary_dicts)
def test_arbitrary_dicts_either_normalize_to_a_storable_row_or_raise_normalization_error(activity):
    check_outcome(activity)


@PROPERTY_SETTINGS
@given(mutated_activities())
def test_mutated_valid_activities_either_normalize_to_a_storable_row_or_raise_normalization_error(activity):
    check_outcome(activity)


@PROPERTY_SETTINGS
@given(json_values)
def test_anything_that_is_not_an_object_is_refused(value):
    if not isinstance(value, dict):
        try:
            normalize_activity(value)
        except NormalizationError as exc:
            assert str(exc) == "activity is not an object"
        else:
            raise AssertionError("a non-object was accepted")


@PROPERTY_SETTINGS
@given(
    amount=st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**19), max_value=10**19, places=18),
    extra_zeros=st.integers(min_value=0, max_value=6),
    new_id=st.text(min_size=1, max_size=64).filter(str.strip),
)
def test_values_stay_exact_and_the_fingerprint_ignores_id_and_trailing_zeros(amount, extra_zeros, new_id):
    first = normalize_activity(dict(VALID, amount=amount))
    text = f"{amount:f}"  # exact; then the same value with more trailing zeros: 1.5 -> 1.5000
    padded = Decimal(f"{text}{'' if '.' in text else '.'}{'0' * extra_zeros}")
    second = normalize_activity(dict(VALID, amount=padded, id=new_id))
    assert first["amount"] == amount and str(first["amount"]) == str(amount)
    assert first["fingerprint"] == second["fingerprint"]


@PROPERTY_SETTINGS
@given(
    root=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6),
    expiration=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    right=st.sampled_from("CP"),
    thousandths=st.integers(min_value=0, max_value=10**8 - 1),
)
def test_padded_and_unpadded_occ_tickers_parse_to_one_contract(root, expiration, right, thousandths):
    tail = f"{expiration:%y%m%d}{right}{thousandths:08d}"
    padded, unpadded = parse_occ(f"{root:<6}{tail}"), parse_occ(f"{root}{tail}")
    assert padded is not None and padded == unpadded
    assert padded.canonical == f"{root:<6}{tail}" and len(padded.canonical) == 21
    assert (padded.underlying, padded.expiration) == (root, expiration)
    assert padded.right == ("CALL" if right == "C" else "PUT")
    assert padded.strike == Decimal(thousandths) / 1000
