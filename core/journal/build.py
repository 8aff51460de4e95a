"""Building pairs: from all their rows, or continued from their stored state with their new rows only; either
way the round trips, books and each pair's new state, ready to store."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from core.journal import state
from core.journal.fills import fills_from_rows
from core.journal.rows import Row, pair_key
from core.journal.state import PairState
from core.journal.trips import Books, JournalResult, build_books
from core.storage.models import (
    BrokerageAccount,
)

log = logging.getLogger("tradistry.journal")

# A pair of fewer items keeps no stored state: when it changes it is rebuilt from its rows, which costs about
# what loading, continuing and rewriting a state would, and most pairs of a history are this small (an option
# contract opened and closed). Writing every pair's state was a fifth of a full rebuild (bench journal).
STATE_MIN_ITEMS = 16


@dataclass(slots=True)
class Built:
    """What one build of some pairs of an account gives, ready to store."""

    result: JournalResult
    books: Books
    states: dict[str, PairState]
    key_of: dict[str, str]
    symbols: dict[str, str | None]
    lots_written: frozenset[str] = frozenset()  # continued pairs: saved.store_continued writes their changed lots
    pairs: int = 0  # pairs built whole by this build (those with rows; a streamed pair's last chunk counts it)


def _symbols(rows: Iterable[Row]) -> dict[str, str]:
    symbols: dict[str, str] = {}
    for r in rows:
        key = pair_key(r)
        if r.symbol and (key not in symbols or r.symbol < symbols[key]):
            symbols[key] = r.symbol  # the least: the same whatever order the rows come in
    return symbols


def build(account: BrokerageAccount, rows: list[Row], shorts: frozenset, keys: Iterable[str]) -> Built:
    """Build these pairs from all their rows."""
    key_of = {r.snaptrade_activity_id: pair_key(r) for r in rows}
    symbols = _symbols(rows)
    items = fills_from_rows(rows, account.snaptrade_account_id)
    result, books = build_books(items, shorts, checked_already=True)
    per_pair: dict[str, list] = defaultdict(list)
    for item in items:
        per_pair[key_of[item.activity_id]].append(item)
    states = {}
    by_pair = books_by_pair(books)
    built = set(keys) & set(key_of.values())  # a pair without rows keeps no state
    for key in built:
        if len(per_pair.get(key, ())) < STATE_MIN_ITEMS:
            continue
        last, on_last_day = state.key_of_items(per_pair[key])
        states[key] = PairState(
            books=by_pair.get(key, {}), last=last, last_day_items=on_last_day, symbol=symbols.get(key)
        )
    return Built(result, books, states, key_of, {k: symbols.get(k) for k in keys}, pairs=len(built))


def books_by_pair(books: Books) -> dict[str, Books]:
    by_pair: dict[str, Books] = defaultdict(dict)
    for key, book in books.items():
        by_pair[key[1]][key] = book  # a book's instrument is its pair
    return by_pair


def continue_pairs(account: BrokerageAccount, pairs: dict[str, tuple[PairState, list]], shorts: frozenset) -> Built:
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
    by_pair = books_by_pair(books)
    for key, (st, new) in pairs.items():
        last, on_last_day = state.key_of_items(new)
        if last is None:
            last, on_last_day = st.last, st.last_day_items
        elif st.last is not None and last[0] == st.last[0]:
            on_last_day += st.last_day_items
        states[key] = PairState(books=by_pair.get(key, {}), last=last, last_day_items=on_last_day, symbol=st.symbol)
    symbols = {k: st.symbol for k, (st, _) in pairs.items()}
    return Built(result, books, states, key_of, symbols, frozenset(pairs), pairs=len(pairs))
