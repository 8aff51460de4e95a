"""Column types that keep money exact on every database.

PostgreSQL stores NUMERIC natively; SQLite has no decimal type (its NUMERIC affinity turns values
into floats), so there the exact decimal text is stored and parsed back into `Decimal`.
"""

from __future__ import annotations

from collections import Counter
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


def format_decimal(value: Decimal) -> str:
    """Plain (non-scientific) text of a decimal without trailing zeros: 0.0700 → '0.07', 1E+2 → '100'."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


_SUM_CONTEXT = Context(prec=80)


class DecimalTextSum(TypeDecorator):
    """The result of SQLite's group_concat over exact decimal text: summed exactly in Python.

    SQLite has no exact SUM; concatenating in C and parsing once is several times faster than a
    Python aggregate called per row."""

    impl = sa.Text()
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, (int, Decimal)):
            return Decimal(value)
        parts = value.split(",")
        with localcontext(_SUM_CONTEXT):  # the default 28 digits would round NUMERIC(38, 18) sums
            if len(parts) > 256 and len(set(parts[:256])) < 64:
                # Mostly repeated values (fees: "0" nearly everywhere): parse each distinct one once.
                return sum((Decimal(text) * n for text, n in Counter(parts).items()), Decimal(0))
            return sum(map(Decimal, parts), Decimal(0))
