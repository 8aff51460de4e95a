"""The pairs' stored results: loading a continued pair's state and the lots its new rows can consume, deleting a
rebuilt pair's rows, and writing what was built (all of it after a rebuild; only what changed after a
continuation)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from core.journal import daily, state
from core.journal.build import Built, books_by_pair
from core.journal.copyrows import insert_rows
from core.journal.exact import EXACT_CONTEXT, ZERO
from core.journal.fills import (
    OPTION_EVENT_TYPES,
    SPLIT_TYPES,
    Fill,
    Unplaceable,
)
from core.journal.rows import chunks, key_chunks, key_in
from core.journal.state import PairState
from core.journal.wanted import list_first, wanted_rows
from core.storage import jsonexact
from core.storage.models import (
    BrokerageAccount,
    JournalOpenLot,
    JournalPairState,
    JournalPosition,
    JournalRoundTrip,
    JournalUnplaceable,
    utcnow,
)

log = logging.getLogger("tradistry.journal")

STATES = JournalPairState.__table__
TRIPS = JournalRoundTrip.__table__
POSITIONS = JournalPosition.__table__
LOTS = JournalOpenLot.__table__
UNPLACEABLE = JournalUnplaceable.__table__


def _activity_count(session: Session) -> Any:
    # Counted in SQL: a long-open round trip lists thousands of activities, and a continuation only adds some.
    ids = TRIPS.c.activity_ids
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.jsonb_array_length(ids)
    return sa.func.json_array_length(ids)


def _appended(dialect: Any) -> Any:
    """An open round trip's stored activity list with the JSON list bound as b_new appended, in SQL: the
    same text (SQLite) or value (PostgreSQL's JSONB) as writing the whole list, without sending it."""
    new = sa.bindparam("b_new", type_=sa.Text)
    if dialect.name == "postgresql":
        return TRIPS.c.activity_ids.op("||")(sa.cast(new, postgresql.JSONB))
    text = sa.type_coerce(TRIPS.c.activity_ids, sa.Text)
    # '["a","b"]' and '["c"]' give '["a","b","c"]', as the serializer writes the whole list.
    joined = sa.func.substr(text, 1, sa.func.length(text) - 1) + "," + sa.func.substr(new, 2)
    return sa.case((new == "[]", text), else_=joined)


def load_states(session: Session, account_id: int, keys: Sequence[str]) -> dict[str, PairState]:
    """The stored states of these pairs with their open round trips, their books holding no lot yet
    (load_lots); a state that does not agree with them is left out (rebuilt)."""
    out: dict[str, PairState] = {}
    dialect = session.get_bind().dialect.name
    for chunk in key_chunks(sorted(keys), dialect):
        opened: dict[str, dict] = defaultdict(dict)
        query = sa.select(TRIPS.c.pair_key, TRIPS.c.instrument, TRIPS.c.currency, TRIPS.c.id, TRIPS.c.seq,
                          TRIPS.c.on_date, _activity_count(session)).where(
            TRIPS.c.account_id == account_id, key_in(TRIPS.c.pair_key, chunk, dialect), TRIPS.c.status == "open"
        )  # fmt: skip
        for key, instrument, currency, *trip in session.execute(query):
            opened[key][(instrument, currency)] = tuple(trip)
        query = sa.select(STATES.c.pair_key, STATES.c.state).where(STATES.c.account_id == account_id,
                                                                   key_in(STATES.c.pair_key, chunk, dialect))  # fmt: skip
        for key, data in session.execute(query):
            if (st := state.load(data, opened.get(key, {}))) is not None:
                out[key] = st
    return out


_WHOLE_BOOK_TYPES = SPLIT_TYPES | OPTION_EVENT_TYPES  # they change or close every lot of the book
# One book's lots in seq order, built once (a continuation runs it per book: no per-call SQL construction).
_LOT_COLUMNS = (LOTS.c.id, LOTS.c.seq, LOTS.c.activity_id, LOTS.c.opened_on, LOTS.c.quantity, LOTS.c.cost)
_BOOK_LOTS = sa.select(*_LOT_COLUMNS).where(
    LOTS.c.account_id == sa.bindparam("account_id"), LOTS.c.pair_key == sa.bindparam("pair_key"),
    LOTS.c.instrument == sa.bindparam("instrument"),
).order_by(LOTS.c.seq)  # fmt: skip
_BOOK_LOTS, _BOOK_LOTS_IN = (
    _BOOK_LOTS.where(LOTS.c.currency.is_(None)),
    _BOOK_LOTS.where(LOTS.c.currency == sa.bindparam("currency")),
)


def _moved(new: list) -> tuple[dict[tuple, Decimal], set[tuple], dict[tuple, int]]:
    """Per book (instrument, currency) of a pair's new items: the units they move, whether one changes or
    closes every lot (a split, an option event), and how many there are. Under the exact context."""
    moved: dict[tuple, Decimal] = defaultdict(Decimal)
    whole: set[tuple] = set()
    items: dict[tuple, int] = defaultdict(int)
    for item in new:
        which = (item.instrument, item.currency)
        items[which] += 1
        if item.type in _WHOLE_BOOK_TYPES:
            whole.add(which)
        elif isinstance(item, Fill) and item.units is not None:
            moved[which] += Decimal(item.units).copy_abs()
    return moved, whole, items


def load_lots(session: Session, account_id: int, pairs: dict[str, tuple[PairState, list]]) -> set[str]:
    """Give the continued pairs' books their stored lots: only the oldest ones their new activities can
    consume (FIFO: lots are consumed from the oldest, at most as many units as the new activities move), or
    all of them when those activities may take the book to flat or past it, or split it. Returns the pairs
    whose lots agree with their stored state (the others are rebuilt).

    A book's live lots are the last `lots` it opened, so their seqs run from `opened - lots` on: one statement
    per chunk of books reads each book's first few by that seq range through (account_id, pair_key, seq),
    instead of a statement per book; a book those do not cover is read on its own (_book_lots)."""
    wanted: dict[tuple, tuple] = {}  # (pair, instrument, currency) -> (first seq, to read, lots, all needed, units)
    with localcontext(EXACT_CONTEXT):
        for key, (st, new) in pairs.items():
            moved, whole, items = _moved(new)
            for (_, instrument, currency), book in st.books.items():
                which = (instrument, currency)
                count = st.lot_info[which][0]
                everything = which in whole or moved.get(which, ZERO) >= abs(book.position)
                first = book.opened - count
                # Enough for most days' pages: an item consumes a lot or two; more is read on its own.
                size = count if everything else min(count, 4 + 2 * items[which])
                wanted[(key, *which)] = (first, size, count, everything, moved.get(which, ZERO))
        found = _lots_by_seq(session, account_id, wanted)
        ok = set(pairs)
        for (key, *which), (first, size, count, everything, need) in wanted.items():
            which = tuple(which)
            rows, complete = _oldest(found.get((key, *which), []), first, size, count, everything, need)
            if rows is None:
                rows, complete = _book_lots(session, account_id, key, which, everything, need)
            if key in ok and not state.attach_lots(pairs[key][0], which, rows, complete=complete):
                ok.discard(key)
    return ok


def _oldest(rows: list, first: int, size: int, count: int, everything: bool, need: Decimal
            ) -> tuple[list | None, bool]:  # fmt: skip
    """What _book_lots would read, from a book's rows of seqs first .. first + size - 1 (None when they are
    not those, or are not all of its `count` lots and do not reach past what the new activities consume)."""
    if [row[1] for row in rows] != list(range(first, first + size)):
        return None, False
    if everything or size == count:
        held = ZERO
        for i, row in enumerate(rows):
            held += row[4].copy_abs()
            if not everything and held > need:
                return rows[: i + 1], False
        return rows, True
    held = ZERO
    for i, row in enumerate(rows):
        held += row[4].copy_abs()
        if held > need:
            return rows[: i + 1], False
    return None, False  # every row read without passing the need: the book's own read decides


_WANTED_BOOKS = (sa.column("key", sa.String), sa.column("instrument", sa.String), sa.column("currency", sa.String),
                 sa.column("lo", sa.Integer), sa.column("hi", sa.Integer))  # fmt: skip


def _lots_by_seq(session: Session, account_id: int, wanted: dict[tuple, tuple]) -> dict[tuple, list]:
    found: dict[tuple, list] = defaultdict(list)
    books = [(*book, first, first + size) for book, (first, size, *_) in wanted.items() if size]
    for chunk in chunks(books):
        values = wanted_rows(session, "wanted", _WANTED_BOOKS, chunk)
        query = sa.select(LOTS.c.pair_key, LOTS.c.instrument, LOTS.c.currency, *_LOT_COLUMNS).select_from(list_first(
            values, LOTS, sa.and_(LOTS.c.account_id == account_id, LOTS.c.pair_key == values.c.key,
                                  LOTS.c.seq >= values.c.lo, LOTS.c.seq < values.c.hi,
                                  LOTS.c.instrument == values.c.instrument,
                                  LOTS.c.currency.is_not_distinct_from(values.c.currency))))  # fmt: skip
        for key, instrument, currency, *row in session.execute(query):
            found[(key, instrument, currency)].append(tuple(row))
    for rows in found.values():
        rows.sort(key=lambda row: row[1])
    return found


def _book_lots(session: Session, account_id: int, key: str, which: tuple, everything: bool, need: Decimal
               ) -> tuple[list, bool]:  # fmt: skip
    """One book's oldest lots, read in seq order until they hold more than `need` units (all of them when
    `everything`, or when none does): (rows, whether they are all of the book's)."""
    instrument, currency = which
    params = {"account_id": account_id, "pair_key": key, "instrument": instrument}
    query = _BOOK_LOTS if currency is None else _BOOK_LOTS_IN
    rows, held = [], ZERO
    result = session.execute(query, {**params, "currency": currency} if currency is not None else params)
    with localcontext(EXACT_CONTEXT):
        for row in result:
            rows.append(tuple(row))
            held += row.quantity.copy_abs()
            if not everything and held > need:
                break
        else:
            everything = True
    result.close()
    return rows, everything


def stores_any(session: Session, account: BrokerageAccount) -> bool:
    """Whether any derived row of the account is stored: an account's first upkeep (after its import) has none
    to keep or delete, and skips asking per pair."""
    return any(session.execute(sa.select(t.c.account_id).where(t.c.account_id == account.id).limit(1)).first()
               for t in (TRIPS, POSITIONS, LOTS, UNPLACEABLE, STATES))  # fmt: skip


def delete_pairs(session: Session, account: BrokerageAccount, keys: Sequence[str]) -> set:
    """Delete the pairs' stored rows (before a rebuild; a continuation writes only what changed:
    store_continued); returns the (currency, day)s of the round trips deleted."""
    affected: set[daily.Day] = set()
    dialect = session.get_bind().dialect.name
    for chunk in key_chunks(keys, dialect):
        where = [TRIPS.c.account_id == account.id, key_in(TRIPS.c.pair_key, chunk, dialect)]
        affected |= set(session.execute(sa.select(TRIPS.c.currency, TRIPS.c.on_date).where(*where)).tuples())
        session.execute(sa.delete(TRIPS).where(*where))
        for table in (POSITIONS, LOTS, STATES, UNPLACEABLE):
            session.execute(sa.delete(table).where(table.c.account_id == account.id,
                                                   key_in(table.c.pair_key, chunk, dialect)))  # fmt: skip
    return affected


def flagged_before(session: Session, account: BrokerageAccount, keys: Sequence[str] | None = None) -> dict[tuple, Any]:
    """When each unplaceable activity of these pairs (all of the account's when None) was first flagged: a
    rebuild keeps that time."""
    U = UNPLACEABLE.c
    query = sa.select(U.activity_id, U.reason, U.flagged_at).where(U.account_id == account.id)
    if keys is None:
        return {(a, r): at for a, r, at in session.execute(query)}
    found = {}
    dialect = session.get_bind().dialect.name
    for chunk in key_chunks(keys, dialect):
        found.update({(a, r): at for a, r, at in session.execute(query.where(key_in(U.pair_key, chunk, dialect)))})
    return found


def store_built(session: Session, account: BrokerageAccount, built: Built, flagged: dict[tuple, Any]) -> set:
    """Insert what was built; returns the (currency, day)s of the round trips inserted."""
    values = _stored_values(account, built, flagged)
    for table in (TRIPS, POSITIONS, LOTS, UNPLACEABLE, STATES):
        insert_rows(session, table, values[table.name], copy=True)
    return {(t["currency"], t["on_date"]) for t in values[TRIPS.name]}


# A continued open round trip's columns its row shares with the stored one, by how it was matched (and its
# account's): not set again, so SQLite does not rewrite their index entries (account_id, pair_key).
_MATCHED = frozenset({"user_id", "account_id", "pair_key", "instrument", "currency", "seq"})


def store_continued(session: Session, account: BrokerageAccount, built: Built, states: dict[str, PairState]) -> set:
    """Store continued pairs, writing only what changed: their new round trips inserted, the open round trip
    each had updated in place (still open, or now closed), the lots consumed deleted by id, the lot partly
    consumed (or changed by a split) updated, the new ones inserted; positions and states replaced (a row
    per book and pair). Returns the (currency, day)s whose daily aggregates change."""
    keys = sorted(states)
    values = _stored_values(account, built, {})
    dialect = session.connection().dialect
    to_json = jsonexact.dumps  # the engine's json_serializer (core.storage.db): the text insert_rows would write
    affected: set[daily.Day] = set()
    updates, inserts = [], []
    opened = {(k, which[0], which[1], trip[1]): trip for k in keys for which, trip in states[k].open_trips.items()}
    for row in values[TRIPS.name]:
        trip = opened.pop((row["pair_key"], row["instrument"], row["currency"], row["seq"]), None)
        if trip is None:
            inserts.append(row)
            affected.add((row["currency"], row["on_date"]))
            continue
        # The stored trip keeps its activities; the row holds the new ones only (state.load): appended.
        updates.append({k: v for k, v in row.items() if k not in _MATCHED} | {"b_id": trip[0],
                       "activity_ids": to_json(row["activity_ids"])})  # fmt: skip
        # An open round trip counts in its day only as a trip: still open on the same day, no day changes.
        if row["status"] != "open" or row["on_date"] != trip[2]:
            affected |= {(row["currency"], trip[2]), (row["currency"], row["on_date"])}
    stale = [{"b_id": trip[0]} for trip in opened.values()]  # not expected: an open trip stays or closes
    affected |= {(currency, trip[2]) for (_, _, currency, _), trip in opened.items()}
    if updates:
        update = sa.update(TRIPS).where(TRIPS.c.id == sa.bindparam("b_id")).values(activity_ids=_appended(dialect))
        session.execute(update, [{**{k: v for k, v in u.items() if k != "activity_ids"}, "b_new": u["activity_ids"]}
                                 for u in updates])  # fmt: skip
    if stale:
        session.execute(sa.delete(TRIPS).where(TRIPS.c.id == sa.bindparam("b_id")), stale)
    for chunk in key_chunks(keys, dialect.name):
        for table in (POSITIONS, STATES):
            session.execute(sa.delete(table).where(table.c.account_id == account.id,
                                                   key_in(table.c.pair_key, chunk, dialect.name)))  # fmt: skip
    _write_lots(session, account, built, states)
    for table, rows in ((TRIPS, inserts), (POSITIONS, values[POSITIONS.name]), (UNPLACEABLE, values[UNPLACEABLE.name]),
                        (STATES, values[STATES.name])):  # fmt: skip
        insert_rows(session, table, rows)
    return affected


def _write_lots(session: Session, account: BrokerageAccount, built: Built, states: dict[str, PairState]) -> None:
    """The continued pairs' lots against what was stored, both in seq order: gone → deleted, changed →
    updated, new → inserted. FIFO consumes from the front and opens at the back, so a day's page touches
    a few lots only."""
    positions = {(p.instrument, p.currency): p for p in built.result.positions}
    deletes, updates, inserts = [], [], []
    ids = {"user_id": account.user_id, "account_id": account.id}
    by_pair = books_by_pair(built.books)
    for key, st in states.items():
        books = {(i, c): book for (_, i, c), book in by_pair.get(key, {}).items()}
        for which in set(books) | set(st.stored_lots):
            stored = st.stored_lots.get(which, ())
            book, position = books.get(which), positions.get(which)
            held = list(zip(position.lots, book.lots, strict=True)) if book is not None and position else []
            i = j = 0
            while i < len(stored) or j < len(held):
                row = stored[i] if i < len(stored) else None
                lot, kept = held[j] if j < len(held) else (None, None)
                if row is not None and (kept is None or row[1] < kept.seq):
                    deletes.append({"b_id": row[0]})  # consumed
                    i += 1
                elif kept is not None and (row is None or kept.seq < row[1]):
                    inserts.append({**ids, "pair_key": key, "instrument": which[0], "currency": which[1],
                                    "seq": kept.seq, "activity_id": lot.activity_id, "opened_on": lot.opened_on,
                                    "quantity": lot.quantity, "cost": lot.cost})  # fmt: skip
                    j += 1
                else:
                    if (row[4], row[5]) != (lot.quantity, lot.cost):  # partly consumed, or split
                        updates.append({"b_id": row[0], "quantity": lot.quantity, "cost": lot.cost})
                    i, j = i + 1, j + 1
    if deletes:
        session.execute(sa.delete(LOTS).where(LOTS.c.id == sa.bindparam("b_id")), deletes)
    if updates:
        session.execute(sa.update(LOTS).where(LOTS.c.id == sa.bindparam("b_id")), updates)
    insert_rows(session, LOTS, inserts)


def _stored_values(account: BrokerageAccount, built: Built, flagged: dict[tuple, Any]) -> dict[str, list[dict]]:
    ids = {"user_id": account.user_id, "account_id": account.id}
    result, symbols = built.result, built.symbols
    trips, positions, lots, unplaceable = [], [], [], []
    seq: dict[tuple, int] = defaultdict(int)
    for rt in result.round_trips:  # per book, still in engine order (build sorts by opened_on, stably)
        book = (rt.account, rt.instrument, rt.currency)
        trips.append({**ids, "pair_key": rt.instrument, "seq": built.books[book].closed_before + seq[book],
                      "instrument": rt.instrument, "symbol": symbols.get(rt.instrument), "currency": rt.currency,
                      "direction": rt.direction, "status": rt.status, "opened_on": rt.opened_on,
                      "closed_on": rt.closed_on, "on_date": rt.closed_on or rt.opened_on, "outcome": rt.outcome,
                      "quantity": rt.quantity, "gross_pnl": rt.gross_pnl, "fees": rt.fees, "net_pnl": rt.net_pnl,
                      "flags": list(rt.flags), "counts_in_metrics": rt.counts_in_metrics,
                      "activity_ids": list(rt.activities)})  # fmt: skip
        seq[book] += 1
    for position in result.positions:
        key = position.instrument
        positions.append({**ids, "pair_key": key, "instrument": key, "symbol": symbols.get(key),
                          "currency": position.currency, "quantity": position.quantity,
                          "cost_basis": position.cost_basis})  # fmt: skip
        if key in built.lots_written:
            continue  # a continued pair: only its changed lots are written (_write_lots)
        book = built.books[(position.account, key, position.currency)]
        lots.extend({**ids, "pair_key": key, "instrument": key, "currency": position.currency, "seq": held.seq,
                     "activity_id": lot.activity_id, "opened_on": lot.opened_on, "quantity": lot.quantity,
                     "cost": lot.cost} for lot, held in zip(position.lots, book.lots, strict=True))  # fmt: skip
    now = utcnow()
    seen: set[tuple[str, str]] = set()
    for u in result.unplaceable:
        if (u.activity_id, u.reason) in seen:
            continue
        seen.add((u.activity_id, u.reason))
        unplaceable.append({**ids, "pair_key": _unplaceable_key(u, built.key_of), "activity_id": u.activity_id,
                            "instrument": u.instrument, "currency": u.currency, "transaction_type": u.type,
                            "trade_date": u.trade_date, "reason": u.reason,
                            "flagged_at": flagged.get((u.activity_id, u.reason), now)})  # fmt: skip
    states = [{"account_id": account.id, "pair_key": key, "state": state.dump(st)} for key, st in built.states.items()]
    return {TRIPS.name: trips, POSITIONS.name: positions, LOTS.name: lots, UNPLACEABLE.name: unplaceable,
            STATES.name: states}  # fmt: skip


def _unplaceable_key(u: Unplaceable, key_of: dict[str, str]) -> str:
    # An activity without a usable instrument (an option event on a stock row) stays with the row's pair.
    return key_of.get(u.activity_id, u.instrument or "")
