"""Builders shared by the journal tests: Fill records with terse arguments and the days they fall on, a
snapshot of the stored journal, and the engine run from scratch over the stored activities."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from core.journal import engine as je
from core.journal.engine import Fill, RoundTrip

D = Decimal
OPT = "AAPL  261218C00240000"
PUT = "AAPL  261218P00200000"


def day(n: int) -> date:
    return date(2024, 1, 1) + timedelta(days=n - 1)


def fill(aid, kind, units=None, price=None, on=1, *, fee=None, instrument="AAPL", account="acc-1", currency="USD",
         instant=None, action=None, option=False, crypto=False, multiplier=None) -> Fill:  # fmt: skip
    def dec(value):
        return D(str(value)) if isinstance(value, int | str) else value

    return Fill(
        activity_id=aid,
        account=account,
        instrument=instrument,
        currency=currency,
        type=kind,
        trade_date=day(on) if isinstance(on, int) else on,
        option_action=action,
        instant=instant,
        units=dec(units),
        price=dec(price),
        fee=dec(fee),
        multiplier=D(multiplier) if multiplier is not None else (D(100) if option else D(1)),
        is_option=option,
        is_crypto=crypto,
    )


def opt(aid, kind, units, price=None, on=1, **kw) -> Fill:
    return fill(aid, kind, units, price, on, instrument=kw.pop("instrument", OPT), option=True, **kw)


def one(fills, broker_short=False):
    return je.build_instrument(fills, broker_short=broker_short)


def nums(rt: RoundTrip):
    return (rt.gross_pnl, rt.fees, rt.net_pnl)


# ---------------------------------------------------------------------------------------------------------
# The stored journal, and the engine run from scratch over the stored activities (a reference for it)
# ---------------------------------------------------------------------------------------------------------

JOURNAL_TABLES = ("journal_round_trips", "journal_positions", "journal_open_lots", "journal_unplaceable")


def snapshot(session, user_id: int) -> dict[str, list[tuple]]:
    """Every stored journal row of the user, without ids (they change with each rebuild), in a fixed order."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    out = {}
    for name in JOURNAL_TABLES:
        table = SQLModel.metadata.tables[name]
        columns = [c for c in table.c if c.name not in ("id", "flagged_at")]
        rows = session.execute(sa.select(*columns).where(table.c.user_id == user_id)).all()
        out[name] = sorted((tuple(r) for r in rows), key=lambda r: tuple((v is None, str(v)) for v in r))
    return out


def engine_journal(session, user_id: int):
    """engine.build over the user's stored activities, read as ORM rows with their whole raw JSON: a path
    that shares nothing with core.journal.store but the engine itself."""
    from sqlmodel import select

    from core.journal.fills import fill_from_row
    from core.journal.trips import build
    from core.storage.models import BrokerageAccount, BrokeragePosition, BrokerageTransaction

    accounts = {
        a.id: a.snaptrade_account_id
        for a in session.exec(select(BrokerageAccount).where(BrokerageAccount.user_id == user_id))
    }
    rows = session.exec(select(BrokerageTransaction).where(BrokerageTransaction.user_id == user_id)).all()
    items = [f for r in rows if (f := fill_from_row(r, account=accounts[r.account_id])) is not None]
    shorts = frozenset((accounts[p.account_id], p.instrument)
                       for p in session.exec(select(BrokeragePosition).where(BrokeragePosition.user_id == user_id))
                       if p.units < 0)  # fmt: skip
    return build(items, shorts)


def assert_journal_is_current(session, user_id: int) -> None:
    """No pair left dirty, and what is stored is what the engine makes of every stored activity."""
    from core.journal.jsonout import trades_json
    from core.reads.journal import trades_report

    assert dirty_count(session, user_id) == 0
    assert trades_report(session, user_id) == trades_json(engine_journal(session, user_id).round_trips)


def dirty_count(session, user_id: int) -> int:
    import sqlalchemy as sa

    return session.execute(sa.text("SELECT count(*) FROM journal_dirty_pairs d JOIN brokerage_accounts a "
                                   "ON a.id = d.account_id WHERE a.user_id = :u"), {"u": user_id}).scalar()  # fmt: skip


def journal_insert_parameter_sets(monkeypatch, work) -> int:
    """How many parameter sets SQLAlchemy builds for INSERTs into JOURNAL_TABLES (the round trips, positions,
    lots and unplaceable activities; not the daily sums) while `work()` runs: a path that writes through the
    driver, executemany or COPY, builds none."""
    import sqlalchemy as sa
    from sqlalchemy.sql import compiler

    calls = 0
    real = compiler.SQLCompiler.construct_params

    def counting(self, *args, **kwargs):
        nonlocal calls
        statement = getattr(self, "statement", None)
        if isinstance(statement, sa.Insert) and statement.table.name in JOURNAL_TABLES:
            calls += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(compiler.SQLCompiler, "construct_params", counting)
    try:
        work()
    finally:
        monkeypatch.setattr(compiler.SQLCompiler, "construct_params", real)
    return calls
