"""The stored journal: builds round trips, open positions, lots and unplaceable activities from the stored
activities of chosen (account, instrument) pairs and replaces those pairs' rows, and the dirty marks that
say which pairs need it. Callers commit (core.journal.upkeep), so a rebuild is visible whole or not at all.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.journal.fills import POSITION_TYPES, UNMODELLED_TYPES, Unplaceable, fill_from_row, row_instrument
from core.journal.trips import JournalResult, build
from core.storage.models import (
    BrokerageAccount,
    BrokeragePosition,
    BrokerageTransaction,
    JournalDirtyPair,
    JournalOpenLot,
    JournalPosition,
    JournalRoundTrip,
    JournalUnplaceable,
    utcnow,
)

log = logging.getLogger("tradistry.journal")

T = BrokerageTransaction.__table__
DIRTY = JournalDirtyPair.__table__
DERIVED = (
    JournalRoundTrip.__table__,
    JournalPosition.__table__,
    JournalOpenLot.__table__,
    JournalUnplaceable.__table__,
)
# Past this many dirty pairs one pass over the account's rows beats a lookup per instrument.
_FULL_READ_ABOVE = 400
_CHUNK = 500  # keys per IN list
_READ_TYPES = sorted(POSITION_TYPES | UNMODELLED_TYPES)


def pair_key(row: Any) -> str:
    """The pair a stored row belongs to: its instrument, or "" when it names none (migration 0006's rule)."""
    return row_instrument(row) or ""


# --------------------------------------------------------------------------- dirty marks


def mark_pairs_dirty(session: Session, account_id: int, keys: Iterable[str]) -> None:
    """Mark pairs for the next upkeep, as the triggers do (used when the broker's positions change a flag)."""
    rows = [{"account_id": account_id, "pair_key": key, "generation": 1} for key in sorted(set(keys))]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DIRTY)
    upsert = ins.on_conflict_do_update(
        index_elements=["account_id", "pair_key"], set_={"generation": DIRTY.c.generation + 1}
    )
    session.execute(upsert, rows)


def dirty_marks(session: Session, account_id: int) -> dict[str, int]:
    """The account's dirty pairs and the generation of each mark."""
    query = sa.select(DIRTY.c.pair_key, DIRTY.c.generation).where(DIRTY.c.account_id == account_id)
    return dict(session.execute(query).all())


def clear_marks(session: Session, account_id: int, seen: dict[str, int]) -> None:
    """Clear the marks a rebuild has seen; a pair marked again meanwhile (a higher generation) stays dirty."""
    if seen:
        session.execute(
            sa.delete(DIRTY).where(
                DIRTY.c.account_id == account_id,
                DIRTY.c.pair_key == sa.bindparam("key"),
                DIRTY.c.generation == sa.bindparam("gen"),
            ),
            [{"key": key, "gen": gen} for key, gen in seen.items()],
        )


# --------------------------------------------------------------------------- reading activities

_COLUMNS = (
    T.c.snaptrade_activity_id,
    T.c.transaction_type,
    T.c.symbol,
    T.c.security_type,
    T.c.option_ticker,
    T.c.option_action,
    T.c.quantity,
    T.c.price,
    T.c.fee,
    T.c.currency,
    T.c.trade_date,
    T.c.trade_timestamp,
)


@dataclass(slots=True)
class _Row:
    """The columns fill_from_row reads, and of `raw` only what decides an option's multiplier."""

    snaptrade_activity_id: str
    transaction_type: str
    symbol: str | None
    security_type: str | None
    option_ticker: str | None
    option_action: str | None
    quantity: Any
    price: Any
    fee: Any
    currency: str | None
    trade_date: Any
    trade_timestamp: str | None
    raw: dict | None


