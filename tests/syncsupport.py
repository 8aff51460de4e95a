"""Helpers for sync tests and benchmarks: a registered user with sandbox connections, and one-shot runs."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.auth import create_user
from core.accounts.connections import ensure_snaptrade_user, reconcile_connections
from core.ingest.normalize import normalize_activity
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.reads.transactions import data_version
from core.snaptrade.client import SnapTradeClient
from core.snaptrade.values import NormalizationError
from core.storage.models import (
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    SyncIssue,
    TransactionSyncLog,
)


def make_user(session: Session, username: str = "trader1") -> int:
    return create_user(session, username=username, password="correct horse battery", role="trader").id


def connect(session: Session, sb, user_id: int, broker: str = "SANDBOX_US", history_size: int | None = None) -> str:
    """Register the user at the sandbox (through the real SDK) and give them a connection."""
    identity = ensure_snaptrade_user(session, user_id, SnapTradeClient())
    return sb.create_connection(identity.snaptrade_user_id, broker=broker, history_size=history_size)


def snaptrade_user_id(session: Session, user_id: int) -> str:
    from core.storage.models import SnapTradeUser

    return session.exec(select(SnapTradeUser).where(SnapTradeUser.user_id == user_id)).one().snaptrade_user_id


def sync_now(
    engine, user_id: int, *, trigger: str = "manual", full: bool = False, client=None
) -> list[TransactionSyncLog]:
    """Reconcile, queue one run per connection and execute them in this thread."""
    with Session(engine, expire_on_commit=False) as session:
        reconcile_connections(session, user_id=user_id, client=client)
        conns = session.exec(select(BrokerageConnection).where(BrokerageConnection.user_id == user_id,
                                                               BrokerageConnection.status != "disconnected")).all()  # fmt: skip
        runs = [
            jobs.enqueue_sync(session, user_id=user_id, connection_id=c.id, trigger=trigger, full=full)[0]
            for c in conns
        ]
    done = []
    for run in runs:
        with Session(engine, expire_on_commit=False) as session:
            jobs.claim_run(session, run.id, "test-worker")
        done.append(execute_run(run.id, engine=engine, client=client))
    return done


# --------------------------------------------------------------------------- what was stored vs the sandbox

COMPARED = ("transaction_type", "raw_type", "symbol", "option_ticker", "option_action", "quantity", "price", "amount",
            "fee", "currency", "fx_rate", "trade_date", "trade_timestamp", "trade_date_from_settlement",
            "settlement_date", "description", "external_reference_id", "fingerprint")  # fmt: skip


def canonical(value):
    """Numbers compared by exact value (140.30 == 140.3), everything else as is."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, (float, Decimal)) and not isinstance(value, bool):
        return Decimal(repr(value) if isinstance(value, float) else value).normalize()
    return value


def stored_rows(session, user_id):
    rows = session.exec(select(BrokerageTransaction, BrokerageAccount.snaptrade_account_id)
                        .join(BrokerageAccount, BrokerageAccount.id == BrokerageTransaction.account_id)
                        .where(BrokerageTransaction.user_id == user_id)).all()  # fmt: skip
    return {(acc, t.snaptrade_activity_id): t for t, acc in rows}


def expected_rows(sb, st_user):
    expected, bad = {}, 0
    for account_id, activities in sb.ground_truth(st_user).items():
        for a in activities:
            try:
                expected[(account_id, str(a["id"]))] = (normalize_activity(a), a)
            except NormalizationError:
                bad += 1
    return expected, bad


def assert_matches_ground_truth(session, sb, user_id):
    st_user = snaptrade_user_id(session, user_id)
    expected, bad = expected_rows(sb, st_user)
    stored = stored_rows(session, user_id)
    assert set(stored) == set(expected), "stored ids differ from the sandbox's"
    sums_expected, sums_stored = defaultdict(Decimal), defaultdict(Decimal)
    for key, (norm, raw) in expected.items():
        row = stored[key]
        for field in COMPARED:
            assert getattr(row, field) == norm[field], f"{field} of {key} differs"
        assert canonical(row.raw) == canonical(raw)
        sums_expected[norm["currency"]] += norm["amount"] or 0
        sums_stored[row.currency] += row.amount or 0
    assert sums_stored == sums_expected
    quarantined = session.exec(
        select(sa.func.count()).select_from(SyncIssue).where(SyncIssue.kind == "quarantined")
    ).one()
    assert quarantined == bad
    # The trigger-kept count the dashboard reads (migration 0004) agrees, whatever crashed on the way.
    assert data_version(session, user_id)[0] == len(stored)
