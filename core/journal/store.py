"""Updating the stored journal: brings an account's dirty (account, pair)s up to date, or every pair from scratch.
A pair whose only changes are rows after the last activity it processed continues from its stored state
(core.journal.state; only a pair of build.STATE_MIN_ITEMS items or more keeps one) with just those rows; any
other change rebuilds it from its rows, streamed in chunks so memory does not grow with the history. Its parts:
the dirty marks (marks), reading rows (rows), building (build) and the stored results (saved). Callers commit
(core.journal.upkeep), so an update is visible whole or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.journal import daily, state
from core.journal.build import Built, build, continue_pairs
from core.journal.fills import fills_from_rows
from core.journal.marks import Mark
from core.journal.rows import (
    BASE_QUERY,
    CHUNK,
    READ_TYPES,
    T,
    broker_shorts,
    chunks,
    fetch_rows,
    pair_key,
    read_rows,
    read_rows_since,
)
from core.journal.saved import (
    LOTS,
    POSITIONS,
    STATES,
    TRIPS,
    UNPLACEABLE,
    delete_pairs,
    flagged_before,
    load_lots,
    load_states,
    store_built,
    store_continued,
    stores_any,
)
from core.journal.state import PairState
from core.journal.trips import Books, JournalResult, build_books, order_key, settle
from core.storage.models import (
    BrokerageAccount,
    JournalDaily,
)

log = logging.getLogger("tradistry.journal")

DAILY = JournalDaily.__table__
DERIVED = (TRIPS, POSITIONS, LOTS, UNPLACEABLE, STATES)
_CHUNK_ROWS = 2_000  # rows built at once by a full rebuild: a typical history fits in a chunk or two, so a heavy
# user's rebuild peaks near a typical user's (bench journal: peak RSS); smaller chunks measured no slower


@dataclass(frozen=True, slots=True)
class RebuildCounts:
    pairs: int
    activities: int  # activities read
    round_trips: int
    positions: int
    unplaceable: int
    continued: int = 0  # pairs continued from their stored state (the others were rebuilt)


def rebuild_pairs(session: Session, account: BrokerageAccount, marks: Mapping[str, Mark] | None) -> RebuildCounts:
    """Bring these dirty pairs of the account up to date (every pair from scratch when marks is None): a pair
    changed only by rows after its last processed activity continues from its stored state; any other is
    rebuilt from its rows. No commit: the caller's transaction makes it visible whole."""
    if marks is None:
        return _rebuild_account(session, account)
    shorts = broker_shorts(session, account)
    continuing, read = _continuable(session, account, marks)
    rebuilding = sorted(set(marks) - set(continuing))
    affected: set[daily.Day] = set()
    rebuilt = 0
    if rebuilding:
        # Streamed as a full rebuild is: the first upkeep after an initial import rebuilds every pair, and
        # must not hold all their rows at once.
        # Nothing stored yet (the first upkeep after an import): no flag times to keep, no rows to delete,
        # where asking per pair cost statements over thousands of keys.
        stored = stores_any(session, account)
        flagged = flagged_before(session, account, rebuilding) if stored else {}
        if stored:
            affected |= delete_pairs(session, account, rebuilding)
        # No round trip of another pair left (the first upkeep of an account): the days counted while
        # building are the account's whole daily aggregates, written at once instead of recounted.
        alone = not continuing and (not stored or session.execute(
            sa.select(TRIPS.c.id).where(TRIPS.c.account_id == account.id).limit(1)).first() is None)  # fmt: skip
        days: dict[daily.Day, dict[str, Any]] = {}
        rebuilt = _build_streamed(session, account, set(rebuilding), shorts, flagged, days).activities
        if alone:
            session.execute(sa.delete(DAILY).where(DAILY.c.account_id == account.id))
            daily.insert(session, account.user_id, account.id, days)
        else:
            affected |= set(days)
    if continuing:
        built = continue_pairs(account, continuing, shorts)
        affected |= store_continued(session, account, built, {k: st for k, (st, _) in continuing.items()})
    daily.refresh(session, account.user_id, account.id, affected)
    return RebuildCounts(pairs=len(marks), activities=rebuilt + read, round_trips=0, positions=0, unplaceable=0,
                         continued=len(continuing))  # fmt: skip


def _continuable(session: Session, account: BrokerageAccount, marks: Mapping[str, Mark]
                 ) -> tuple[dict[str, tuple[PairState, list]], int]:  # fmt: skip
    """The dirty pairs that continue from their stored state, each with its new items and its books given
    the lots those can consume; and how many rows were read to tell."""
    stored = load_states(session, account.id, [k for k, m in marks.items() if k and not m.rebuild])
    candidates = {k: st for k, st in stored.items() if st.last is not None and
                  (marks[k].since is None or marks[k].since >= st.last[0])}  # fmt: skip
    rows_since = read_rows_since(session, account, {k: st.last[0] for k, st in candidates.items()})
    continuing: dict[str, tuple[PairState, list]] = {}
    read = 0
    for key, st in candidates.items():
        rows = rows_since[key]
        read += len(rows)
        items = fills_from_rows(rows, account.snaptrade_account_id)
        new = [i for i in items if order_key(i) > st.last]
        symbols = [r.symbol for r in rows if r.symbol]
        # A row dated on or before the last one processed that was not processed, or a smaller symbol (every
        # stored row of the pair shows it): rebuilt.
        if len(items) - len(new) == st.last_day_items and (
            not symbols or st.symbol is not None and min(symbols) >= st.symbol
        ):
            continuing[key] = (st, new)
    lots_agree = load_lots(session, account.id, continuing)
    return {k: v for k, v in continuing.items() if k in lots_agree}, read


