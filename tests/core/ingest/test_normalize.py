"""normalize_activity: one SnapTrade activity becomes one exact, storable BrokerageTransaction row."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from core.ingest.normalize import content_fingerprint, normalize_activity
from core.snaptrade.activity_types import DOCUMENTED_TYPES
from core.snaptrade.values import (
    NormalizationError,
    OccContract,
    canonical_occ,
    parse_decimal,
    parse_occ,
    parse_snaptrade_date,
)
from core.storage import jsonexact
from core.storage.models import BrokerageTransaction

ROW_KEYS = {
    "snaptrade_activity_id", "transaction_type", "raw_type", "symbol", "symbol_id", "security_name", "security_type",
    "option_ticker", "option_underlying", "option_right", "option_strike", "option_expiration", "option_action",
    "quantity", "price", "amount", "fee", "currency", "fx_rate", "trade_date", "trade_timestamp",
    "trade_date_from_settlement", "settlement_date", "description", "institution", "external_reference_id",
    "fingerprint", "raw", "option_mini",
}  # fmt: skip

CAD = {"id": "cur-cad", "code": "CAD", "name": "Canadian Dollar"}
USD = {"id": "cur-usd", "code": "USD", "name": "US Dollar"}


def stock_activity(**overrides) -> dict:
    """A BUY of VAB.TO as SnapTrade sends it, parsed with json.loads(parse_float=Decimal)."""
    activity = {
        "id": "4fd7a6a2-3c4e-4b3e-9a55-0d1c2b3a4e5f",
        "symbol": {
            "id": "sym-vab",
            "symbol": "VAB.TO",
            "raw_symbol": "VAB",
            "description": "Vanguard Canadian Aggregate Bond Index ETF",
            "currency": CAD,
            "exchange": {"id": "ex-tsx", "code": "TSX", "mic_code": "XTSE", "name": "Toronto Stock Exchange"},
            "type": {"id": "t-et", "code": "et", "description": "ETF", "is_supported": True},
            "figi_code": None,
            "figi_instrument": None,
        },
        "option_symbol": None,
        "price": Decimal("23.45"),
        "units": Decimal(10),
        "amount": Decimal("-234.57"),
        "currency": CAD,
        "type": "BUY",
        "option_type": "",
        "description": "VANGUARD CDN AGGREGATE BOND INDEX ETF",
        "trade_date": "2024-03-22T16:27:55Z",
        "settlement_date": "2024-03-26T00:00:00Z",
        "fee": Decimal("0.07"),
        "fx_rate": None,
        "institution": "Questrade",
        "external_reference_id": "order-8812",
    }
    activity.update(overrides)
    return activity


def option_symbol(ticker="AAPL  261218C00240000", **overrides) -> dict:
    value = {
        "id": "opt-aapl-240c",
        "ticker": ticker,
        "option_type": "CALL",
        "strike_price": Decimal(240),
        "expiration_date": "2026-12-18",
        "is_mini_option": False,
        "underlying_symbol": {"id": "sym-aapl", "symbol": "AAPL", "description": "Apple Inc."},
    }
    value.update(overrides)
    return value


def option_activity(ticker="AAPL  261218C00240000", **overrides) -> dict:
    fields = {
        "type": "SELL",
        "option_type": "SELL_TO_OPEN",
        "option_symbol": option_symbol(ticker),
        "units": Decimal(-1),
        "price": Decimal("4.15"),
        "amount": Decimal("415.00"),
        "currency": USD,
        "fee": Decimal("0.65"),
    }
    fields.update(overrides)
    return stock_activity(**fields)


def reason(activity) -> str:
    with pytest.raises(NormalizationError) as caught:
        normalize_activity(activity)
    return str(caught.value)


# --- shape -------------------------------------------------------------------------------------------------------


def test_row_has_exactly_the_transaction_columns_minus_ids_and_timestamps():
    row = normalize_activity(stock_activity())
    assert set(row) == ROW_KEYS
    table_columns = set(BrokerageTransaction.__table__.columns.keys())
    # raw_hash belongs to the sync engine (it hashes row["raw"]), not to the normalizer.
    assert ROW_KEYS == table_columns - {"id", "user_id", "account_id", "created_at", "updated_at", "raw_hash"}


def test_a_typical_buy_is_stored_as_sent():
    row = normalize_activity(stock_activity())
    assert row["snaptrade_activity_id"] == "4fd7a6a2-3c4e-4b3e-9a55-0d1c2b3a4e5f"
    assert row["transaction_type"] == "BUY" and row["raw_type"] == "BUY"
    assert row["symbol"] == "VAB.TO"
    assert row["symbol_id"] == "sym-vab"
    assert row["security_name"] == "Vanguard Canadian Aggregate Bond Index ETF"
    assert row["security_type"] == "et"
    assert row["quantity"] == Decimal(10) and row["price"] == Decimal("23.45")
    assert row["amount"] == Decimal("-234.57") and row["fee"] == Decimal("0.07")
    assert row["currency"] == "CAD" and row["fx_rate"] is None
    assert row["trade_date"] == date(2024, 3, 22)
    assert row["trade_timestamp"] == "2024-03-22T16:27:55Z"
    assert row["trade_date_from_settlement"] is False
    assert row["settlement_date"] == date(2024, 3, 26)
    assert row["description"] == "VANGUARD CDN AGGREGATE BOND INDEX ETF"
    assert row["institution"] == "Questrade"
    assert row["external_reference_id"] == "order-8812"
    assert row["option_ticker"] is None and row["option_action"] is None
    assert len(row["fingerprint"]) == 64


def test_the_input_dict_is_not_modified():
    activity = stock_activity()
    before = copy.deepcopy(activity)
    normalize_activity(activity)
    assert activity == before


def test_integer_ids_are_stored_as_strings():
    assert normalize_activity(stock_activity(id=912345))["snaptrade_activity_id"] == "912345"


# --- types -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activity_type", DOCUMENTED_TYPES)
def test_every_documented_type_maps_to_itself(activity_type):
    row = normalize_activity(stock_activity(type=activity_type))
    assert row["transaction_type"] == activity_type
    assert row["raw_type"] == activity_type


@pytest.mark.parametrize("activity_type", ["JOURNAL", "misc", "Dividend Reinvestment", ""])
def test_unknown_types_are_other_with_the_raw_type_kept(activity_type):
    row = normalize_activity(stock_activity(type=activity_type))
    assert row["transaction_type"] == "OTHER"
    assert row["raw_type"] == activity_type


def test_raw_type_is_exactly_as_received_even_when_it_maps():
    row = normalize_activity(stock_activity(type=" buy"))
    assert row["transaction_type"] == "BUY"
    assert row["raw_type"] == " buy"


@pytest.mark.parametrize("missing", [None, "absent", 42])
def test_missing_or_non_text_type_is_other_without_raw_type(missing):
    activity = stock_activity(type=missing)
    if missing == "absent":
        del activity["type"]
    row = normalize_activity(activity)
    assert row["transaction_type"] == "OTHER"
    assert row["raw_type"] is None


# --- options -----------------------------------------------------------------------------------------------------


def test_padded_and_unpadded_occ_spellings_give_one_canonical_contract():
    padded = parse_occ("AAPL  261218C00240000")
    unpadded = parse_occ("AAPL261218C00240000")
    assert (
        padded
        == unpadded
        == OccContract(
            underlying="AAPL",
            expiration=date(2026, 12, 18),
            right="CALL",
            strike=Decimal(240),
            canonical="AAPL  261218C00240000",
        )
    )
    assert canonical_occ("AAPL261218C00240000") == canonical_occ("AAPL  261218C00240000") == "AAPL  261218C00240000"
    assert len(padded.canonical) == 21


@pytest.mark.parametrize(
    "ticker, canonical, underlying, right, strike",
    [
        ("GE    270115P00034500", "GE    270115P00034500", "GE", "PUT", Decimal("34.5")),
        ("GE270115P00034500", "GE    270115P00034500", "GE", "PUT", Decimal("34.5")),
        ("SPXW  240322C05250000", "SPXW  240322C05250000", "SPXW", "CALL", Decimal(5250)),
        ("BRKB1 250117C00400125", "BRKB1 250117C00400125", "BRKB1", "CALL", Decimal("400.125")),
        ("ABCDEF250117C00001000", "ABCDEF250117C00001000", "ABCDEF", "CALL", Decimal(1)),
        ("  f 250117p00001000 ", "F     250117P00001000", "F", "PUT", Decimal(1)),
    ],
)
def test_occ_parsing(ticker, canonical, underlying, right, strike):
    contract = parse_occ(ticker)
    assert contract is not None
    assert (contract.canonical, contract.underlying, contract.right, contract.strike) == (
        canonical, underlying, right, strike,
    )  # fmt: skip


@pytest.mark.parametrize(
    "ticker",
    ["", "AAPL", "AAPL 261218X00240000", "AAPL261318C00240000", "TOOLONGROOT261218C00240000", "AA PL261218C00240000",
     "AAPL261218C0024000", None, 261218],
)  # fmt: skip
def test_non_occ_tickers_do_not_parse(ticker):
    assert parse_occ(ticker) is None
    assert canonical_occ(ticker) is None


def test_option_row_fields_come_from_the_ticker():
    row = normalize_activity(option_activity("AAPL261218C00240000"))
    assert row["option_ticker"] == "AAPL  261218C00240000"
    assert row["option_underlying"] == "AAPL"
    assert row["option_right"] == "CALL"
    assert row["option_strike"] == Decimal(240)
    assert row["option_expiration"] == date(2026, 12, 18)
    assert row["option_action"] == "SELL_TO_OPEN"
    assert row["security_type"] == "option"
    assert row["symbol"] == "AAPL"
    assert row["symbol_id"] == "sym-aapl"


def test_padded_and_unpadded_option_trades_share_ticker_and_fingerprint():
    padded = normalize_activity(option_activity("AAPL  261218C00240000", id="a"))
    unpadded = normalize_activity(option_activity("AAPL261218C00240000", id="b"))
    assert padded["option_ticker"] == unpadded["option_ticker"]
    assert padded["fingerprint"] == unpadded["fingerprint"]


def test_option_symbol_is_read_before_symbol():
    # Some brokers put the underlying stock in `symbol` on option trades.
    activity = option_activity(symbol={"id": "sym-aapl-stock", "symbol": "AAPL", "type": {"code": "cs"}})
    row = normalize_activity(activity)
    assert row["security_type"] == "option"
    assert row["option_ticker"] == "AAPL  261218C00240000"


def test_option_fields_fall_back_to_option_symbol_fields_when_the_ticker_does_not_parse():
    activity = option_activity(option_symbol=option_symbol("AAPL 12/18/26 240 C", strike_price=Decimal("240.50")))
    row = normalize_activity(activity)
    assert row["option_underlying"] == "AAPL"
    assert row["option_right"] == "CALL"
    assert row["option_strike"] == Decimal("240.50")
    assert row["option_expiration"] == date(2026, 12, 18)
    # The canonical OCC form is rebuilt from the structured fields.
    assert row["option_ticker"] == "AAPL  261218C00240500"


def test_an_unusable_ticker_with_unusable_fields_keeps_the_ticker_text():
    activity = option_activity(option_symbol={"id": "x", "ticker": "WEIRD  OPT", "strike_price": "n/a"})
    row = normalize_activity(activity)
    assert row["option_ticker"] == "WEIRD OPT"
    assert row["option_strike"] is None and row["option_right"] is None


def test_an_empty_option_symbol_is_not_an_option_row_and_does_not_fail():
    row = normalize_activity(stock_activity(option_symbol={}))
    assert row["security_type"] == "et"
    assert row["option_ticker"] is None and row["option_underlying"] is None


ABSENT = object()


@pytest.mark.parametrize("flag, stored", [(True, "true"), (False, "false"), (None, "null"), ("yes", "other"),
                                          (1, "other"), ({}, "other"), (ABSENT, None)])  # fmt: skip
def test_option_mini_is_stored_as_the_journals_multiplier_reads_the_raw_record(flag, stored):
    from core.journal.fills import option_multiplier
    from core.journal.rows import to_row

    symbol = option_symbol()
    del symbol["is_mini_option"]
    if flag is not ABSENT:
        symbol["is_mini_option"] = flag
    row = normalize_activity(option_activity(option_symbol=symbol))
    assert row["option_mini"] == stored
    # The journal reads the stored flag, not the raw JSON: the multiplier is the one the raw record gives.
    assert option_multiplier(to_row((*[None] * 13, stored)).raw) == option_multiplier(row["raw"])


def test_option_mini_is_none_on_a_row_that_is_not_an_option():
    row = normalize_activity(stock_activity(option_symbol={"is_mini_option": True}))
    assert row["security_type"] != "option" and row["option_mini"] is None


@pytest.mark.parametrize("value", ["BUY", "sell_to_close ", "OPEN", None, 7])
def test_option_action_is_one_of_the_four_or_none(value):
    row = normalize_activity(option_activity(option_type=value))
    expected = {"sell_to_close ": "SELL_TO_CLOSE"}.get(value)
    assert row["option_action"] == expected


# --- exact numbers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["0.07", "0.00012345", "0.00000001", "1234567890.123456789012345678", "-98765432109876543.21", "1E-8"],
)
def test_decimals_stay_exact(text):
    row = normalize_activity(stock_activity(units=Decimal(text), price=text, amount=Decimal(text)))
    assert row["quantity"] == Decimal(text) and str(row["quantity"]) == str(Decimal(text))
    assert row["price"] == Decimal(text)
    assert row["amount"] == Decimal(text)


def test_json_text_parsed_with_decimal_keeps_every_digit():
    text = json.dumps(stock_activity(), default=str).replace('"0.07"', "0.07")
    text = text.replace('"234.57"', "234.57").replace('"10"', "0.000123456789012345678")
    row = normalize_activity(json.loads(text, parse_float=Decimal))
    assert row["fee"] == Decimal("0.07")
    assert row["quantity"] == Decimal("0.000123456789012345678")


@pytest.mark.parametrize("value, expected", [(0.07, "0.07"), (0.1, "0.1"), (1e-8, "1E-8"), (23.45, "23.45"), (3, "3")])
def test_plain_floats_go_through_their_shortest_repr(value, expected):
    assert parse_decimal(value, "price") == Decimal(expected)
    assert normalize_activity(stock_activity(fee=value))["fee"] == Decimal(expected)


def test_parse_decimal_accepts_decimal_str_and_int():
    assert parse_decimal(Decimal("1.50"), "price") == Decimal("1.50")
    assert parse_decimal(" -2.5e3 ", "price") == Decimal(-2500)
    assert parse_decimal(12, "units") == Decimal(12)
    assert parse_decimal(None, "fee") is None


@pytest.mark.parametrize(
    "value", [True, False, "abc", "1,000", "1_000", "NaN", "inf", float("nan"), float("inf"), Decimal("NaN"),
              Decimal("-Infinity"), [1], {"v": 1}, "1e25", Decimal("1E+20")],
)  # fmt: skip
def test_parse_decimal_refuses_non_numbers_and_unstorable_values(value):
    with pytest.raises(NormalizationError, match="^amount "):
        parse_decimal(value, "amount")


def test_missing_numbers_are_none_not_zero():
    activity = stock_activity(amount=None, fx_rate=None)
    del activity["fee"], activity["units"], activity["price"]
    row = normalize_activity(activity)
    assert (row["quantity"], row["price"], row["amount"], row["fee"], row["fx_rate"]) == (None,) * 5


def test_dividends_stay_positive_and_reversals_stay_negative():
    dividend = normalize_activity(stock_activity(type="DIVIDEND", amount=Decimal("12.34"), units=None, price=None))
    reversal = normalize_activity(stock_activity(type="DIVIDEND", amount=Decimal("-12.34"), units=None, price=None))
    assert dividend["amount"] == Decimal("12.34")
    assert reversal["amount"] == Decimal("-12.34")


def test_amount_is_never_recomputed_from_units_and_price():
    row = normalize_activity(stock_activity(units=Decimal(3), price=Decimal("33.333"), amount=Decimal("-100.00")))
    assert row["amount"] == Decimal("-100.00")


def test_fees_and_fx_rate_are_kept():
    row = normalize_activity(stock_activity(fee=Decimal("9.99"), fx_rate=Decimal("1.3542"), currency=USD))
    assert row["fee"] == Decimal("9.99")
    assert row["fx_rate"] == Decimal("1.3542")
    assert row["currency"] == "USD"


@pytest.mark.parametrize("field, column", [("amount", "amount"), ("price", "price"), ("units", "units"),
                                           ("fee", "fee"), ("fx_rate", "fx_rate")])  # fmt: skip
def test_a_non_numeric_money_field_is_refused_with_field_and_value(field, column):
    assert reason(stock_activity(**{field: "abc"})) == f"{column} 'abc' is not a number"


# --- dates -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["2024-03-22", "2024-03-22T00:00:00Z", "2024-03-22T23:30:00-05:00", "2024-03-22T00:30:00+09:00",
     "2024-03-22T16:27:55.123456+00:00", "2024-03-22 16:27:55", "2024-03-22T23:59"],
)  # fmt: skip
def test_trade_date_is_the_calendar_date_as_written(text):
    row = normalize_activity(stock_activity(trade_date=text))
    assert row["trade_date"] == date(2024, 3, 22)
    assert row["trade_timestamp"] == text
    assert parse_snaptrade_date(text) == (date(2024, 3, 22), text)


def test_datetime_objects_keep_their_own_calendar_date():
    value = datetime(2024, 3, 22, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert parse_snaptrade_date(value) == (date(2024, 3, 22), "2024-03-22T23:30:00-05:00")


@pytest.mark.parametrize("missing", [None, "", "absent"])
def test_a_missing_trade_date_falls_back_to_the_settlement_date_and_says_so(missing):
    activity = stock_activity(trade_date=missing, settlement_date="2024-03-26T00:00:00Z")
    if missing == "absent":
        del activity["trade_date"]
    row = normalize_activity(activity)
    assert row["trade_date"] == date(2024, 3, 26)
    assert row["trade_date_from_settlement"] is True
    assert row["trade_timestamp"] is None
    assert row["settlement_date"] == date(2024, 3, 26)


def test_no_trade_date_and_no_settlement_date_is_refused():
    assert reason(stock_activity(trade_date=None, settlement_date=None)) == "no usable trade_date or settlement_date"


@pytest.mark.parametrize(
    "field, value", [("trade_date", "yesterday"), ("trade_date", "2024-02-30"), ("trade_date", 20240322),
                     ("settlement_date", "2024-13-01T00:00:00Z"), ("trade_date", "2024-03-22T25:00:00Z")],
)  # fmt: skip
def test_garbage_date_text_is_refused_naming_the_field(field, value):
    assert reason(stock_activity(**{field: value})).startswith(f"{field} {value!r} is not a")


def test_dates_in_other_scripts_digits_are_read_as_before():
    # The date regex's \d matches any script's digits and int() reads them; the fast path (fromisoformat) does not.
    text = "٢٠٢٤-٠٣-٢٢T10:00:00Z"
    assert parse_snaptrade_date(text) == (date(2024, 3, 22), text)
    assert normalize_activity(stock_activity(trade_date=text))["trade_date"] == date(2024, 3, 22)


def test_a_missing_settlement_date_is_none():
    assert normalize_activity(stock_activity(settlement_date=None))["settlement_date"] is None


# --- malformed records -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", [None, "", "   ", 1.5, True, ["x"], {"id": 1}, "absent"])
def test_an_activity_without_a_usable_id_is_refused(bad_id):
    activity = stock_activity(id=bad_id)
    if bad_id == "absent":
        del activity["id"]
    assert reason(activity) == "activity has no id"


def test_an_id_longer_than_its_column_is_refused_rather_than_cut():
    assert "longer than 128" in reason(stock_activity(id="x" * 129))


@pytest.mark.parametrize("value", [None, [], "BUY", 3, stock_activity])
def test_a_non_object_is_refused(value):
    assert reason(value) == "activity is not an object"


def test_symbol_shapes_that_are_not_objects_do_not_crash():
    assert normalize_activity(stock_activity(symbol="XIU.TO"))["symbol"] == "XIU.TO"
    row = normalize_activity(stock_activity(symbol=None, currency_universal_symbol={"symbol": "BTC"}))
    assert row["symbol"] is None and row["security_type"] is None
    row = normalize_activity(stock_activity(symbol={"symbol": 5, "type": "cs", "id": ["x"]}))
    assert (row["symbol"], row["symbol_id"], row["security_type"]) == (None, None, None)


def test_long_strings_are_cut_to_their_columns_and_kept_whole_in_raw():
    long = "Z" * 600
    activity = stock_activity(
        type=long, institution=long, external_reference_id=long, description=long,
        symbol={"id": long, "symbol": long, "type": {"code": long}}, currency={"code": long},
    )  # fmt: skip
    row = normalize_activity(activity)
    limits = {"raw_type": 128, "institution": 255, "external_reference_id": 128, "symbol": 64, "symbol_id": 64,
              "security_type": 32, "currency": 8, "description": 500}  # fmt: skip
    for column, limit in limits.items():
        assert row[column] == "Z" * limit, column
    assert row["raw"]["institution"] == long and row["raw"]["description"] == long


def test_text_postgresql_cannot_hold_is_replaced():
    row = normalize_activity(stock_activity(description="a\x00b", institution="q\ud800"))
    assert row["description"] == "a\ufffdb"
    assert row["institution"] == "q\ufffd"
    assert row["raw"]["description"] == "a\ufffdb"


# --- raw ---------------------------------------------------------------------------------------------------------


def test_raw_keeps_exact_decimals_and_round_trips_through_exact_json():
    activity = stock_activity(price=Decimal("23.450"), fee=0.07, extra={"nested": [Decimal("1E-8"), None, True]})
    raw = normalize_activity(activity)["raw"]
    assert raw["price"] == Decimal("23.450") and str(raw["price"]) == "23.450"
    assert raw["fee"] == 0.07
    assert raw["extra"] == {"nested": [Decimal("1E-8"), None, True]}
    assert raw["symbol"] == activity["symbol"]
    text = jsonexact.dumps(raw)
    assert '"price":23.450' in text and '"nested":[1E-8,null,true]' in text


# --- fingerprint -------------------------------------------------------------------------------------------------


def test_fingerprint_ignores_the_id():
    assert (
        normalize_activity(stock_activity(id="a"))["fingerprint"]
        == normalize_activity(stock_activity(id="b"))["fingerprint"]
    )


def test_fingerprint_compares_decimals_by_value():
    a = normalize_activity(stock_activity(price=Decimal("1.50"), units=Decimal("10.0"), fee=Decimal(0)))
    b = normalize_activity(stock_activity(price=Decimal("1.5"), units=10, fee=Decimal("-0.00")))
    c = normalize_activity(stock_activity(price=1.5, units="1E+1", fee=0.0))
    assert a["fingerprint"] == b["fingerprint"] == c["fingerprint"]


def test_fingerprint_keeps_digits_beyond_the_default_decimal_precision():
    a = normalize_activity(stock_activity(units=Decimal("1234567890.1234567890123456789012")))
    b = normalize_activity(stock_activity(units=Decimal("1234567890.1234567890123456789013")))
    assert a["fingerprint"] != b["fingerprint"]


@pytest.mark.parametrize(
    "change",
    [{"amount": Decimal("-234.58")}, {"fee": Decimal("0.08")}, {"type": "SELL"}, {"trade_date": "2024-03-21"},
     {"description": "other"}, {"external_reference_id": "order-8813"}, {"currency": USD}, {"fx_rate": Decimal(1)},
     {"symbol": {"id": "sym-other"}}, {"option_type": "BUY_TO_OPEN"}, {"settlement_date": None}],
)  # fmt: skip
def test_fingerprint_changes_with_the_content(change):
    assert (
        normalize_activity(stock_activity(**change))["fingerprint"]
        != normalize_activity(stock_activity())["fingerprint"]
    )


@pytest.mark.parametrize(
    "activity, stored",
    [(stock_activity(), "e8b02e9bff1b8621f32c4e9c03cdff06ec9f6bc1b399c1a7abce06058ecd170e"),
     (option_activity(description='Vente à découvert — 株 \u2603 "quoted" \\ back'),
      "57ad87ffed850e3d9f55863793acb64cd26e65952f2544ffdd9a4d0aeee389e9")],
)  # fmt: skip
def test_fingerprints_are_the_ones_earlier_versions_stored(activity, stored):
    # Stored fingerprints are compared with new ones (re-keyed activities): the hash's input must not change.
    assert normalize_activity(activity)["fingerprint"] == stored


def test_content_fingerprint_is_the_row_fingerprint():
    row = normalize_activity(stock_activity())
    assert content_fingerprint(row) == row["fingerprint"]
    assert content_fingerprint(dict(row, snaptrade_activity_id="other", raw={})) == row["fingerprint"]
