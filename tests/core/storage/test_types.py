"""core/storage/types.py: money stays exact on both databases; JSON and big-integer keys take each one's best type."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.storage.types import BigIntPK, DecimalTextSum, ExactDecimal, JSONType, format_decimal

EXACT = [
    Decimal("12345678901234567890.123456789012345678"),  # 38 digits, the NUMERIC(38, 18) limit
    Decimal("-99999999999999999999.999999999999999999"),
    Decimal("0.000000000000000001"),
    Decimal("-1753.75"),
    Decimal("0"),
]


@pytest.fixture
def money(engine):
    """A scratch table with one ExactDecimal column on a fresh database."""
    table = sa.Table("money_probe", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("v", ExactDecimal()))  # fmt: skip
    table.create(engine)
    return table


def _store(engine, table, *values) -> list:
    with engine.begin() as c:
        c.execute(sa.insert(table), [{"id": i, "v": v} for i, v in enumerate(values)])
    with engine.connect() as c:
        return list(c.execute(sa.select(table.c.v).order_by(table.c.id)).scalars())


def test_exact_decimal_round_trips_38_digit_values_exactly(engine, money):
    back = _store(engine, money, *EXACT)
    assert back == EXACT
    assert all(type(v) is Decimal for v in back)
    assert str(back[0]) == "12345678901234567890.123456789012345678"


def test_exact_decimal_refuses_floats(engine, money):
    with pytest.raises(sa.exc.StatementError, match="ExactDecimal refuses floats"):
        _store(engine, money, 0.1)


def test_exact_decimal_accepts_text_and_integers_and_keeps_null(engine, money):
    assert _store(engine, money, "140.30", 7, None) == [Decimal("140.30"), Decimal(7), None]


def test_sqlite_keeps_the_exact_text_never_a_float_or_scientific_notation(engine, money):
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL stores NUMERIC")
    _store(engine, money, Decimal("1E+2"), Decimal("1E-7"), Decimal("0.10"))
    with engine.connect() as c:
        stored = c.execute(sa.text("SELECT v, typeof(v) FROM money_probe ORDER BY id")).all()
    assert stored == [("100", "text"), ("0.0000001", "text"), ("0.10", "text")]


def test_the_column_type_is_numeric_38_18_on_postgresql_and_text_on_sqlite():
    assert ExactDecimal().compile(dialect=postgresql.dialect()) == "NUMERIC(38, 18)"
    assert ExactDecimal().compile(dialect=sqlite.dialect()) == "VARCHAR(64)"


def test_json_is_jsonb_on_postgresql_and_big_integer_keys_are_sqlites_rowid():
    assert JSONType.compile(dialect=postgresql.dialect()) == "JSONB"
    assert JSONType.compile(dialect=sqlite.dialect()) == "JSON"
    assert BigIntPK.compile(dialect=postgresql.dialect()) == "BIGINT"
    assert BigIntPK.compile(dialect=sqlite.dialect()) == "INTEGER"  # INTEGER PRIMARY KEY is the rowid


@pytest.mark.parametrize(
    ("value", "text"),
    [("0.0700", "0.07"), ("1E+2", "100"), ("0", "0"), ("-0.000", "0"), ("-1753.750", "-1753.75"),
     ("1234567890.123456789012345678", "1234567890.123456789012345678"),
     ("12345678901234567890.123456789012345678", "12345678901234567890.123456789012345678")],
)  # fmt: skip
def test_format_decimal_writes_plain_digits_without_trailing_zeros(value, text):
    assert format_decimal(Decimal(value)) == text


def test_decimal_text_sum_adds_short_lists_exactly_past_28_digits():
    summed = DecimalTextSum().process_result_value
    assert summed("99999999999999999999.999999999999999999,0.000000000000000001", None) == Decimal(
        "100000000000000000000.000000000000000000"
    )
    assert summed("0.1,0.2,-0.3", None) == 0
    assert summed(None, None) is None
    assert summed(5, None) == Decimal(5)
