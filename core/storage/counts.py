"""Each user's transaction count and revision, from the trigger-kept deltas (migration 0004).

The database keeps them in the same transaction as the rows, whoever writes (sync, disconnect,
cascades, bulk loads) and whatever crashes, so reading them never counts a heavy user's rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from core.storage.models import UserTransactionCount

C = UserTransactionCount.__table__.c


def user_count(session: Session, user_id: int) -> tuple[int, int]:
    """(rows, revision) of the user: the sum of their deltas and the newest delta's id, from one range of
    the (user_id, id) index. The pair moves with every insert, update or delete of their rows: on
    PostgreSQL the revision moves with each write statement; on SQLite inserts move the count and updates
    and deletes the revision (an insert-only change always raises the count)."""
    rows, revision = session.execute(
        sa.select(sa.func.sum(C.delta), sa.func.max(C.id)).where(C.user_id == user_id)
    ).one()
    return int(rows or 0), int(revision or 0)


def fold(session: Session, user_id: int) -> int:
    """Replace the user's deltas by one row holding their sum, and commit; returns how many were folded.

    On PostgreSQL every write statement appends a delta (a sync, one per page): the end of every run
    (core.ingest.sync) folds them so reading stays a few index entries. SQLite has one row per user: nothing to
    do. Deltas that other transactions have not committed yet are not seen and stay; two folds at once
    each delete (and re-add the sum of) only what they got."""
    newest, n = session.execute(sa.select(sa.func.max(C.id), sa.func.count()).where(C.user_id == user_id)).one()
    if n < 2:
        session.rollback()
        return 0
    gone = session.execute(
        sa.delete(UserTransactionCount.__table__).where(C.user_id == user_id, C.id <= newest).returning(C.delta)
    ).scalars().all()  # fmt: skip
    if gone:
        session.execute(sa.insert(UserTransactionCount.__table__).values(user_id=user_id, delta=sum(gone)))
    session.commit()
    return len(gone)