def _mini_flag(dialect: str) -> Any:
    """The JSON type of raw.option_symbol.is_mini_option ("true", "false", "null", another, or NULL when
    absent), read in SQL for option rows only: the raw record itself never leaves the database."""
    is_option = sa.or_(T.c.security_type == "option", T.c.option_ticker.is_not(None))
    if dialect == "postgresql":
        value = sa.func.jsonb_typeof(sa.func.jsonb_extract_path(T.c.raw, "option_symbol", "is_mini_option"))
        text = sa.func.jsonb_extract_path_text(T.c.raw, "option_symbol", "is_mini_option")
        flag = sa.case((value == "boolean", text), else_=value)  # "true" / "false", or the type's name
    else:
        flag = sa.func.json_type(T.c.raw, "$.option_symbol.is_mini_option")  # true, false, null, integer, …
    return sa.case((is_option, flag), else_=None).label("mini")


_MINI = {"true": True, "false": False, "null": None, None: None}


def _row(record: Any) -> _Row:
    *values, mini = record
    # Rebuilt as option_multiplier expects it: an unusual value stays unusual (an unknown multiplier).
    raw = {"option_symbol": {"is_mini_option": _MINI.get(mini, mini)}} if mini is not None else None
    return _Row(*values, raw=raw)


def _read_rows(session: Session, account: BrokerageAccount, keys: set[str] | None) -> list[_Row]:
    """The account's rows of these pairs (all its rows when keys is None), whatever their type."""
    dialect = session.get_bind().dialect.name
    # Only rows fill_from_row may turn into something: cash rows (dividends, fees, deposits) never do.
    base = sa.select(*_COLUMNS, _mini_flag(dialect)).where(T.c.transaction_type.in_(_READ_TYPES))
    if keys is None or len(keys) > _FULL_READ_ABOVE:
        rows = [_row(r) for r in session.execute(base.where(T.c.account_id == account.id))]
        return rows if keys is None else [r for r in rows if pair_key(r) in keys]
    found: dict[str, _Row] = {}
    named = sorted(k for k in keys if k)
    for i in range(0, len(named), _CHUNK):
        chunk = named[i : i + _CHUNK]
        # Each through its partial index: (account_id, symbol) of non-option rows (migration 0008), and
        # (account_id, option_ticker); neither reads the user's other accounts nor the other kind of row.
        by_symbol = base.where(T.c.account_id == account.id, T.c.symbol.in_(chunk), T.c.option_ticker.is_(None))
        by_option = base.where(T.c.account_id == account.id, T.c.option_ticker.in_(chunk))
        for query in (by_symbol, by_option):
            for record in session.execute(query):
                found[record.snaptrade_activity_id] = _row(record)
    if "" in keys:
        nameless = base.where(
            T.c.user_id == account.user_id,
            T.c.transaction_type.in_(sorted(POSITION_TYPES)),  # without an instrument only these are listed
            T.c.account_id == account.id,
            T.c.option_ticker.is_(None),
            sa.or_(T.c.symbol.is_(None), T.c.security_type == "option"),
        )
        for record in session.execute(nameless):
            found[record.snaptrade_activity_id] = _row(record)
    return [r for r in found.values() if pair_key(r) in keys]


def broker_shorts(session: Session, account: BrokerageAccount) -> frozenset[tuple[str, str]]:
    """(account, instrument) pairs the broker last reported short: their sells from flat are real shorts."""
    P = BrokeragePosition.__table__.c
    query = sa.select(P.instrument, P.units).where(P.account_id == account.id)
    return frozenset((account.snaptrade_account_id, i) for i, units in session.execute(query) if units < 0)


# --------------------------------------------------------------------------- rebuilding


@dataclass(frozen=True, slots=True)
class RebuildCounts:
    pairs: int
    activities: int
    round_trips: int
    positions: int
    unplaceable: int


