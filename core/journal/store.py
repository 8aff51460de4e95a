"""The stored journal: builds round trips, open positions, lots and unplaceable activities from the stored
activities of chosen (account, instrument) pairs and replaces those pairs' rows, and the dirty marks that
say which pairs need it. A pair whose only changes are rows after the last activity it processed continues
from its stored state (core.journal.state) with just those rows; any other change rebuilds it from its rows.
Callers commit (core.journal.upkeep), so an update is visible whole or not at all.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.journal import daily, state
from core.journal.exact import EXACT_CONTEXT, ZERO
from core.journal.fills import (
    OPTION_EVENT_TYPES,
    POSITION_TYPES,
    SPLIT_TYPES,
    UNMODELLED_TYPES,
    Fill,
    Unplaceable,
    fill_from_row,
    row_instrument,
)
from core.journal.state import PairState
from core.journal.trips import Books, JournalResult, build_books, order_key, settle
from core.storage.models import (
    NAMELESS_WHERE,
    BrokerageAccount,
    BrokeragePosition,
    BrokerageTransaction,
    JournalDaily,
    JournalDirtyPair,
    JournalOpenLot,
    JournalPairState,
    JournalPosition,
    JournalRoundTrip,
    JournalUnplaceable,
    utcnow,
)

log = logging.getLogger("tradistry.journal")

T = BrokerageTransaction.__table__
DIRTY = JournalDirtyPair.__table__
STATES = JournalPairState.__table__
TRIPS = JournalRoundTrip.__table__
POSITIONS = JournalPosition.__table__
LOTS = JournalOpenLot.__table__
UNPLACEABLE = JournalUnplaceable.__table__
DAILY = JournalDaily.__table__
DERIVED = (TRIPS, POSITIONS, LOTS, UNPLACEABLE, STATES)
_CHUNK = 500  # keys per IN list
_CHUNK_ROWS = 20_000  # rows built at once by a full rebuild: its memory does not grow with the history
_READ_TYPES = sorted(POSITION_TYPES | UNMODELLED_TYPES)


def pair_key(row: Any) -> str:
    """The pair a stored row belongs to: its instrument, or "" when it names none (migration 0006's rule)."""
    return row_instrument(row) or ""


# --------------------------------------------------------------------------- dirty marks


class Mark(NamedTuple):
    generation: int
    rebuild: bool  # an update or delete touched the pair (migration 0009): it cannot continue
    since: date | None  # the earliest trade date among the rows inserted since the last upkeep


def mark_pairs_dirty(session: Session, account_id: int, keys: Iterable[str]) -> None:
    """Mark pairs for a rebuild at the next upkeep (used when the broker's positions change a flag)."""
    rows = [{"account_id": account_id, "pair_key": key, "generation": 1, "rebuild": True} for key in sorted(set(keys))]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DIRTY)
    upsert = ins.on_conflict_do_update(
        index_elements=["account_id", "pair_key"], set_={"generation": DIRTY.c.generation + 1, "rebuild": True}
    )
    session.execute(upsert, rows)


def dirty_marks(session: Session, account_id: int) -> dict[str, Mark]:
    """The account's dirty pairs and each mark."""
    query = sa.select(DIRTY.c.pair_key, DIRTY.c.generation, DIRTY.c.rebuild, DIRTY.c.since).where(
        DIRTY.c.account_id == account_id
    )
    return {key: Mark(gen, bool(rebuild), since) for key, gen, rebuild, since in session.execute(query)}


