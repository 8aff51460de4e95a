"""core.ingest.binder: the page upsert's rows bound as SQLAlchemy would bind them, SQLite's multi-row statements
within the bound-variable limit, and PostgreSQL's unnest() statement keeping the columns' limits."""

from __future__ import annotations

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
        processor = table.c[name].type._cached_bind_processor(dialect)
        expected = processor(original) if processor and original is not None else original
        assert type(value) is type(expected), name
        if hasattr(expected, "obj"):  # psycopg's Jsonb wrapper compares by identity
            value, expected = value.obj, expected.obj
        assert value == expected, name
    assert values["trade_date"] == (date(2024, 3, 22) if dialect.name == "postgresql" else "2024-03-22")


def test_postgresql_page_statement_still_enforces_the_columns_limits(engine):
    """PostgreSQL writes a page as one unnest() of column arrays, cast without length limits (an explicit
    cast to varchar(n) would cut a value short silently): a value too long for its column still fails
    the statement, as a plain INSERT would, and nothing of the page is written."""
    from datetime import UTC, datetime

    from core.ingest import binder as binding
    from tests.factories import make_trader

    if engine.dialect.name != "postgresql":
        pytest.skip("the unnest() page statement is PostgreSQL's")
    binder = binding.binder_for(engine.dialect)
    with Session(engine, expire_on_commit=False) as s:
        user, _, account = make_trader(s)

    def bound(i: int, symbol: str):
        raw = {"id": f"a-{i}", "type": "BUY", "trade_date": "2024-03-22T10:00:00Z", "units": "1", "price": "2",
               "amount": "-2", "currency": {"code": "USD"}, "symbol": {"symbol": "AAPL", "id": "s1"}}  # fmt: skip
        return binder.bind(_page_row(binder, raw, datetime.now(UTC), user_id=user.id, account_id=account.id,
                                     symbol=symbol))  # fmt: skip

    with pytest.raises(sa.exc.DataError, match="too long"), engine.begin() as c:
        binder.write(c, [bound(1, "AAPL"), bound(2, "X" * 65)])
    with engine.begin() as c:
        binder.write(c, [bound(1, "AAPL"), bound(2, "X" * 64)])
    with Session(engine) as s:
        assert sorted(t.symbol for t in s.exec(select(BrokerageTransaction))) == ["AAPL", "X" * 64]
