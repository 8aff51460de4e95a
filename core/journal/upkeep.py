"""Keeping the stored journal current: after a sync run, read the positions of the accounts that need it and
rebuild only the dirty (account, instrument) pairs, in one transaction; the explicit "Reconcile"; and the
from-scratch rebuild behind `python -m core journal rebuild`.

Which pairs are dirty is written by database triggers (migration 0006) in the same transaction as each
activity row, whoever writes it; a rebuild clears only the marks it has seen. So a run that crashes before
its rebuild leaves the marks behind, and the next run of that connection (or a rebuild) picks them up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.connections import SnapTradeIdentity, get_snaptrade_identity
from core.gcpace import bulk_allocations
from core.journal.marks import clear_marks, dirty_marks
from core.journal.positions import (
    PositionsRead,
    positions_ever_attempted,
    read_account_positions,
    refresh_reconciliations,
)
from core.journal.store import rebuild_pairs
from core.snaptrade.client import SnapTradeClient
from core.storage.db import begin_writing
from core.storage.models import AppUser, BrokerageAccount

log = logging.getLogger("tradistry.journal")


@dataclass(frozen=True, slots=True)
class UpkeepResult:
    accounts: int
    pairs: int  # pairs brought up to date
    activities: int  # activities read to do it
    seconds: float
    continued: int = 0  # of those pairs, how many continued from their stored state with their new rows only


def upkeep_accounts(session: Session, account_ids: Iterable[int]) -> UpkeepResult:
    """Rebuild the dirty pairs of these accounts and their reconciliation counts, in one transaction."""
    return _rebuild(session, account_ids, full=False)


def rebuild_accounts(session: Session, account_ids: Iterable[int]) -> UpkeepResult:
    """Rebuild these accounts' journals from scratch (every pair), in one transaction."""
    return _rebuild(session, account_ids, full=True)


def _rebuild(session: Session, account_ids: Iterable[int], *, full: bool) -> UpkeepResult:
    started = time.perf_counter()
    ids = sorted(set(account_ids))
    accounts = list(session.exec(select(BrokerageAccount).where(BrokerageAccount.id.in_(ids)))) if ids else []
    pairs = activities = continued = 0
    try:
        begin_writing(session)  # on SQLite: its reads and writes interleave (core.journal.store streams)
        touched = []
        for account in accounts:
            # The marks are read before the rows: a mark written after this read survives the clear below.
            marks = dirty_marks(session, account.id)
            if not marks and not full:
                continue
            with bulk_allocations():  # a chunk's rows, fills and values: garbage for reference counting
                counts = rebuild_pairs(session, account, None if full else marks)
            clear_marks(session, account.id, marks)
            pairs, activities = pairs + counts.pairs, activities + counts.activities
            continued += counts.continued
            touched.append(account)
        refresh_reconciliations(session, touched)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return UpkeepResult(len(touched), pairs, activities, time.perf_counter() - started, continued)


def user_account_ids(session: Session, user_id: int | None = None) -> list[int]:
    """Every account of the user (of everyone when None), removed ones too: their history is still shown."""
    query = sa.select(BrokerageAccount.id).order_by(BrokerageAccount.id)
    if user_id is not None:
        query = query.where(BrokerageAccount.user_id == user_id)
    return list(session.execute(query).scalars())


def rebuild_user(session: Session, user_id: int) -> UpkeepResult:
    return rebuild_accounts(session, user_account_ids(session, user_id))


def rebuild_everyone(session: Session) -> list[tuple[str, UpkeepResult]]:
    """A full rebuild per user (one transaction each), as (username, result)."""
    users = session.execute(sa.select(AppUser.id, AppUser.username).order_by(AppUser.id)).all()
    return [(username, rebuild_user(session, user_id)) for user_id, username in users]


# --------------------------------------------------------------------------- after a sync, and on request


def after_sync_run(session: Session, *, client: SnapTradeClient, identity: SnapTradeIdentity,
                   accounts: Iterable[BrokerageAccount], changed: Mapping[int, int]) -> None:  # fmt: skip
    """The sync run's last step (core.ingest.sync): positions, then the dirty pairs of its accounts.

    `changed`: for each account synced in this run, how many activities it inserted or changed. Positions are
    read (one request each) for an account whose sync changed something, or that was never read; an account
    skipped as having nothing new costs nothing. Never raises: the activities are stored whatever happens
    here, and what is not rebuilt now stays marked for the next run."""
    accounts = list(accounts)
    ids = [a.id for a in accounts]
    try:
        for account in accounts:
            if account.id in changed and (changed[account.id] or not positions_ever_attempted(session, account.id)):
                read_account_positions(session, client, identity, account)
        result = upkeep_accounts(session, ids)
        if result.pairs:
            log.info("journal: %d pair(s) of %d account(s) %s (%d continued) updated from %d activities in %.3f s",
                     result.pairs, result.accounts, ids, result.continued, result.activities, result.seconds)  # fmt: skip
    except Exception:  # noqa: BLE001 - the sync's own result must stand; the marks wait for the next run
        session.rollback()
        log.exception("journal upkeep of account(s) %s failed; its dirty pairs stay marked for the next run", ids)


def reconcile_positions(session: Session, user_id: int, account_id: int | None = None,
                        client: SnapTradeClient | None = None) -> list[PositionsRead]:  # fmt: skip
    """The explicit "Reconcile": read the positions of the user's active accounts (or one of them) now, one
    request each, then bring the journal and its reconciliation up to date. A failed read is reported in
    its PositionsRead and leaves the last good positions in place. Raises SnapTradeError subclasses only for
    a client that cannot be built (not configured)."""
    query = select(BrokerageAccount).where(BrokerageAccount.user_id == user_id, BrokerageAccount.is_active.is_(True))
    if account_id is not None:
        query = query.where(BrokerageAccount.id == account_id)
    accounts = list(session.exec(query.order_by(BrokerageAccount.id)))
    identity = get_snaptrade_identity(session, user_id)
    if not accounts or identity is None:
        return []
    client = client or SnapTradeClient()
    reads = [read_account_positions(session, client, identity, account) for account in accounts]
    upkeep_accounts(session, [a.id for a in accounts])
    return reads
