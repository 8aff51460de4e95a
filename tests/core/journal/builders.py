"""Builders shared by the journal tests: Fill records with terse arguments and the days they fall on."""

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
