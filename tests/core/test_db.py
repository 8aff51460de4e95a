"""Exact money sums on both dialects: SQLite's SUM is float, ours never is."""

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from core.db import decimal_sum
from core.models import AppUser, BrokerageAccount, BrokerageConnection, BrokerageTransaction


def _account(session, name: str) -> tuple[AppUser, BrokerageAccount]:
    u = AppUser(username=name, password_hash="x")
    session.add(u)
    session.flush()
    c = BrokerageConnection(user_id=u.id, authorization_id=f"a-{name}")
    session.add(c)
    session.flush()
    a = BrokerageAccount(user_id=u.id, connection_id=c.id, snaptrade_account_id=f"acc-{name}")
    session.add(a)
    session.flush()
    return u, a


def test_decimal_sum_is_exact_and_null_aware(session):
    u, a = _account(session, "sum")
    values = [Decimal("0.1"), Decimal("0.2"), None, Decimal("-0.000000000000000001"), Decimal("12345678901234567.89")]
    for i, v in enumerate(values):
        session.add(BrokerageTransaction(user_id=u.id, account_id=a.id, snaptrade_activity_id=f"t{i}", transaction_type="FEE",
                                         trade_date=date(2024, 1, 2), amount=v, fingerprint="f", raw_hash="h"))  # fmt: skip
    session.commit()
    bind = session.get_bind()
    total = session.execute(sa.select(decimal_sum(bind, BrokerageTransaction.amount))).scalar_one()
    assert total == Decimal("12345678901234568.189999999999999999")
    empty = session.execute(sa.select(decimal_sum(bind, BrokerageTransaction.fee))).scalar_one()
    assert empty is None


def test_decimal_sum_of_mostly_repeated_values_is_exact(session):
    """Fees are "0" on nearly every row: distinct values are parsed once and multiplied, still exactly."""
    u, a = _account(session, "fees")
    values = [Decimal("0")] * 900 + [Decimal("0.10")] * 90 + [Decimal("1.000000000000000001")] * 9 + [Decimal("-2.5")]
    session.add_all(BrokerageTransaction(user_id=u.id, account_id=a.id, snaptrade_activity_id=f"t{i}", transaction_type="FEE",
                                         trade_date=date(2024, 1, 2), fee=v, fingerprint="f", raw_hash="h")
                    for i, v in enumerate(values))  # fmt: skip
    session.commit()
    total = session.execute(sa.select(decimal_sum(session.get_bind(), BrokerageTransaction.fee))).scalar_one()
    assert total == Decimal("15.500000000000000009") == sum(values)