def _rebuild_account(session: Session, account: BrokerageAccount) -> RebuildCounts:
    """Every pair of the account from scratch, streamed (_build_streamed); the daily aggregates counted in
    the same pass."""
    shorts = broker_shorts(session, account)
    flagged = flagged_before(session, account)
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

    def stored(built: Built, rows: int) -> None:
        store_built(session, account, built, flagged)
        daily.add_trips(days, built.result.round_trips)
        result = built.result
        for i, n in enumerate((built.pairs, rows, len(result.round_trips), len(result.positions),
                               len(result.unplaceable))):  # fmt: skip
            totals[i] += n

    small: list[str] = []
    size = 0
    for key, rows, column in _pair_sizes(session, account, keys):
        if rows > _CHUNK_ROWS:
            _stream_pair(session, account, key, column, shorts, stored)
            continue
        if size + rows > _CHUNK_ROWS:
            chunk_rows = read_rows(session, account, small)
            stored(build(account, chunk_rows, shorts, small), len(chunk_rows))
            small, size = [], 0
        small.append(key)
        size += rows
    last = [*small, ""] if keys is None or "" in keys else small
    if last:
        chunk_rows = read_rows(session, account, last)
        stored(build(account, chunk_rows, shorts, last), len(chunk_rows))
    return RebuildCounts(*totals)


def _pair_sizes(session: Session, account: BrokerageAccount, keys: set[str] | None = None
                ) -> Iterator[tuple[str, int, Any]]:  # fmt: skip
    """(pair, rows, column) for every symbol and option contract of the account (of these pairs when given),
    from the indexes alone; a few more than the pairs (a symbol seen only on option rows without a ticker
    belongs to "")."""
    symbols = (sa.select(T.c.symbol, sa.func.count())
               .where(T.c.account_id == account.id, T.c.option_ticker.is_(None), T.c.symbol.is_not(None), READ_TYPES)
               .group_by(T.c.symbol))  # fmt: skip
    options = (sa.select(T.c.option_ticker, sa.func.count())
               .where(T.c.account_id == account.id, T.c.option_ticker.is_not(None), READ_TYPES)
               .group_by(T.c.option_ticker))  # fmt: skip
    if keys is not None and len(keys) > CHUNK:
        # Many pairs (the first upkeep after an import): one pass over the account's index, filtered here;
        # an IN list per chunk of keys makes SQLite walk that index once per chunk.
        yield from ((key, rows, column) for key, rows, column in _pair_sizes(session, account) if key in keys)
        return
    for query, column in ((symbols, T.c.symbol), (options, T.c.option_ticker)):
        if keys is None:
            for key, rows in session.execute(query):
                yield key, rows, column
            continue
        for chunk in chunks(sorted(k for k in keys if k)):
            for key, rows in session.execute(query.where(column.in_(chunk))):
                yield key, rows, column


def _stream_pair(session: Session, account: BrokerageAccount, key: str, column: Any, shorts: frozenset,
                 stored: Any) -> None:  # fmt: skip
    """One large pair, a chunk of whole dates at a time (keyset on trade_date): each chunk's round trips are
    stored as they close; the open ones, the position and the state after the last chunk."""
    where = [T.c.account_id == account.id, column == key, READ_TYPES]
    if column is T.c.symbol:
        where.append(T.c.option_ticker.is_(None))
    base = BASE_QUERY.where(*where).order_by(T.c.trade_date)
    symbol = key if column is T.c.symbol else session.execute(sa.select(sa.func.min(T.c.symbol)).where(*where)).scalar()
    books: Books = {}
    items: list = []  # every item of the pair is kept only as its order key (for the state's last key)
    last: tuple | None = None
    on_last_day = 0
    since: date | None = None
    while True:
        query = base if since is None else base.where(T.c.trade_date >= since)
        batch = fetch_rows(session, query.limit(_CHUNK_ROWS))
        final = len(batch) < _CHUNK_ROWS
        if not final:
            edge = batch[-1].trade_date  # that date may go on past the limit: it starts the next chunk
            complete = [r for r in batch if r.trade_date < edge]
            if not complete:  # one date holds more than a chunk: read it whole
                complete = fetch_rows(session, base.where(T.c.trade_date == edge))
                edge = edge + timedelta(days=1)
            batch, since = complete, edge
        rows = [r for r in batch if pair_key(r) == key]
        items = fills_from_rows(rows, account.snaptrade_account_id)
        result, books = build_books(items, shorts, books, checked_already=True)
        chunk_last, chunk_on_last = state.key_of_items(items)
        if chunk_last is not None:
            on_last_day = chunk_on_last + (on_last_day if last is not None and last[0] == chunk_last[0] else 0)
            last = chunk_last
        key_of = {r.snaptrade_activity_id: key for r in rows}
        if final:
            states = {key: PairState(books=books, last=last, last_day_items=on_last_day, symbol=symbol)}
            stored(Built(result, books, states, key_of, {key: symbol}, pairs=1), len(rows))
            return
        closed = JournalResult(round_trips=tuple(rt for rt in result.round_trips if rt.status == "closed"),
                               positions=(), unplaceable=result.unplaceable, ignored=())  # fmt: skip
        stored(Built(closed, books, {}, key_of, {key: symbol}), len(rows))
        settle(books)
