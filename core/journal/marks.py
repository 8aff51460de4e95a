"""The dirty marks: which (account, pair) the journal must update at the next upkeep, and how each became dirty
(inserts only, from a date on: it may continue; an update or delete: it is rebuilt)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.journal.wanted import wanted_rows
from core.storage.models import (
    JournalDirtyPair,
)

log = logging.getLogger("tradistry.journal")

DIRTY = JournalDirtyPair.__table__


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


_SEEN = (sa.column("key", sa.String), sa.column("gen", sa.BigInteger))


def clear_marks(session: Session, account_id: int, seen: Mapping[str, Mark]) -> None:
    """Clear the marks a rebuild has seen; a pair marked again meanwhile (a higher generation) stays dirty.
    On PostgreSQL one statement joining the (pair, generation) arrays: the first upkeep after an import clears
    thousands of marks, and an executemany of a DELETE per mark cost a pipeline round of each."""
    if seen and session.get_bind().dialect.name == "postgresql":
        seen_rows = wanted_rows(session, "seen", _SEEN, [(k, seen[k].generation) for k in sorted(seen)])
        session.execute(sa.delete(DIRTY).where(DIRTY.c.account_id == account_id, DIRTY.c.pair_key == seen_rows.c.key,
                                               DIRTY.c.generation == seen_rows.c.gen))  # fmt: skip
    elif seen:
        session.execute(
            sa.delete(DIRTY).where(
                DIRTY.c.account_id == account_id,
                DIRTY.c.pair_key == sa.bindparam("key"),
                DIRTY.c.generation == sa.bindparam("gen"),
            ),
            [{"key": key, "gen": mark.generation} for key, mark in seen.items()],
        )