def rebuild_pairs(session: Session, account: BrokerageAccount, keys: set[str] | None) -> RebuildCounts:
    """Replace the journal rows of these pairs of the account (every pair when keys is None) by a fresh
    build from its stored activities. No commit: the caller's transaction makes it visible whole."""
    rows = _read_rows(session, account, keys)
    key_of = {r.snaptrade_activity_id: pair_key(r) for r in rows}
    symbols: dict[str, str] = {}
    for r in rows:
        key = key_of[r.snaptrade_activity_id]
        if r.symbol and (key not in symbols or r.symbol < symbols[key]):
            symbols[key] = r.symbol  # the least: the same whatever order the rows come in
    items = [f for f in (fill_from_row(r, account=account.snaptrade_account_id) for r in rows) if f is not None]
    result = build(items, broker_shorts(session, account))
    values = _stored_values(account, result, key_of, symbols, _flagged_before(session, account))
    for table in DERIVED:
        where = table.c.account_id == account.id
        if keys is None:
            session.execute(sa.delete(table).where(where))
        else:
            for chunk in _chunks(sorted(keys)):
                session.execute(sa.delete(table).where(where, table.c.pair_key.in_(chunk)))
        if values[table.name]:
            session.execute(sa.insert(table), values[table.name])
    return RebuildCounts(
        pairs=len(set(key_of.values())) if keys is None else len(keys),
        activities=len(rows),
        round_trips=len(result.round_trips),
        positions=len(result.positions),
        unplaceable=len(values[JournalUnplaceable.__tablename__]),
    )


def _flagged_before(session: Session, account: BrokerageAccount) -> dict[tuple, Any]:
    """When each unplaceable activity of these pairs was first flagged: a rebuild keeps that time."""
    U = JournalUnplaceable.__table__.c
    query = sa.select(U.activity_id, U.reason, U.flagged_at).where(U.account_id == account.id)
    found = {(a, r): at for a, r, at in session.execute(query)}
    return found  # few rows per account: not narrowed by pair


def _chunks(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(keys), _CHUNK):
        yield keys[i : i + _CHUNK]


def _stored_values(account: BrokerageAccount, result: JournalResult, key_of: dict[str, str],
                   symbols: dict[str, str], flagged: dict[tuple, Any]) -> dict[str, list[dict]]:  # fmt: skip
    ids = {"user_id": account.user_id, "account_id": account.id}
    trips, positions, lots, unplaceable = [], [], [], []
    seq: dict[tuple, int] = defaultdict(int)
    for rt in result.round_trips:  # per book, still in engine order (build sorts by opened_on, stably)
        book = (rt.instrument, rt.currency)
        trips.append({**ids, "pair_key": rt.instrument, "seq": seq[book], "instrument": rt.instrument,
                      "symbol": symbols.get(rt.instrument), "currency": rt.currency, "direction": rt.direction,
                      "status": rt.status, "opened_on": rt.opened_on, "closed_on": rt.closed_on,
                      "quantity": rt.quantity, "gross_pnl": rt.gross_pnl, "fees": rt.fees, "net_pnl": rt.net_pnl,
                      "flags": list(rt.flags), "counts_in_metrics": rt.counts_in_metrics,
                      "activity_ids": list(rt.activities)})  # fmt: skip
        seq[book] += 1
    for position in result.positions:
        key = position.instrument
        positions.append({**ids, "pair_key": key, "instrument": key, "symbol": symbols.get(key),
                          "currency": position.currency, "quantity": position.quantity,
                          "cost_basis": position.cost_basis})  # fmt: skip
        lots.extend({**ids, "pair_key": key, "instrument": key, "currency": position.currency, "seq": i,
                     "activity_id": lot.activity_id, "opened_on": lot.opened_on, "quantity": lot.quantity,
                     "cost": lot.cost} for i, lot in enumerate(position.lots))  # fmt: skip
    now = utcnow()
    seen: set[tuple[str, str]] = set()
    for u in result.unplaceable:
        if (u.activity_id, u.reason) in seen:
            continue
        seen.add((u.activity_id, u.reason))
        unplaceable.append({**ids, "pair_key": _unplaceable_key(u, key_of), "activity_id": u.activity_id,
                            "instrument": u.instrument, "currency": u.currency, "transaction_type": u.type,
                            "trade_date": u.trade_date, "reason": u.reason,
                            "flagged_at": flagged.get((u.activity_id, u.reason), now)})  # fmt: skip
    return {
        JournalRoundTrip.__tablename__: trips,
        JournalPosition.__tablename__: positions,
        JournalOpenLot.__tablename__: lots,
        JournalUnplaceable.__tablename__: unplaceable,
    }


def _unplaceable_key(u: Unplaceable, key_of: dict[str, str]) -> str:
    # An activity without a usable instrument (an option event on a stock row) stays with the row's pair.
    return key_of.get(u.activity_id, u.instrument or "")
