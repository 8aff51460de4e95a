"""Column types that keep money exact on every database.

PostgreSQL stores NUMERIC natively; SQLite has no decimal type (its NUMERIC affinity turns values
into floats), so there the exact decimal text is stored and parsed back into `Decimal`.
"""

from __future__ import annotations

from decimal import Context, Decimal, localcontext

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator


class ExactDecimal(TypeDecorator):
    """NUMERIC(38, 18) on PostgreSQL, exact decimal text on SQLite; always `Decimal` in Python."""

    impl = sa.Numeric(38, 18, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(64))
        return dialect.type_descriptor(sa.Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, Decimal):
            if isinstance(value, float):
                raise TypeError("ExactDecimal refuses floats: pass Decimal or str")
            value = Decimal(value)
        if dialect.name == "sqlite":
            return format(value, "f")  # exact plain text; trailing zeros are harmless and cheaper to keep
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class ExactNumber(ExactDecimal):
    """Like ExactDecimal, but unbounded on PostgreSQL (NUMERIC without precision or scale): the journal's
    results (price × crypto units, a lot after a split, a P&L summed over many trades) can carry more than
    18 decimal places or 20 integer digits, and NUMERIC(38, 18) would round them without a word."""

    impl = sa.Numeric(asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))


_EXACT_CONTEXT = Context(prec=100)


def format_decimal(value: Decimal) -> str:
    """Plain (non-scientific) text of a decimal without trailing zeros: 0.0700 → '0.07', 1E+2 → '100'."""
    if value == 0:
        return "0"
    # normalize() in the default 28-digit context would round a NUMERIC(38, 18) value.
    return format(value.normalize(_EXACT_CONTEXT), "f")


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


_SUM_CONTEXT = Context(prec=80)


# Below this many characters (~800 amounts) Arrow's fixed cost (~0.15 ms) outweighs its speed.
ARROW_SUM_MIN_CHARS = 8192


def _arrow_sum(text: str) -> Decimal | None:
    """Exact sum of comma-separated decimal texts, parsed and added in Arrow's C++ (decimal256 with
    18 places), ~3x faster than `Decimal` per value. None when a value does not fit 18 places exactly:
    the caller then sums in Python."""
    import pyarrow as pa  # here, not at the top: every process imports this module, few sum long columns
    import pyarrow.compute as pc

    try:
        values = pc.split_pattern(pa.array([text], pa.large_string()), ",").flatten()
        # decimal256: a sum of many NUMERIC(38, 18) values can pass 38 digits, where decimal128 silently wraps.
        total = pc.sum(pc.cast(values, pa.decimal256(76, 18))).as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # e.g. "Rescaling Decimal value would cause data loss": more than 18 places
    with localcontext(_SUM_CONTEXT):  # trailing zeros off (19.500000000000000000 -> 19.5), never rounded
        return total.quantize(Decimal(1)) if total == total.to_integral_value() else total.normalize()


class DecimalTextSum(TypeDecorator):
    """The result of SQLite's group_concat over exact decimal text: summed exactly in Python.

    SQLite has no exact SUM; concatenating in C and parsing once (in Arrow for long lists) is several
    times faster than a Python aggregate called per row."""

    impl = sa.Text()
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, (int, Decimal)):
            return Decimal(value)
        if len(value) >= ARROW_SUM_MIN_CHARS:
            total = _arrow_sum(value)
            if total is not None:
                return total
        with localcontext(_SUM_CONTEXT):  # the default 28 digits would round NUMERIC(38, 18) sums
            return sum(map(Decimal, value.split(",")), Decimal(0))
