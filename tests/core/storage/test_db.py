"""Exact money sums on both dialects: SQLite's SUM is float, ours never is; SQLite's connection settings."""

from datetime import date
from decimal import Context, Decimal, localcontext

import sqlalchemy as sa

from core.storage.db import decimal_sum
from core.storage.models import AppUser, BrokerageAccount, BrokerageConnection, BrokerageTransaction
from core.storage.types import ARROW_SUM_MIN_CHARS, DecimalTextSum, _arrow_sum


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


def test_decimal_sum_of_a_long_column_is_exact(session):
    """Long columns are summed in Arrow (SQLite) or NUMERIC (PostgreSQL): still exact, whatever the scales."""
    u, a = _account(session, "fees")
    values = ([Decimal("0")] * 900 + [Decimal("0.10")] * 90 + [Decimal("1.000000000000000001")] * 9 + [Decimal("-2.5")]
              + [Decimal(f"{i * 7919 % 100003}.{i % 97:02d}") * (-1 if i % 3 else 1) for i in range(1500)]
              + [Decimal("99999999999999999999.999999999999999999")] * 3)  # fmt: skip
    session.add_all(BrokerageTransaction(user_id=u.id, account_id=a.id, snaptrade_activity_id=f"t{i}", transaction_type="FEE",
                                         trade_date=date(2024, 1, 2), fee=v, fingerprint="f", raw_hash="h")
                    for i, v in enumerate(values))  # fmt: skip
    session.commit()
    total = session.execute(sa.select(decimal_sum(session.get_bind(), BrokerageTransaction.fee))).scalar_one()
    with localcontext(Context(prec=80)):
        expected = sum(values, Decimal(0))
    assert total == expected
    assert len(expected.as_tuple().digits) > 38  # past decimal128: a wrapping sum would be caught here


def test_long_text_sums_go_through_arrow_exactly_and_fall_back_past_18_places():
    texts = [f"{i * 104729 % 1000003}.{i % 1000:03d}" for i in range(3000)] + ["-0.000000000000000001", "7"]
    text = ",".join(texts)
    assert len(text) >= ARROW_SUM_MIN_CHARS
    expected = sum(map(Decimal, texts), Decimal(0))
    assert _arrow_sum(text) == expected
    assert DecimalTextSum().process_result_value(text, None) == expected
    assert str(_arrow_sum(",".join(["1.25", "2.25"] * 2000))) == "7000"  # trailing zeros of decimal256 trimmed
    assert str(_arrow_sum(",".join(["1.25", "2.20"] * 2000))) == "6900"
    assert str(_arrow_sum(",".join(["1.25", "2.21"] * 2000))) == "6920"
    assert str(_arrow_sum(",".join(["0.1", "0.02"] * 2000))) == "240"
    assert str(_arrow_sum(",".join(["0.1", "0.001"] * 2000))) == "202"
    assert str(_arrow_sum(",".join(["0.1", "0.0001"] * 3000))) == "300.3"

    # SQLite keeps whatever exact text it was given: 19 places do not fit decimal256(76, 18), so Python sums them.
    finer = text + ",0.0000000000000000001"
    assert _arrow_sum(finer) is None
    with localcontext(Context(prec=80)):
        assert DecimalTextSum().process_result_value(finer, None) == expected + Decimal("0.0000000000000000001")


def test_a_sqlite_connection_checkpoints_its_wal_every_10000_pages_not_every_page_a_sync_commits(tmp_path):
    """SQLite's default (1,000 pages, 4 MiB) checkpointed at nearly every sync page's commit: a 10,000-activity
    import took 0.92x the time with 10,000 (core.storage.db.SQLITE_WAL_AUTOCHECKPOINT_PAGES)."""
    from core.storage.db import create_db_engine

    engine = create_db_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10_000
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_begin_writing_holds_sqlites_write_lock_before_the_first_write_and_is_harmless_once_writing(engine):
    """After begin_writing another SQLite connection cannot write until the session ends, though the session
    has only read; in a transaction that already wrote it changes nothing (no nested BEGIN). PostgreSQL: no-op."""
    import sqlite3

    from sqlmodel import Session

    from core.storage.db import begin_writing

    def other_write() -> str:
        path = engine.url.database
        other = sqlite3.connect(path, timeout=0.1)
        try:
            other.execute("UPDATE app_users SET name = 'other'")
            other.commit()
            return "written"
        except sqlite3.OperationalError as exc:
            return str(exc)
        finally:
            other.close()

    with Session(engine) as s:
        s.add(AppUser(username="w", password_hash="x"))
        s.commit()
        assert s.execute(sa.select(AppUser.username)).scalars().all() == ["w"]
        begin_writing(s)
        if engine.dialect.name == "sqlite":
            assert other_write() == "database is locked"
        s.execute(sa.update(AppUser).values(name="session"))
        begin_writing(s)  # already writing: no second BEGIN
        s.commit()
        if engine.dialect.name == "sqlite":
            assert other_write() == "written"
    with Session(engine) as s:
        expected = "other" if engine.dialect.name == "sqlite" else "session"
        assert s.execute(sa.select(AppUser.name)).scalar_one() == expected
