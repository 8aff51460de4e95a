"""The broker's side of the journal: each account's positions as SnapTrade reports them, stored with the
time they were read, and per account how many holdings the imported history fails to explain.

A failed read changes no position: the last good one stays, with its time, and the failure is recorded
beside it so pages can show both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.accounts.connections import SnapTradeIdentity
from core.ingest.normalize import option_ticker_of
from core.journal.marks import mark_pairs_dirty
from core.journal.reconcile import BrokerPosition, ReconciledPosition, reconcile
from core.journal.trips import OpenPosition
from core.snaptrade.client import SnapTradeClient, SnapTradeError
from core.snaptrade.values import decimal_or_none
from core.storage.models import (
    BrokerageAccount,
    BrokeragePosition,
    JournalPosition,
    JournalReconciliation,
    utcnow,
)

log = logging.getLogger("tradistry.journal")

P = BrokeragePosition.__table__


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """One instrument the broker holds in an account, named as the activities name it."""

    instrument: str
    symbol: str | None  # an option's underlying
    kind: str | None
    currency: str | None
    units: Decimal


@dataclass(frozen=True, slots=True)
class PositionsRead:
    """The outcome of reading one account's positions."""

    account_id: int
    ok: bool
    read_at: datetime | None  # of the last good read (this one when ok)
    error: str | None
    positions: int  # instruments stored from this read (0 when it failed)


def held_positions(results: Iterable[Any]) -> list[HeldPosition]:
    """SnapTrade's positions, summed per (instrument, currency); an entry without a name or units is left
    out (and logged): it cannot be compared with anything."""
    totals: dict[tuple[str, str | None], HeldPosition] = {}
    for entry in results:
        instrument = entry.get("instrument") if isinstance(entry, dict) else None
        if not isinstance(instrument, dict):
            log.warning("positions: an entry without an instrument was left out")
            continue
        kind = instrument.get("kind") if isinstance(instrument.get("kind"), str) else None
        name, symbol = _names(instrument, kind)
        units = decimal_or_none(entry.get("units"))
        if not name or units is None:
            log.warning("positions: a %s entry without a symbol or units was left out", kind or "position")
            continue
        currency = entry.get("currency") or instrument.get("currency")
        currency = currency if isinstance(currency, str) else None
        key = (name, currency)
        before = totals.get(key)
        total = units if before is None else before.units + units
        totals[key] = HeldPosition(instrument=name, symbol=symbol, kind=kind, currency=currency, units=total)
    return sorted(totals.values(), key=lambda h: (h.instrument, h.currency or ""))


def _names(instrument: dict, kind: str | None) -> tuple[str | None, str | None]:
    if kind == "option":
        underlying = instrument.get("underlying") if isinstance(instrument.get("underlying"), dict) else {}
        # The position's option fields in the shape of an activity's option_symbol: one naming rule for both.
        ticker = option_ticker_of({
            "ticker": instrument.get("symbol"),
            "option_type": instrument.get("option_type"),
            "strike_price": instrument.get("strike_price"),
            "expiration_date": instrument.get("expiration_date"),
            "underlying_symbol": underlying,
        })  # fmt: skip
        return ticker, underlying.get("symbol") if isinstance(underlying.get("symbol"), str) else None
    symbol = instrument.get("symbol")
    return (symbol, symbol) if isinstance(symbol, str) and symbol else (None, None)


def read_account_positions(session: Session, client: SnapTradeClient, identity: SnapTradeIdentity,
                           account: BrokerageAccount) -> PositionsRead:  # fmt: skip
    """Read one account's positions from SnapTrade (one request) and store them; commits.

    A SnapTrade failure is recorded and returned, never raised; the last good positions stay."""
    now = utcnow()
    try:
        results = client.account_positions(
            identity.snaptrade_user_id, identity.user_secret, account.snaptrade_account_id
        )
    except SnapTradeError as exc:
        log.info("positions of account %s unavailable: %s", account.id, exc)
        state = _state(session, account)
        state.positions_attempted_at, state.positions_error = now, str(exc)
        session.add(state)
        session.commit()
        return PositionsRead(account.id, False, state.positions_read_at, str(exc), 0)
    held = held_positions(results)
    store_positions(session, account, held, now)
    session.commit()
    return PositionsRead(account.id, True, now, None, len(held))


def store_positions(session: Session, account: BrokerageAccount, held: list[HeldPosition], read_at: datetime) -> None:
    """Replace the account's broker positions by this read and recount what the history fails to explain
    (no commit). Instruments whose short status changed are marked dirty: whether a sell from flat is a
    real short depends on it."""
    before = _shorts(session, account.id)
    session.execute(sa.delete(P).where(P.c.account_id == account.id))
    if held:
        session.execute(sa.insert(P), [{"user_id": account.user_id, "account_id": account.id, "instrument": h.instrument,
                                        "symbol": h.symbol, "kind": h.kind, "currency": h.currency, "units": h.units,
                                        "read_at": read_at} for h in held])  # fmt: skip
    mark_pairs_dirty(session, account.id, before ^ {h.instrument for h in held if h.units < 0})
    state = _state(session, account)
    state.positions_read_at = state.positions_attempted_at = read_at
    state.positions_error = None
    session.add(state)
    session.flush()
    refresh_reconciliations(session, [account])  # again after the upkeep, if a short changed a round trip


def positions_ever_attempted(session: Session, account_id: int) -> bool:
    state = session.get(JournalReconciliation, account_id)
    return state is not None and state.positions_attempted_at is not None


def _shorts(session: Session, account_id: int) -> set[str]:
    query = sa.select(P.c.instrument, P.c.units).where(P.c.account_id == account_id)
    return {instrument for instrument, units in session.execute(query) if units < 0}


def _state(session: Session, account: BrokerageAccount) -> JournalReconciliation:
    state = session.get(JournalReconciliation, account.id)
    return state if state is not None else JournalReconciliation(account_id=account.id, user_id=account.user_id)


# --------------------------------------------------------------------------- reconciliation


def reconciled_positions(session: Session, account: BrokerageAccount) -> list[ReconciledPosition]:
    """The history's holdings beside the broker's last good read (engine.reconcile), for one account."""
    history = session.execute(sa.select(JournalPosition).where(JournalPosition.account_id == account.id)).scalars()
    positions = [OpenPosition(account=account.snaptrade_account_id, instrument=p.instrument, currency=p.currency,
                              quantity=p.quantity, cost_basis=p.cost_basis, lots=()) for p in history]  # fmt: skip
    query = sa.select(P.c.instrument, P.c.currency, P.c.units).where(P.c.account_id == account.id)
    broker = [BrokerPosition(account=account.snaptrade_account_id, instrument=i, currency=c, units=u)
              for i, c, u in session.execute(query)]  # fmt: skip
    return reconcile(positions, broker)


def refresh_reconciliations(session: Session, accounts: Iterable[BrokerageAccount]) -> None:
    """Count each account's holdings the history does not explain (no commit). None before a good read."""
    now = utcnow()
    for account in accounts:
        state = _state(session, account)
        if state.positions_read_at is None:
            differences = None
        else:
            differences = sum(1 for row in reconciled_positions(session, account) if row.status != "matched")
        if differences and not state.differences:
            state.differs_since = now
        elif not differences:
            state.differs_since = None
        state.differences, state.checked_at = differences, now
        session.add(state)
