"""core.journal.fills: Fill and Unplaceable records from stored rows."""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime
from types import SimpleNamespace

from core.journal.fills import Fill, Unplaceable, fill_from_row, fills_from_rows, is_buy_side
from core.journal.trips import build
from tests.core.journal.builders import OPT, D

# ---------------------------------------------------------------------------------------------------------
# From stored rows
# ---------------------------------------------------------------------------------------------------------


def row(**kw):
    base = dict(
        snaptrade_activity_id="act-1", account_id=7, transaction_type="BUY", symbol="AAPL", security_type="cs",
        option_ticker=None, option_action=None, quantity=D(10), price=D("150.25"), fee=D("0.99"), currency="USD",
        trade_date=date(2024, 3, 22), trade_timestamp="2024-03-22T15:31:07-04:00", raw=None,
    )  # fmt: skip
    base.update(kw)
    return SimpleNamespace(**base)


def test_fill_from_row_stock_and_option():
    f = fill_from_row(row(), account="snap-acc")
    assert isinstance(f, Fill)
    assert (f.account, f.instrument, f.units, f.price, f.multiplier, f.is_option) == (
        "snap-acc", "AAPL", D(10), D("150.25"), D(1), False,
    )  # fmt: skip
    assert f.instant == datetime(2024, 3, 22, 19, 31, 7, tzinfo=UTC)
    assert fill_from_row(row(trade_timestamp="2024-03-22")).instant is None
    assert fill_from_row(row()).account == "7"
    option = dict(security_type="option", option_ticker=OPT, option_action="SELL_TO_OPEN", transaction_type="SELL")
    assert fill_from_row(row(**option)).multiplier == 100  # is_mini_option absent: a standard contract
    mini = fill_from_row(row(**option, raw={"option_symbol": {"is_mini_option": True}}))
    assert (mini.instrument, mini.multiplier, mini.is_option) == (OPT, D(10), True)
    odd = fill_from_row(row(**option, raw={"option_symbol": {"is_mini_option": "maybe"}}))
    assert isinstance(odd, Unplaceable) and odd.reason == "unknown option multiplier"
    crypto = fill_from_row(row(symbol="BTC", security_type="crypto"))
    assert crypto.is_crypto


def test_fill_from_row_non_position_and_unplaceable_rows():
    assert fill_from_row(row(transaction_type="DIVIDEND")) is None
    assert fill_from_row(row(transaction_type="FEE", symbol=None)) is None
    assert fill_from_row(row(transaction_type="STOCK_MERGER", quantity=None)) is None
    merger = fill_from_row(row(transaction_type="STOCK_MERGER"))
    assert isinstance(merger, Unplaceable) and merger.instrument == "AAPL"
    zero = fill_from_row(row(quantity=D(0)))
    assert isinstance(zero, Unplaceable) and zero.reason == "missing or zero units"
    expiry = fill_from_row(row(transaction_type="OPTIONEXPIRATION"))
    assert isinstance(expiry, Unplaceable) and expiry.instrument is None
    nothing = fill_from_row(row(symbol=None))
    assert isinstance(nothing, Unplaceable) and nothing.instrument is None
    result = build([nothing, expiry])
    assert result.round_trips == () and len(result.unplaceable) == 2


def test_fills_from_rows_gives_what_fill_from_row_gives():
    """The fast path for plain buys and sells (stocks and option contracts) and its fallbacks: the same records,
    the rows giving nothing left out."""
    option = dict(security_type="option", option_ticker=OPT, option_action="SELL_TO_OPEN")
    variants = [
        {}, dict(transaction_type="SELL", quantity=D(-3)), dict(price=None), dict(price=D(-1)), dict(price=D(0)),
        dict(fee=None), dict(fee=2), dict(fee=True), dict(quantity=D(0)), dict(quantity=None), dict(quantity=3),
        dict(symbol=None), dict(symbol="BTC", security_type="crypto"), dict(security_type="CRYPTO"),
        dict(security_type=None), dict(trade_timestamp=None), dict(trade_timestamp="2024-03-22"), option,
        dict(option, raw={"option_symbol": {"is_mini_option": "maybe"}}), dict(transaction_type="DIVIDEND"),
        dict(transaction_type="SPLIT"), dict(transaction_type="OTHER", raw_type=" staking_reward "),
        dict(transaction_type="OTHER", raw_type=None), dict(transaction_type="OPTIONEXPIRATION"),
        dict(snaptrade_activity_id=17), dict(option, raw={"option_symbol": {"is_mini_option": True}}),
        dict(option, raw=None), dict(option, security_type="crypto"), dict(option, security_type=None),
        dict(option, option_ticker=None), dict(option, quantity=D(0)), dict(option, price=D(-2)),
        dict(trade_timestamp="2024-03-22T10:00:00-05:00"), dict(trade_timestamp="2024-03-22T10:00:00"),
    ]  # fmt: skip
    rows = [row(**{"raw_type": None, "snaptrade_activity_id": f"a-{i}", **v}) for i, v in enumerate(variants)]
    expected = [f for f in (fill_from_row(r, account="acc") for r in rows) if f is not None]
    got = fills_from_rows(rows, "acc")
    assert got == expected and [type(f) for f in got] == [type(f) for f in expected]


def test_fill_from_row_reads_a_stored_model():
    from core.storage.models import BrokerageTransaction

    stored = BrokerageTransaction(
        user_id=1, account_id=3, snaptrade_activity_id="x-1", transaction_type="SELL", symbol="AAPL",
        security_type="option", option_ticker=OPT, option_action="SELL_TO_CLOSE", quantity=D(-2), price=D("4.15"),
        fee=D("1.30"), currency="USD", trade_date=date(2024, 3, 22), trade_timestamp="2024-03-22T15:31:07Z",
        fingerprint="f", raw_hash="h", raw={"option_symbol": {"ticker": OPT, "is_mini_option": False}},
    )  # fmt: skip
    f = fill_from_row(stored, account="snap-3")
    assert (f.instrument, f.is_option, f.multiplier, is_buy_side(f)) == (OPT, True, D(100), False)


def test_the_journals_indexes_hold_the_types_the_engine_reads():
    """core.storage.models.JOURNAL_READ_TYPES (the partial indexes' WHERE, migration 0012) are exactly the types
    fill_from_row may turn into something: a type left out would never be read, one too many indexed for nothing."""
    from core.journal.fills import POSITION_TYPES, UNMODELLED_TYPES
    from core.storage.models import JOURNAL_READ_TYPES

    migration = importlib.import_module("migrations.versions.0012_journal_covering_indexes")
    assert set(JOURNAL_READ_TYPES) == POSITION_TYPES | UNMODELLED_TYPES
    assert migration.READ_WHERE == f"transaction_type IN ({', '.join(repr(t) for t in JOURNAL_READ_TYPES)})"
