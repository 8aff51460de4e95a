"""core.ingest.binder: the page upsert's rows bound as SQLAlchemy would bind them, SQLite's multi-row statements
within the bound-variable limit, and PostgreSQL's unnest() statement keeping the columns' limits."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.ingest.normalize import normalize_activity
from core.storage.models import BrokerageTransaction
from tests.syncsupport import assert_matches_ground_truth, connect, make_user, sync_now


def test_sqlite_multi_row_statements_split_and_store_every_row(engine, sandbox, monkeypatch):
    """SQLite writes a page as multi-row VALUES statements within its bound-variable limit; a small
    limit forces several statements per page and the result must still equal the sandbox."""
    from core.ingest import binder as binding

    if engine.dialect.name != "sqlite":
        pytest.skip("the multi-row VALUES path is SQLite's")
    monkeypatch.setattr(binding, "SQLITE_MAX_VARIABLES", 7 * len(binding.binder_for(engine.dialect).names) + 3)
    statements = []
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda *a: statements.append(a[2]) if "INSERT INTO brokerage_transactions" in a[2] else None,
    )
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=130)
    [run] = sync_now(engine, uid, trigger="initial")
    assert run.status == "completed" and run.transactions_new > 100
    assert len(statements) >= run.transactions_new // 7
    assert max(s.count("), (") for s in statements) == 6  # 7 rows per statement at most
    with Session(engine) as s:
        assert_matches_ground_truth(s, sandbox, uid)


def _page_row(binder, raw: dict, now, **values) -> dict:
    """One activity as prepare_page makes it: normalized, raw JSON stored and hashed, stamped, then `values`."""
    from core.ingest import page_write

    row = normalize_activity(raw, clean_raw=False)
    row["raw"], row["raw_hash"] = page_write.stored_raw(row["raw"])
    row.update(created_at=binder.stamp(now), updated_at=binder.stamp(now), **values)
    return row


def test_bound_rows_equal_what_sqlalchemy_would_bind(engine):
    """The binder's fast conversions give the driver exactly what SQLAlchemy's own bind processors give."""
    from datetime import UTC, date, datetime

    from core.ingest import binder as binding

    if engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's page write converts no value in Python: see test_pgcopy")
    dialect = engine.dialect
    binder = binding.binder_for(dialect)
    raw = {"id": "a-1", "type": "BUY", "trade_date": "2024-03-22T10:00:00Z", "settlement_date": "2024-03-25",
           "units": "12.500", "price": 140.30, "amount": "-1753.75", "fee": "0", "fx_rate": None,
           "currency": {"code": "USD"}, "symbol": {"symbol": "AAPL", "id": "s1"},
           "option_symbol": {"ticker": "AAPL  261218C00240000"}, "description": "Bought"}  # fmt: skip
    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    row = _page_row(binder, raw, now, user_id=1, account_id=2)
    values = dict(zip(binder.names, binder.bind(row), strict=True))
    table = binding.T
    for name, value in values.items():
        original = {**row, "created_at": now, "updated_at": now}[name]
        processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        expected = processor(original) if processor and original is not None else original
        assert type(value) is type(expected), name
        if hasattr(expected, "obj"):  # psycopg's Jsonb wrapper compares by identity
            value, expected = value.obj, expected.obj
        assert value == expected, name
    assert values["trade_date"] == (date(2024, 3, 22) if dialect.name == "postgresql" else "2024-03-22")


def test_postgresql_page_statement_still_enforces_the_columns_limits(engine):
    """PostgreSQL stages a page in a table whose columns have no length limits (a cast to varchar(n) would
    cut a value short silently): a value too long for its column still fails the page's INSERT … SELECT,
    as a plain INSERT would, and nothing of the page is written."""
    from datetime import UTC, datetime

    from core.ingest import binder as binding
    from tests.factories import make_trader

    if engine.dialect.name != "postgresql":
        pytest.skip("the COPY page write is PostgreSQL's")
    binder = binding.binder_for(engine.dialect)
    with Session(engine, expire_on_commit=False) as s:
        user, _, account = make_trader(s)

    def bound(i: int, symbol: str, amount: str = "-2"):
        raw = {"id": f"a-{i}", "type": "BUY", "trade_date": "2024-03-22T10:00:00Z", "units": "1", "price": "2",
               "amount": amount, "currency": {"code": "USD"}, "symbol": {"symbol": "AAPL", "id": "s1"}}  # fmt: skip
        return binder.bind(_page_row(binder, raw, datetime.now(UTC), user_id=user.id, account_id=account.id,
                                     symbol=symbol))  # fmt: skip

    with pytest.raises(sa.exc.DataError, match="too long"), engine.begin() as c:
        binder.write(c, [bound(1, "AAPL"), bound(2, "X" * 65)])
    with engine.begin() as c:
        binder.write(c, [bound(1, "AAPL"), bound(2, "X" * 64)])
    with Session(engine) as s:
        assert sorted(t.symbol for t in s.exec(select(BrokerageTransaction))) == ["AAPL", "X" * 64]
    # Pages in one transaction: each stage holds only its own page (an earlier page's rows, staged again,
    # would write a-1's older record back, then the newer one: the upsert touching a row twice fails).
    with engine.begin() as c:
        binder.write(c, [bound(1, "AAPL", "-3"), bound(3, "AAPL")])
        binder.write(c, [bound(1, "AAPL", "-4")])
        binder.write(c, [bound(4, "AAPL")])
    with Session(engine) as s:
        stored = {t.snaptrade_activity_id: t.amount for t in s.exec(select(BrokerageTransaction))}
    assert stored == {"a-1": Decimal("-4"), "a-2": Decimal("-2"), "a-3": Decimal("-2"), "a-4": Decimal("-2")}


def test_postgresql_copy_page_write_stores_what_sqlalchemy_stores_converting_nothing_in_python(engine):
    """The COPY page write hands psycopg the normalizer's own objects, and what it stores equals what a plain
    SQLAlchemy insert of the same row stores: every column, exact decimals of 38 digits, the JSON record, and
    the rounding NUMERIC(38, 18) applies to a 19th decimal place."""
    from datetime import UTC, datetime

    from core.ingest import binder as binding
    from tests.factories import make_account, make_trader

    if engine.dialect.name != "postgresql":
        pytest.skip("the COPY page write is PostgreSQL's")
    writer = binding.binder_for(engine.dialect)
    with Session(engine, expire_on_commit=False) as s:
        _, connection, copied = make_trader(s)
        inserted = make_account(s, connection)
    raw = {"id": "a-1", "type": "BUY", "trade_date": "2024-03-22T10:00:00Z", "settlement_date": "2024-03-25",
           "units": "0.000000000000000001", "price": "12345678901234567890.123456789012345678",
           "amount": "-99999999999999999999.999999999999999999", "fee": "0.1234567890123456789", "fx_rate": None,
           "currency": {"code": "USD"}, "symbol": {"symbol": "AAPL", "id": "s1"}, "big": 12345678901234567890123,
           "option_symbol": {"ticker": "AAPL  261218C00240000"}, "description": "Bought « ünïcode » \\ \"q\""}  # fmt: skip
    now = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)
    row = _page_row(writer, raw, now, user_id=copied.user_id, account_id=copied.id)
    bound = writer.bind(row)
    assert all(v is row[name] for name, v in zip(writer.names, bound, strict=True)), "a value was converted"
    with engine.begin() as c:
        writer.write(c, [bound])
        c.execute(sa.insert(binding.T), [{**row, "account_id": inserted.id}])
    with Session(engine) as s:
        a, b = (s.exec(select(BrokerageTransaction).where(BrokerageTransaction.account_id == acc.id)).one()
                for acc in (copied, inserted))  # fmt: skip
    skip = {"id", "account_id"}
    assert {k: v for k, v in a.model_dump().items() if k not in skip} == {
        k: v for k, v in b.model_dump().items() if k not in skip
    }
    assert a.price == Decimal("12345678901234567890.123456789012345678") and a.quantity == Decimal("1E-18")
    assert a.fee == Decimal("0.123456789012345679")  # NUMERIC(38, 18) rounds the 19th place, as it always did
    assert a.raw["big"] == 12345678901234567890123 and a.raw["description"] == raw["description"]
