"""core/storage/jsonexact.py: JSON that keeps decimals exact, in Python and through both databases' JSON columns."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.storage.jsonexact import JSONText, dumps, loads
from core.storage.models import TransactionSyncLog
from tests.factories import make_trader

WIDE = Decimal("12345678901234567890.123456789012345678")  # 38 digits: a float keeps 17


def test_decimals_are_written_as_json_numbers_with_every_digit():
    text = dumps({"amount": Decimal("-0.10"), "wide": WIDE, "tiny": Decimal("1E-18"), "count": 3})
    assert text == '{"amount":-0.10,"wide":12345678901234567890.123456789012345678,"tiny":1E-18,"count":3}'
    assert json.loads(text)["count"] == 3  # still plain JSON to any reader


def test_numbers_are_read_back_as_decimal_with_their_digits_and_integers_as_int():
    value = loads('{"price": 140.30, "wide": 12345678901234567890.123456789012345678, "units": 12, "e": 1.5e3}')
    assert value == {"price": Decimal("140.30"), "wide": WIDE, "units": 12, "e": Decimal("1.5E+3")}
    assert str(value["price"]) == "140.30" and type(value["units"]) is int


def test_a_round_trip_keeps_nested_decimals_exact():
    payload = {"data": [{"amount": Decimal("-1753.75"), "fee": Decimal("0.000000000000000001")}], "ok": True, "n": None}
    again = loads(dumps(payload))
    assert again == payload
    assert [type(v) for v in again["data"][0].values()] == [Decimal, Decimal]


def test_non_finite_decimals_become_strings_because_json_has_no_nan():
    assert dumps([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")]) == '["NaN","Infinity","-Infinity"]'


def test_dates_and_times_are_written_in_iso_format():
    assert dumps({"d": date(2024, 3, 22), "t": datetime(2024, 3, 22, 10, 0, tzinfo=UTC)}) == (
        '{"d":"2024-03-22","t":"2024-03-22T10:00:00+00:00"}'
    )


def test_an_object_json_cannot_hold_is_refused():
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        dumps({"tags": {"a"}})


def test_already_serialized_text_passes_through_untouched():
    text = JSONText('{"b":1,  "a":2.50}')
    assert dumps(text) is text


def test_keys_are_sorted_only_when_asked():
    assert dumps({"b": 1, "a": Decimal("2.0")}) == '{"b":1,"a":2.0}'
    assert dumps({"b": 1, "a": Decimal("2.0")}, sort_keys=True) == '{"a":2.0,"b":1}'


def test_a_string_is_never_turned_into_a_number():
    assert loads(dumps({"note": "\x00dec:5"})) == {"note": "\x00dec:5"}


def test_json_columns_store_and_return_exact_decimals_on_both_databases(session):
    user, connection, _ = make_trader(session)
    checkpoint = {"accounts": {"a1": {"offset": 3000, "balance": WIDE, "fee": Decimal("0.10")}}}
    run = TransactionSyncLog(user_id=user.id, connection_id=connection.id, trigger="manual", checkpoint=checkpoint)
    session.add(run)
    session.commit()
    session.expunge_all()
    stored = session.get(TransactionSyncLog, run.id).checkpoint
    assert stored == checkpoint
    assert type(stored["accounts"]["a1"]["balance"]) is Decimal and stored["accounts"]["a1"]["balance"] == WIDE
    assert type(stored["accounts"]["a1"]["offset"]) is int
