"""core/storage/models/: what the database itself enforces, on SQLite and PostgreSQL: unique keys, the one active
run per connection, allowed values, and what deleting a user, a connection or an account takes with it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import select

from core.snaptrade.activity_types import NORMALIZED_TYPES
from core.storage.models import (
    AppUser,
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    ManualSyncRequest,
    SnapTradeUser,
    SyncIssue,
    TransactionSyncLog,
    UserTransactionCount,
    WebhookEvent,
)
from tests import factories as f


def refused(session, obj) -> bool:
    """Whether the database refuses this row (the session is usable again afterwards)."""
    session.add(obj)
    try:
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        return True
    return False


def count(session, model, *where) -> int:
    return session.exec(select(sa.func.count()).select_from(model).where(*where)).one()


# --------------------------------------------------------------------------- unique keys


def test_usernames_are_unique(session):
    f.make_user(session, "alice")
    assert refused(session, AppUser(username="alice", password_hash="x"))


def test_an_app_user_has_at_most_one_snaptrade_user_and_its_id_is_unique(session):
    alice, bob = f.make_user(session), f.make_user(session)
    session.add(SnapTradeUser(user_id=alice.id, snaptrade_user_id="tds-1", user_secret_encrypted="e"))
    session.commit()
    assert refused(session, SnapTradeUser(user_id=alice.id, snaptrade_user_id="tds-2", user_secret_encrypted="e"))
    assert refused(session, SnapTradeUser(user_id=bob.id, snaptrade_user_id="tds-1", user_secret_encrypted="e"))


def test_snaptrade_connection_and_account_ids_are_unique_across_users(session):
    alice, a_conn, a_acct = f.make_trader(session)
    bob = f.make_user(session)
    assert refused(session, BrokerageConnection(user_id=bob.id, authorization_id=a_conn.authorization_id))
    b_conn = f.make_connection(session, bob)
    assert refused(session, BrokerageAccount(user_id=bob.id, connection_id=b_conn.id,
                                             snaptrade_account_id=a_acct.snaptrade_account_id))  # fmt: skip


def test_an_activity_id_is_unique_per_account_not_globally(session):
    user, conn, account = f.make_trader(session)
    other = f.make_account(session, conn)
    f.make_transaction(session, account, snaptrade_activity_id="act-1")
    assert not refused(session, BrokerageTransaction(**f.transaction_row(other, snaptrade_activity_id="act-1")))
    assert refused(session, BrokerageTransaction(**f.transaction_row(account, snaptrade_activity_id="act-1")))


def test_a_webhook_delivery_is_recorded_once(session):
    f.make_webhook_event(session, webhook_id="wh-1")
    assert refused(session, WebhookEvent(webhook_id="wh-1", event_type="ACCOUNT_TRANSACTIONS_UPDATED"))


def test_the_same_bad_record_is_one_ledger_entry_per_kind_and_account(session):
    user, _, account = f.make_trader(session)
    f.make_issue(session, user, account, kind="quarantined", payload_hash="h1")
    assert refused(session, SyncIssue(user_id=user.id, account_id=account.id, kind="quarantined", reason="again",
                                      payload_hash="h1"))  # fmt: skip
    assert not refused(session, SyncIssue(user_id=user.id, account_id=account.id, kind="skipped", reason="other kind",
                                          payload_hash="h1"))  # fmt: skip


# --------------------------------------------------------------------------- one active run per connection


def run(user, connection, status: str) -> TransactionSyncLog:
    return TransactionSyncLog(user_id=user.id, connection_id=connection.id if connection else None, trigger="manual",
                              status=status)  # fmt: skip


@pytest.mark.parametrize(("first", "second"), [("queued", "queued"), ("queued", "running"), ("running", "queued")])
def test_a_connection_has_at_most_one_queued_or_running_run(session, first, second):
    user, conn, _ = f.make_trader(session)
    assert not refused(session, run(user, conn, first))
    assert refused(session, run(user, conn, second))


@pytest.mark.parametrize("finished", ["completed", "partial", "failed", "interrupted"])
def test_finished_runs_do_not_count_against_the_active_one(session, finished):
    user, conn, _ = f.make_trader(session)
    for _ in range(2):
        assert not refused(session, run(user, conn, finished))
    assert not refused(session, run(user, conn, "running"))


def test_other_connections_and_runs_without_a_connection_are_independent(session):
    user, conn, _ = f.make_trader(session)
    other = f.make_connection(session, user)
    assert not refused(session, run(user, conn, "queued"))
    assert not refused(session, run(user, other, "queued"))
    assert not refused(session, run(user, None, "queued"))
    assert not refused(session, run(user, None, "queued"))


def test_finishing_the_active_run_makes_room_for_the_next(session):
    user, conn, _ = f.make_trader(session)
    active = run(user, conn, "running")
    session.add(active)
    session.commit()
    active.status = "completed"
    session.add(active)
    session.commit()
    assert not refused(session, run(user, conn, "queued"))


# --------------------------------------------------------------------------- allowed values


def test_every_normalized_type_is_a_storable_transaction_type(session):
    _, _, account = f.make_trader(session)
    rows = [f.transaction_row(account, transaction_type=t) for t in NORMALIZED_TYPES]
    assert f.bulk_transactions(session, rows) == len(NORMALIZED_TYPES)


@pytest.mark.parametrize(
    "make",
    [
        lambda user, conn, account: BrokerageTransaction(**f.transaction_row(account, transaction_type="buy")),
        lambda user, conn, account: AppUser(username="admin", password_hash="x", role="admin"),
        lambda user, conn, account: BrokerageConnection(user_id=user.id, authorization_id="a-x", status="paused"),
        lambda user, conn, account: TransactionSyncLog(user_id=user.id, trigger="cron", status="queued"),
        lambda user, conn, account: TransactionSyncLog(user_id=user.id, trigger="manual", status="done"),
        lambda user, conn, account: SyncIssue(user_id=user.id, kind="ignored", reason="r", payload_hash="h"),
    ],
    ids=["transaction type", "user role", "connection status", "run trigger", "run status", "issue kind"],
)
def test_values_outside_their_list_are_refused(session, make):
    user, conn, account = f.make_trader(session)
    assert refused(session, make(user, conn, account))


# --------------------------------------------------------------------------- deletes


def test_deleting_a_user_deletes_everything_theirs_and_keeps_webhook_history(session):
    user, conn, account = f.make_trader(session)
    keep_user, keep_conn, keep_account = f.make_trader(session)
    for owner, c, a in ((user, conn, account), (keep_user, keep_conn, keep_account)):
        session.add(SnapTradeUser(user_id=owner.id, snaptrade_user_id=f"tds-{owner.id}", user_secret_encrypted="e"))
        session.add(ManualSyncRequest(user_id=owner.id))
        f.make_transaction(session, a, amount="-10.5")
        f.make_run(session, owner, c)
        f.make_issue(session, owner, a)
    event = f.make_webhook_event(session, user)

    session.execute(sa.delete(AppUser).where(AppUser.id == user.id))
    session.commit()
    session.expunge_all()

    owned = (SnapTradeUser, BrokerageConnection, BrokerageAccount, BrokerageTransaction, TransactionSyncLog,
             ManualSyncRequest, SyncIssue, UserTransactionCount)  # fmt: skip
    for model in owned:
        assert count(session, model, model.user_id == user.id) == 0, model.__tablename__
        assert count(session, model, model.user_id == keep_user.id) >= 1, model.__tablename__
    kept = session.get(WebhookEvent, event.id)
    assert kept is not None and kept.user_id is None


def test_deleting_a_connection_deletes_its_accounts_and_their_rows_but_keeps_its_runs(session):
    user, conn, account = f.make_trader(session)
    f.make_transaction(session, account)
    issue = f.make_issue(session, user, account)
    finished = f.make_run(session, user, conn)

    session.execute(sa.delete(BrokerageConnection).where(BrokerageConnection.id == conn.id))
    session.commit()
    session.expunge_all()

    assert count(session, BrokerageAccount, BrokerageAccount.connection_id == conn.id) == 0
    assert count(session, BrokerageTransaction, BrokerageTransaction.account_id == account.id) == 0
    history = session.get(TransactionSyncLog, finished.id)
    assert history is not None and history.connection_id is None
    ledger = session.get(SyncIssue, issue.id)
    assert ledger is not None and ledger.account_id is None