def clear_marks(session: Session, account_id: int, seen: Mapping[str, Mark]) -> None:
    """Clear the marks a rebuild has seen; a pair marked again meanwhile (a higher generation) stays dirty."""
    if seen:
        session.execute(
            sa.delete(DIRTY).where(
                DIRTY.c.account_id == account_id,
                DIRTY.c.pair_key == sa.bindparam("key"),
                DIRTY.c.generation == sa.bindparam("gen"),
            ),
            [{"key": key, "gen": mark.generation} for key, mark in seen.items()],
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
    T.c.raw_type,
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
    raw_type: str | None
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


def _base(session: Session) -> Any:
    # Only rows fill_from_row may turn into something: cash rows (dividends, fees, deposits) never do.
    return sa.select(*_COLUMNS, _mini_flag(session.get_bind().dialect.name)).where(
        T.c.transaction_type.in_(_READ_TYPES)
    )


def _read_rows(session: Session, account: BrokerageAccount, keys: Iterable[str]) -> list[_Row]:
    """The account's rows of these pairs, whatever their type, each pair through an index of its own kind:
    (account_id, symbol, …) of non-option rows, (account_id, option_ticker, …), and the partial index of the
    rows naming no instrument for the "" pair; none reads the account's other rows or the user's others."""
    keys = set(keys)
    base = _base(session)
    found: dict[str, _Row] = {}
    named = sorted(k for k in keys if k)
    for chunk in _chunks(named):
        by_symbol = base.where(T.c.account_id == account.id, T.c.symbol.in_(chunk), T.c.option_ticker.is_(None))
        by_option = base.where(T.c.account_id == account.id, T.c.option_ticker.in_(chunk))
        for query in (by_symbol, by_option):
            for record in session.execute(query):
                found[record.snaptrade_activity_id] = _row(record)
    if "" in keys:
        # The index's own WHERE, spelled as it is, so both databases know the partial index covers it.
        nameless = base.where(T.c.account_id == account.id, sa.text(NAMELESS_WHERE))
        for record in session.execute(nameless):
            found[record.snaptrade_activity_id] = _row(record)
    return [r for r in found.values() if pair_key(r) in keys]


def _read_rows_since(session: Session, account: BrokerageAccount, since: Mapping[str, date]) -> dict[str, list[_Row]]:
    """Each named pair's rows from its date on: one statement per kind of pair and chunk, joining the wanted
    (pair, date) list to (account_id, symbol | option_ticker, trade_date), so a continuation never reads a
    pair's older rows and costs two statements, not two per pair."""
    out: dict[str, list[_Row]] = {key: [] for key in since}
    base = _base(session)
    for chunk in _chunks(sorted(since.items())):
        wanted = sa.values(sa.column("key", sa.String), sa.column("since", sa.Date), name="wanted").data(chunk)
        wanted = wanted.cte("wanted")
        by_symbol = base.join_from(wanted, T, sa.and_(T.c.account_id == account.id, T.c.symbol == wanted.c.key,
                                                      T.c.option_ticker.is_(None), T.c.trade_date >= wanted.c.since))  # fmt: skip
        by_option = base.join_from(wanted, T, sa.and_(T.c.account_id == account.id, T.c.option_ticker == wanted.c.key,
                                                      T.c.trade_date >= wanted.c.since))  # fmt: skip
        for query in (by_symbol, by_option):
            for record in session.execute(query):
                row = _row(record)
                if (key := pair_key(row)) in out:
                    out[key].append(row)
    return out


def broker_shorts(session: Session, account: BrokerageAccount) -> frozenset[tuple[str, str]]:
    """(account, instrument) pairs the broker last reported short: their sells from flat are real shorts."""
    P = BrokeragePosition.__table__.c
    query = sa.select(P.instrument, P.units).where(P.account_id == account.id)
    return frozenset((account.snaptrade_account_id, i) for i, units in session.execute(query) if units < 0)


def _chunks(keys: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


# --------------------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class RebuildCounts:
    pairs: int
    activities: int  # activities read
    round_trips: int
    positions: int
    unplaceable: int
    continued: int = 0  # pairs continued from their stored state (the others were rebuilt)


@dataclass(slots=True)
class _Built:
    """What one build of some pairs of an account gives, ready to store."""

    result: JournalResult
    books: Books
    states: dict[str, PairState]
    key_of: dict[str, str]
    symbols: dict[str, str | None]
    lots_written: frozenset[str] = frozenset()  # pairs whose lots _write_lots writes (continued pairs)


def _symbols(rows: Iterable[_Row]) -> dict[str, str]:
    symbols: dict[str, str] = {}
    for r in rows:
        key = pair_key(r)
        if r.symbol and (key not in symbols or r.symbol < symbols[key]):
            symbols[key] = r.symbol  # the least: the same whatever order the rows come in
    return symbols


def _build(account: BrokerageAccount, rows: list[_Row], shorts: frozenset, keys: Iterable[str]) -> _Built:
    """Build these pairs from all their rows."""
    key_of = {r.snaptrade_activity_id: pair_key(r) for r in rows}
    symbols = _symbols(rows)
    items = [f for f in (fill_from_row(r, account=account.snaptrade_account_id) for r in rows) if f is not None]
    result, books = build_books(items, shorts, checked_already=True)
    per_pair: dict[str, list] = defaultdict(list)
    for item in items:
        per_pair[key_of[item.activity_id]].append(item)
    states = {}
    by_pair = _books_by_pair(books)
    for key in set(keys) & set(key_of.values()):  # a pair without rows keeps no state
        last, on_last_day = state.key_of_items(per_pair.get(key, []))
        states[key] = PairState(
            books=by_pair.get(key, {}), last=last, last_day_items=on_last_day, symbol=symbols.get(key)
        )
    return _Built(result, books, states, key_of, {k: symbols.get(k) for k in keys})


def _books_by_pair(books: Books) -> dict[str, Books]:
    by_pair: dict[str, Books] = defaultdict(dict)
    for key, book in books.items():
        by_pair[key[1]][key] = book  # a book's instrument is its pair
    return by_pair


def _continue(account: BrokerageAccount, pairs: dict[str, tuple[PairState, list]], shorts: frozenset) -> _Built:
    """Continue these pairs from their stored states with their new items only."""
    books: Books = {}
    items: list = []
    key_of: dict[str, str] = {}
    for key, (st, new) in pairs.items():
        books.update(st.books)
        items.extend(new)
        key_of.update((item.activity_id, key) for item in new)
    result, books = build_books(items, shorts, books, checked_already=True)
    states = {}
    by_pair = _books_by_pair(books)
    for key, (st, new) in pairs.items():
        last, on_last_day = state.key_of_items(new)
        if last is None:
            last, on_last_day = st.last, st.last_day_items
        elif st.last is not None and last[0] == st.last[0]:
            on_last_day += st.last_day_items
        states[key] = PairState(books=by_pair.get(key, {}), last=last, last_day_items=on_last_day, symbol=st.symbol)
    return _Built(result, books, states, key_of, {k: st.symbol for k, (st, _) in pairs.items()}, frozenset(pairs))


# --------------------------------------------------------------------------- updating the dirty pairs


def rebuild_pairs(session: Session, account: BrokerageAccount, marks: Mapping[str, Mark] | None) -> RebuildCounts:
    """Bring these dirty pairs of the account up to date (every pair from scratch when marks is None): a pair
    changed only by rows after its last processed activity continues from its stored state; any other is
    rebuilt from its rows. No commit: the caller's transaction makes it visible whole."""
    if marks is None:
        return _rebuild_account(session, account)
    shorts = broker_shorts(session, account)
    stored = _load_states(session, account.id, [k for k, m in marks.items() if k and not m.rebuild])
    candidates = {k: st for k, st in stored.items() if st.last is not None and
                  (marks[k].since is None or marks[k].since >= st.last[0])}  # fmt: skip
    rows_since = _read_rows_since(session, account, {k: st.last[0] for k, st in candidates.items()})
    continuing: dict[str, tuple[PairState, list]] = {}
    read = 0
    for key, st in candidates.items():
        rows = rows_since[key]
        read += len(rows)
        items = [f for f in (fill_from_row(r, account=account.snaptrade_account_id) for r in rows) if f is not None]
        new = [i for i in items if order_key(i) > st.last]
        symbols = [r.symbol for r in rows if r.symbol]
        # A row dated on or before the last one processed that was not processed, or a smaller symbol (every
        # stored row of the pair shows it): rebuilt.
        if (
            len(items) - len(new) == st.last_day_items
            and (not symbols or st.symbol is not None and min(symbols) >= st.symbol)
            and _load_lots(session, account.id, key, st, new)
        ):
            continuing[key] = (st, new)
    rebuilding = sorted(set(marks) - set(continuing))
    affected: set[daily.Day] = set()
    rebuilt = 0
    if rebuilding:
        # Streamed as a full rebuild is: the first upkeep after an initial import rebuilds every pair, and
        # must not hold all their rows at once.
        flagged = _flagged_before(session, account, rebuilding)
        affected |= _delete_pairs(session, account, rebuilding)
        # No round trip of another pair left (the first upkeep of an account): the days counted while
        # building are the account's whole daily aggregates, written at once instead of recounted.
        alone = not continuing and session.execute(sa.select(TRIPS.c.id).where(TRIPS.c.account_id == account.id)
                                                   .limit(1)).first() is None  # fmt: skip
        days: dict[daily.Day, dict[str, Any]] = {}
        rebuilt = _build_streamed(session, account, set(rebuilding), shorts, flagged, days).activities
        if alone:
            session.execute(sa.delete(DAILY).where(DAILY.c.account_id == account.id))
            daily.insert(session, account.user_id, account.id, days)
        else:
            affected |= set(days)
    if continuing:
        built = _continue(account, continuing, shorts)
        affected |= _store_continued(session, account, built, {k: st for k, (st, _) in continuing.items()})
    daily.refresh(session, account.user_id, account.id, affected)
    return RebuildCounts(pairs=len(marks), activities=rebuilt + read, round_trips=0, positions=0, unplaceable=0,
                         continued=len(continuing))  # fmt: skip


def _rebuild_account(session: Session, account: BrokerageAccount) -> RebuildCounts:
    """Every pair of the account from scratch, streamed (_build_streamed); the daily aggregates counted in
    the same pass."""
    shorts = broker_shorts(session, account)
    flagged = _flagged_before(session, account)
    for table in (*DERIVED, JournalDaily.__table__):
        session.execute(sa.delete(table).where(table.c.account_id == account.id))
    days: dict[daily.Day, dict[str, Any]] = {}
    counts = _build_streamed(session, account, None, shorts, flagged, days)
    daily.insert(session, account.user_id, account.id, days)
    return counts


def _build_streamed(session: Session, account: BrokerageAccount, keys: set[str] | None, shorts: frozenset,
                    flagged: dict[tuple, Any], days: dict[daily.Day, dict[str, Any]]) -> RebuildCounts:  # fmt: skip
    """Build and store these pairs (every pair of the account when None), whose stored rows are already
    deleted, streamed: pairs packed into chunks of about _CHUNK_ROWS rows, and a pair larger than that fed
    through the engine in date order a chunk of dates at a time (its books continue from chunk to chunk), so
    neither time per row nor memory grows with the history. Counts their round trips into `days`."""
    totals = [0, 0, 0, 0, 0]  # pairs, activities, round trips, positions, unplaceable

    def stored(built: _Built, rows: int) -> None:
        _store(session, account, built, flagged)
        daily.add_trips(days, built.result.round_trips)
        result = built.result
        for i, n in enumerate((len(built.states), rows, len(result.round_trips), len(result.positions),
                               len(result.unplaceable))):  # fmt: skip
            totals[i] += n

    small: list[str] = []
    size = 0
    for key, rows, column in _pair_sizes(session, account, keys):
        if rows > _CHUNK_ROWS:
            _stream_pair(session, account, key, column, shorts, stored)
            continue
        if size + rows > _CHUNK_ROWS:
            chunk_rows = _read_rows(session, account, small)
            stored(_build(account, chunk_rows, shorts, small), len(chunk_rows))
            small, size = [], 0
        small.append(key)
        size += rows
    last = [*small, ""] if keys is None or "" in keys else small
    if last:
        chunk_rows = _read_rows(session, account, last)
        stored(_build(account, chunk_rows, shorts, last), len(chunk_rows))
    return RebuildCounts(*totals)


def _pair_sizes(session: Session, account: BrokerageAccount, keys: set[str] | None = None
                ) -> Iterator[tuple[str, int, Any]]:  # fmt: skip
    """(pair, rows, column) for every symbol and option contract of the account (of these pairs when given),
    from the indexes alone; a few more than the pairs (a symbol seen only on option rows without a ticker
    belongs to "")."""
    symbols = (sa.select(T.c.symbol, sa.func.count())
               .where(T.c.account_id == account.id, T.c.option_ticker.is_(None), T.c.symbol.is_not(None))
               .group_by(T.c.symbol))  # fmt: skip
    options = (sa.select(T.c.option_ticker, sa.func.count())
               .where(T.c.account_id == account.id, T.c.option_ticker.is_not(None)).group_by(T.c.option_ticker))  # fmt: skip
    if keys is not None and len(keys) > _CHUNK:
        # Many pairs (the first upkeep after an import): one pass over the account's index, filtered here;
        # an IN list per chunk of keys makes SQLite walk that index once per chunk.
        yield from ((key, rows, column) for key, rows, column in _pair_sizes(session, account) if key in keys)
        return
    for query, column in ((symbols, T.c.symbol), (options, T.c.option_ticker)):
        if keys is None:
            for key, rows in session.execute(query):
                yield key, rows, column
            continue
        for chunk in _chunks(sorted(k for k in keys if k)):
            for key, rows in session.execute(query.where(column.in_(chunk))):
                yield key, rows, column


def _stream_pair(session: Session, account: BrokerageAccount, key: str, column: Any, shorts: frozenset,
                 stored: Any) -> None:  # fmt: skip
    """One large pair, a chunk of whole dates at a time (keyset on trade_date): each chunk's round trips are
    stored as they close; the open ones, the position and the state after the last chunk."""
    where = [T.c.account_id == account.id, column == key]
    if column is T.c.symbol:
        where.append(T.c.option_ticker.is_(None))
    base = _base(session).where(*where).order_by(T.c.trade_date)
    symbol = key if column is T.c.symbol else session.execute(sa.select(sa.func.min(T.c.symbol)).where(*where)).scalar()
    books: Books = {}
    items: list = []  # every item of the pair is kept only as its order key (for the state's last key)
    last: tuple | None = None
    on_last_day = 0
    since: date | None = None
    while True:
        query = base if since is None else base.where(T.c.trade_date >= since)
        batch = [_row(r) for r in session.execute(query.limit(_CHUNK_ROWS))]
        final = len(batch) < _CHUNK_ROWS
        if not final:
            edge = batch[-1].trade_date  # that date may go on past the limit: it starts the next chunk
            complete = [r for r in batch if r.trade_date < edge]
            if not complete:  # one date holds more than a chunk: read it whole
                complete = [_row(r) for r in session.execute(base.where(T.c.trade_date == edge))]
                edge = edge + timedelta(days=1)
            batch, since = complete, edge
        rows = [r for r in batch if pair_key(r) == key]
        items = [f for f in (fill_from_row(r, account=account.snaptrade_account_id) for r in rows) if f is not None]
        result, books = build_books(items, shorts, books, checked_already=True)
        chunk_last, chunk_on_last = state.key_of_items(items)
        if chunk_last is not None:
            on_last_day = chunk_on_last + (on_last_day if last is not None and last[0] == chunk_last[0] else 0)
            last = chunk_last
        key_of = {r.snaptrade_activity_id: key for r in rows}
        if final:
            states = {key: PairState(books=books, last=last, last_day_items=on_last_day, symbol=symbol)}
            stored(_Built(result, books, states, key_of, {key: symbol}), len(rows))
            return
        closed = JournalResult(round_trips=tuple(rt for rt in result.round_trips if rt.status == "closed"),
                               positions=(), unplaceable=result.unplaceable, ignored=())  # fmt: skip
        stored(_Built(closed, books, {}, key_of, {key: symbol}), len(rows))
        settle(books)


def _load_states(session: Session, account_id: int, keys: Sequence[str]) -> dict[str, PairState]:
    """The stored states of these pairs with their open round trips, their books holding no lot yet
    (_load_lots); a state that does not agree with them is left out (rebuilt)."""
    out: dict[str, PairState] = {}
    for chunk in _chunks(sorted(keys)):
        opened: dict[str, dict] = defaultdict(dict)
        query = sa.select(TRIPS.c.pair_key, TRIPS.c.instrument, TRIPS.c.currency, TRIPS.c.id, TRIPS.c.seq,
                          TRIPS.c.on_date, TRIPS.c.activity_ids).where(
            TRIPS.c.account_id == account_id, TRIPS.c.pair_key.in_(chunk), TRIPS.c.status == "open"
        )  # fmt: skip
        for key, instrument, currency, *trip in session.execute(query):
            opened[key][(instrument, currency)] = tuple(trip)
        query = sa.select(STATES.c.pair_key, STATES.c.state).where(STATES.c.account_id == account_id,
                                                                   STATES.c.pair_key.in_(chunk))  # fmt: skip
        for key, data in session.execute(query):
            if (st := state.load(data, opened.get(key, {}))) is not None:
                out[key] = st
    return out


_WHOLE_BOOK_TYPES = SPLIT_TYPES | OPTION_EVENT_TYPES  # they change or close every lot of the book
# One book's lots in seq order, built once (a continuation runs it per book: no per-call SQL construction).
_BOOK_LOTS = sa.select(LOTS.c.id, LOTS.c.seq, LOTS.c.activity_id, LOTS.c.opened_on, LOTS.c.quantity, LOTS.c.cost).where(
    LOTS.c.account_id == sa.bindparam("account_id"), LOTS.c.pair_key == sa.bindparam("pair_key"),
    LOTS.c.instrument == sa.bindparam("instrument"),
).order_by(LOTS.c.seq)  # fmt: skip
_BOOK_LOTS, _BOOK_LOTS_IN = (
    _BOOK_LOTS.where(LOTS.c.currency.is_(None)),
    _BOOK_LOTS.where(LOTS.c.currency == sa.bindparam("currency")),
)


def _load_lots(session: Session, account_id: int, key: str, st: PairState, new: list) -> bool:
    """Give a continued pair's books their stored lots: only the oldest ones its new activities can consume
    (FIFO: lots are consumed from the oldest, at most as many units as the new activities move), or all of
    them when those activities may take the book to flat or past it, or split it. Each book's lots are read
    in seq order through (account_id, pair_key, seq) and the read stops there. False when they do not agree
    with the stored state (the pair is then rebuilt)."""
    moved: dict[tuple, Decimal] = defaultdict(Decimal)
    whole: set[tuple] = set()
    with localcontext(EXACT_CONTEXT):
        for item in new:
            which = (item.instrument, item.currency)
            if item.type in _WHOLE_BOOK_TYPES:
                whole.add(which)
            elif isinstance(item, Fill) and item.units is not None:
                moved[which] += Decimal(item.units).copy_abs()
        for (_, instrument, currency), book in st.books.items():
            which = (instrument, currency)
            if not st.lot_info[which][0]:
                if not state.attach_lots(st, which, (), complete=True):
                    return False
                continue
            everything = which in whole or moved.get(which, ZERO) >= abs(book.position)
            params = {"account_id": account_id, "pair_key": key, "instrument": instrument}
            query = _BOOK_LOTS if currency is None else _BOOK_LOTS_IN
            rows, held, need = [], ZERO, moved.get(which, ZERO)
            result = session.execute(query, {**params, "currency": currency} if currency is not None else params)
            for row in result:
                rows.append(tuple(row))
                held += row.quantity.copy_abs()
                if not everything and held > need:
                    break
            else:
                everything = True
            result.close()
            if not state.attach_lots(st, which, rows, complete=everything):
                return False
    return True


def _delete_pairs(session: Session, account: BrokerageAccount, keys: Sequence[str]) -> set:
    """Delete the pairs' stored rows (before a rebuild; a continuation writes only what changed:
    _store_continued); returns the (currency, day)s of the round trips deleted."""
    affected: set[daily.Day] = set()
    for chunk in _chunks(keys):
        where = [TRIPS.c.account_id == account.id, TRIPS.c.pair_key.in_(chunk)]
        affected |= set(session.execute(sa.select(TRIPS.c.currency, TRIPS.c.on_date).where(*where)).tuples())
        session.execute(sa.delete(TRIPS).where(*where))
        for table in (POSITIONS, LOTS, STATES, UNPLACEABLE):
            session.execute(sa.delete(table).where(table.c.account_id == account.id, table.c.pair_key.in_(chunk)))
    return affected


def _flagged_before(session: Session, account: BrokerageAccount, keys: Sequence[str] | None = None) -> dict[tuple, Any]:
    """When each unplaceable activity of these pairs (all of the account's when None) was first flagged: a
    rebuild keeps that time."""
    U = UNPLACEABLE.c
    query = sa.select(U.activity_id, U.reason, U.flagged_at).where(U.account_id == account.id)
    if keys is None:
        return {(a, r): at for a, r, at in session.execute(query)}
    found = {}
    for chunk in _chunks(keys):
        found.update({(a, r): at for a, r, at in session.execute(query.where(U.pair_key.in_(chunk)))})
    return found


def _store(session: Session, account: BrokerageAccount, built: _Built, flagged: dict[tuple, Any]) -> set:
    """Insert what was built; returns the (currency, day)s of the round trips inserted."""
    values = _stored_values(account, built, flagged)
    for table in (TRIPS, POSITIONS, LOTS, UNPLACEABLE, STATES):
        _insert(session, table, values[table.name])
    return {(t["currency"], t["on_date"]) for t in values[TRIPS.name]}


_SQLITE_INSERTS: dict[tuple, tuple[str, list]] = {}


def _insert(session: Session, table: sa.Table, rows: list[dict]) -> None:
    """Insert rows (dicts of the same keys). On SQLite straight through the driver's executemany, each value
    passed through its column type's own bind processor (the exact numbers' text, JSON, dates): what
    SQLAlchemy would send, without its per-row parameter building, most of a full rebuild's writing time.
    Elsewhere (PostgreSQL) through SQLAlchemy."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    keys = tuple(rows[0])
    if dialect.name != "sqlite":
        connection.execute(sa.insert(table), rows)
        return
    if (table.name, keys) not in _SQLITE_INSERTS:
        compiled = sa.insert(table).compile(dialect=dialect, column_keys=list(keys))
        names = list(compiled.positiontup or ())
        if set(names) != set(keys):  # a column default SQLAlchemy would fill in: not for this path
            _SQLITE_INSERTS[(table.name, keys)] = ("", [])
        else:
            procs = [(name, table.c[name].type._cached_bind_processor(dialect)) for name in names]
            _SQLITE_INSERTS[(table.name, keys)] = (str(compiled), procs)
    sql, procs = _SQLITE_INSERTS[(table.name, keys)]
    if not sql:
        connection.execute(sa.insert(table), rows)
        return
    connection.exec_driver_sql(sql, [tuple(row[k] if p is None else p(row[k]) for k, p in procs) for row in rows])


def _store_continued(session: Session, account: BrokerageAccount, built: _Built, states: dict[str, PairState]) -> set:
    """Store continued pairs, writing only what changed: their new round trips inserted, the open round trip
    each had updated in place (still open, or now closed), the lots consumed deleted by id, the lot partly
    consumed (or changed by a split) updated, the new ones inserted; positions and states replaced (a row
    per book and pair). Returns the (currency, day)s whose daily aggregates change."""
    keys = sorted(states)
    values = _stored_values(account, built, {})
    affected: set[daily.Day] = set()
    updates, inserts = [], []
    opened = {(k, which[0], which[1], trip[1]): trip for k in keys for which, trip in states[k].open_trips.items()}
    for row in values[TRIPS.name]:
        trip = opened.pop((row["pair_key"], row["instrument"], row["currency"], row["seq"]), None)
        if trip is None:
            inserts.append(row)
            affected.add((row["currency"], row["on_date"]))
            continue
        updates.append({**row, "b_id": trip[0]})
        # An open round trip counts in its day only as a trip: still open on the same day, no day changes.
        if row["status"] != "open" or row["on_date"] != trip[2]:
            affected |= {(row["currency"], trip[2]), (row["currency"], row["on_date"])}
    stale = [{"b_id": trip[0]} for trip in opened.values()]  # not expected: an open trip stays or closes
    affected |= {(currency, trip[2]) for (_, _, currency, _), trip in opened.items()}
    if updates:
        session.execute(sa.update(TRIPS).where(TRIPS.c.id == sa.bindparam("b_id")), updates)
    if stale:
        session.execute(sa.delete(TRIPS).where(TRIPS.c.id == sa.bindparam("b_id")), stale)
    for chunk in _chunks(keys):
        for table in (POSITIONS, STATES):
            session.execute(sa.delete(table).where(table.c.account_id == account.id, table.c.pair_key.in_(chunk)))
    _write_lots(session, account, built, states)
    for table, rows in ((TRIPS, inserts), (POSITIONS, values[POSITIONS.name]), (UNPLACEABLE, values[UNPLACEABLE.name]),
                        (STATES, values[STATES.name])):  # fmt: skip
        _insert(session, table, rows)
    return affected


def _write_lots(session: Session, account: BrokerageAccount, built: _Built, states: dict[str, PairState]) -> None:
    """The continued pairs' lots against what was stored, both in seq order: gone → deleted, changed →
    updated, new → inserted. FIFO consumes from the front and opens at the back, so a day's page touches
    a few lots only."""
    positions = {(p.instrument, p.currency): p for p in built.result.positions}
    deletes, updates, inserts = [], [], []
    ids = {"user_id": account.user_id, "account_id": account.id}
    by_pair = _books_by_pair(built.books)
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
    _insert(session, LOTS, inserts)


def _stored_values(account: BrokerageAccount, built: _Built, flagged: dict[tuple, Any]) -> dict[str, list[dict]]:
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
