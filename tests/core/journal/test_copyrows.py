"""core.journal.copyrows: on PostgreSQL a full rebuild writes its rows with a COPY, and what it stores is what
SQLAlchemy's INSERT stores: the same digits of every number (more places than NUMERIC(38, 18) holds, tiny,
huge, negative, NULL), the same JSON, the same instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.journal import copyrows, saved
from core.journal.copyrows import copy_rows
from core.journal.upkeep import rebuild_user
from core.storage import jsonexact
from tests import factories as f
from tests.core.journal.builders import assert_journal_is_current, journal_insert_parameter_sets, snapshot
from tests.core.journal.test_upkeep import insert

AWKWARD = [Decimal("1E-12"), Decimal("123456789012.123456789"), Decimal("-0.5"), None, Decimal("1E+30"),
           Decimal("0.1000000000000000000000000000001"), Decimal("-98765432109876543210.000000000000000000001"),
           Decimal("0"), Decimal("2.50")]  # fmt: skip


def postgresql_only(engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's: SQLite writes through the driver's executemany (copyrows.insert_rows)")


def stored_text(session, table: sa.Table) -> list[tuple]:
    """Every row of the table as the server prints it (a NUMERIC with its scale, JSONB's text), without ids."""
    columns = [sa.cast(c, sa.Text) for c in table.c if c.name != "id"]
    return sorted(tuple(r) for r in session.execute(sa.select(*columns)))


def awkward_rows(user_id: int, account_id: int) -> dict[str, list[dict]]:
    ids = {"user_id": user_id, "account_id": account_id}
    texts = ['a"quote', "back\\slash", "tab\there", "new\nline", "ünï©ødé", "\\N", ""]
    day = date(2024, 1, 1)
    lots = [{**ids, "pair_key": f"K{i}", "instrument": "K", "currency": None if i % 2 else "USD", "seq": i,
             "activity_id": texts[i % len(texts)] + str(i), "opened_on": day + timedelta(days=i),
             "quantity": q if q is not None else Decimal("-1E-30"), "cost": q} for i, q in enumerate(AWKWARD)]  # fmt: skip
    trips = [{**ids, "pair_key": f"K{i}", "seq": i, "instrument": "K", "symbol": None if i % 3 else texts[i % 7],
              "currency": "USD", "direction": "long", "status": "closed" if q is not None else "open",
              "opened_on": day, "closed_on": None if q is None else day + timedelta(days=i),
              "on_date": day + timedelta(days=i), "outcome": "win", "quantity": abs(q or Decimal(1)),
              "gross_pnl": q, "fees": Decimal("0.000000000000000000001"), "net_pnl": q and -q,
              "flags": texts[: i % 4], "counts_in_metrics": bool(i % 2), "activity_ids": texts[i % 7 :]}
             for i, q in enumerate(AWKWARD)]  # fmt: skip
    states = [{"account_id": account_id, "pair_key": f"K{i}",
               "state": {"units": q, "all": [str(q), q], "text": texts[i % 7]}} for i, q in enumerate(AWKWARD)]  # fmt: skip
    flagged = datetime(2024, 3, 10, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    unplaceable = [{**ids, "pair_key": f"K{i}", "activity_id": f"u{i}", "instrument": None, "currency": None,
                    "transaction_type": "SPLIT", "trade_date": day, "reason": texts[i % 7],
                    "flagged_at": flagged + timedelta(hours=i)} for i in range(len(AWKWARD))]  # fmt: skip
    return {saved.LOTS.name: lots, saved.TRIPS.name: trips, saved.STATES.name: states,
            saved.UNPLACEABLE.name: unplaceable}  # fmt: skip


def test_copied_rows_are_stored_exactly_as_sqlalchemy_inserts_them(engine):
    postgresql_only(engine)
    tables = (saved.LOTS, saved.TRIPS, saved.STATES, saved.UNPLACEABLE)
    with Session(engine) as s:
        user, _, acct = f.make_trader(s)
        rows = awkward_rows(user.id, acct.id)
        copied = {}
        for table in tables:
            assert copy_rows(s.connection(), table, rows[table.name]), table.name
            copied[table.name] = stored_text(s, table)
            s.execute(sa.delete(table))
        for table in tables:
            s.execute(sa.insert(table), rows[table.name])
            assert stored_text(s, table) == copied[table.name], table.name

        costs = s.execute(sa.select(saved.LOTS.c.cost).order_by(saved.LOTS.c.seq)).scalars().all()
        assert costs == AWKWARD
        texts = s.execute(sa.select(sa.cast(saved.LOTS.c.cost, sa.Text)).order_by(saved.LOTS.c.seq)).scalars().all()
        assert texts == [None if q is None else format(q, "f") for q in AWKWARD]  # every digit, and the scale
        state = s.execute(sa.select(saved.STATES.c.state).where(saved.STATES.c.pair_key == "K1")).scalar()
        assert state["units"] == Decimal("123456789012.123456789") and state["all"][1] == state["units"]
        at = s.execute(
            sa.select(saved.UNPLACEABLE.c.flagged_at).where(saved.UNPLACEABLE.c.activity_id == "u0")
        ).scalar()
        assert at == datetime(2024, 3, 10, 6, 30, 15, 123456, tzinfo=UTC)
        assert jsonexact.loads(jsonexact.dumps(state)) == state


def test_a_full_rebuild_on_postgresql_copies_its_rows_and_stores_what_sqlalchemy_would(engine, monkeypatch):
    """A rebuild's round trips, positions, lots and unplaceable activities go through COPY (no parameter set
    built per row), of numbers with more places than the activities' NUMERIC(38, 18): the journal is the
    engine's, and the same, digit for digit, as the one SQLAlchemy's INSERTs store."""
    postgresql_only(engine)
    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s)
        day = date(2024, 1, 1)
        prices = [Decimal("0.000000000000000001"), Decimal("98765432109876543.123456789012345678"), Decimal("3.3")]
        rows = [f.transaction_row(acct, transaction_type=("BUY", "BUY", "SELL")[i % 3], symbol=f"S{i % 7}",
                                  security_type="cs", quantity=Decimal("0.000000000001") * (1 + i) * (-1 if i % 3 == 2 else 1),
                                  price=prices[i % 3] + i, fee=Decimal("0.000000000000000001") * i,
                                  trade_date=day + timedelta(days=i)) for i in range(120)]  # fmt: skip
        rows.append(f.transaction_row(acct, transaction_type="SPLIT", symbol=None, security_type="cs",
                                      quantity=Decimal(2), price=None, trade_date=day))  # fmt: skip
        insert(s, rows)
        calls = journal_insert_parameter_sets(monkeypatch, lambda: rebuild_user(s, user.id))
        assert calls == 0, f"{calls} parameter sets built"
        assert s.execute(sa.text("SELECT count(*) FROM journal_open_lots")).scalar() > 0
        assert_journal_is_current(s, user.id)
        tables = [saved.TRIPS, saved.POSITIONS, saved.LOTS, saved.STATES]
        copied = snapshot(s, user.id), {t.name: stored_text(s, t) for t in tables}

        monkeypatch.setattr(copyrows, "copy_rows", lambda *args: False)  # SQLAlchemy's INSERTs instead
        rebuild_user(s, user.id)
        assert (snapshot(s, user.id), {t.name: stored_text(s, t) for t in tables}) == copied
