"""One reconcile per onboarding and per CLI sync: a run queued right after a reconcile reuses it.

The portal callback and the CLI reconcile connections and accounts with SnapTrade (2 requests) before they
queue a run, and record when on the run (`reconciled_at`). The run skips its own reconcile only while that
one is still fresh when the run starts: a run that waited in the queue longer than REUSE_SECONDS (a worker
that was down, a resume long after a crash) asks SnapTrade again, so no run works from a view of the
connections older than the window. The window is minutes, not seconds: an onboarding wave under SnapTrade's
250 requests a minute holds the first imports in the queue for minutes (100 users: about 3), and a second
reconcile then would cost every new connection 2 requests more, 9 instead of 7. What it could catch in those
minutes is caught anyway: webhooks write the same rows the run reads, a connection disabled or deleted since
fails its activities request with the errors the run handles, and an account added since arrives with its
webhook or the next sync.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from core.accounts.connections import SnapTradeIdentity, reconcile_connections
from core.snaptrade.client import SnapTradeClient
from core.storage.models import TransactionSyncLog, utcnow

REUSE_SECONDS = 15 * 60.0


def is_fresh(reconciled_at: datetime | None, now: datetime) -> bool:
    """A reconcile taken no more than REUSE_SECONDS before `now` (and not in the future: a clock step)."""
    if reconciled_at is None:
        return False
    return timedelta(0) <= now - reconciled_at <= timedelta(seconds=REUSE_SECONDS)


def reconcile_for_run(
    session: Session, *, run: TransactionSyncLog, client: SnapTradeClient, identity: SnapTradeIdentity
) -> bool:
    """Reconcile the run's user with SnapTrade unless the reconcile that queued the run is fresh; True when it did."""
    # A user flagged since (a refused secret) goes through reconcile_connections, which says so without a request.
    if identity.problem is None and is_fresh(run.reconciled_at, utcnow()):
        return False
    reconcile_connections(session, user_id=run.user_id, client=client, identity=identity)
    return True
