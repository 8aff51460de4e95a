"""Helpers for sync tests and benchmarks: a registered user with sandbox connections, and one-shot runs."""

from __future__ import annotations

from sqlmodel import Session, select

from core.accounts.auth import create_user
from core.accounts.connections import ensure_snaptrade_user, reconcile_connections
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.snaptrade.client import SnapTradeClient
from core.storage.models import BrokerageConnection, TransactionSyncLog


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
