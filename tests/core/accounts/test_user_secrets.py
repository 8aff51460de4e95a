"""A user secret SnapTrade refuses (401, code 1083): the user and connections are flagged and left alone by
the scheduler, and the two recoveries (resetUserSecret, registering again) work, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.connections import SECRET_REFUSED_REASON, create_portal_link, mark_secret_refused
from core.accounts.crypto import decrypt_secret
from core.accounts.user_secrets import (
    RESET_REFUSED_REASON,
    register_again,
    reset_user_secret,
    secret_status,
    users_needing_attention,
)
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.snaptrade.client import UserSecretRefused
from core.storage.models import BrokerageConnection, BrokerageTransaction, SnapTradeUser, TransactionSyncLog, utcnow
from tests.syncsupport import connect, make_user, snaptrade_user_id, sync_now

REDIRECT = "http://127.0.0.1:8501/callback"


def _scheduled_run(engine, uid: int) -> TransactionSyncLog:
    with Session(engine, expire_on_commit=False) as s:
        conn = s.exec(select(BrokerageConnection).where(BrokerageConnection.user_id == uid)).one()
        run, _ = jobs.enqueue_sync(s, user_id=uid, connection_id=conn.id, trigger="scheduled")
        jobs.claim_run(s, run.id, "test-worker")
    return execute_run(run.id, engine=engine)


def _connected_and_synced(engine, sandbox) -> tuple[int, str]:
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, history_size=40)
    assert [r.status for r in sync_now(engine, uid)] == ["completed"]
    with Session(engine) as s:
        return uid, snaptrade_user_id(s, uid)


def _row(s: Session, uid: int) -> SnapTradeUser:
    return s.exec(select(SnapTradeUser).where(SnapTradeUser.user_id == uid)).one()


def test_a_refused_secret_flags_user_and_connections_and_nothing_calls_snaptrade_again(engine, sandbox):
    uid, st_user = _connected_and_synced(engine, sandbox)
    held = sandbox.user_secret(st_user)
    sandbox.invalidate_user_secret(st_user)

    run = _scheduled_run(engine, uid)
    assert run.status == "failed" and run.error_details["error"]["code"] == "1083"
    assert SECRET_REFUSED_REASON in run.error_message
    with Session(engine, expire_on_commit=False) as s:
        conn = s.exec(select(BrokerageConnection)).one()
        row = _row(s, uid)
        assert (conn.status, conn.status_reason) == ("error", SECRET_REFUSED_REASON)
        assert (row.status, row.status_reason) == ("needs_attention", SECRET_REFUSED_REASON) and row.status_changed_at
        assert conn not in jobs.connections_due(s, now=utcnow() + timedelta(days=30))  # the scheduler leaves it
        assert [u.user_id for u in users_needing_attention(s)] == [uid]
        # A webhook may set the connection active again: the next run flags it again without asking SnapTrade.
        conn.status = "active"
        s.add(conn)
        s.commit()
    sandbox.reset_request_log()
    again = _scheduled_run(engine, uid)
    assert again.status == "failed" and sandbox.request_log() == []
    with Session(engine, expire_on_commit=False) as s:
        assert s.exec(select(BrokerageConnection.status)).one() == "error"
        # Connect and Reconnect say why, without a request that could only be refused again.
        with pytest.raises(UserSecretRefused, match="1083"):
            create_portal_link(s, user_id=uid, redirect_url=REDIRECT)
    assert sandbox.request_log() == []
    for text in (run.error_message, again.error_message, SECRET_REFUSED_REASON):
        assert held not in text and sandbox.user_secret(st_user) not in text


def test_reset_stores_the_new_secret_encrypted_and_resumes_the_flagged_connections(engine, sandbox):
    uid, st_user = _connected_and_synced(engine, sandbox)
    old = sandbox.user_secret(st_user)
    with Session(engine, expire_on_commit=False) as s:
        mark_secret_refused(s, uid)  # a 401 SnapTrade meant only for a moment: the stored secret still works
        outcome = reset_user_secret(s, user_id=uid, actor="tina")
        assert outcome.ok and len(outcome.run_ids) == 1
        new = sandbox.user_secret(st_user)
        row = _row(s, uid)
        assert new != old and decrypt_secret(row.user_secret_encrypted) == new
        assert new not in row.user_secret_encrypted and row.status == "active" and row.status_reason is None
        conn = s.exec(select(BrokerageConnection)).one()
        assert (conn.status, conn.status_reason, conn.error_details) == ("active", None, None)
        assert s.get(TransactionSyncLog, outcome.run_ids[0]).status == "queued"
        assert not secret_status(s, uid).needs_attention
        for secret in (old, new):
            assert secret not in outcome.message
    with Session(engine, expire_on_commit=False) as s:
        jobs.claim_run(s, outcome.run_ids[0], "test-worker")
    assert execute_run(outcome.run_ids[0], engine=engine).status == "completed"


def test_reset_refused_leaves_the_user_flagged_and_registering_again_recovers(engine, sandbox):
    uid, old_st_user = _connected_and_synced(engine, sandbox)
    sandbox.invalidate_user_secret(old_st_user)
    assert _scheduled_run(engine, uid).status == "failed"
    with Session(engine, expire_on_commit=False) as s:
        kept = s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one()
        refused = reset_user_secret(s, user_id=uid, actor="staff:sam")
        assert not refused.ok and refused.message == RESET_REFUSED_REASON
        status = secret_status(s, uid)
        assert status.needs_attention and status.reason == RESET_REFUSED_REASON and status.flagged_connections == 1

        outcome = register_again(s, user_id=uid, actor="staff:sam")
        assert outcome.ok
        row = _row(s, uid)
        assert row.snaptrade_user_id != old_st_user and row.status == "active"
        assert decrypt_secret(row.user_secret_encrypted) == sandbox.user_secret(row.snaptrade_user_id)
        assert old_st_user not in sandbox.users()  # the unreachable old registration is deleted at SnapTrade
        conn = s.exec(select(BrokerageConnection)).one()
        assert conn.status == "disconnected" and "Registered with SnapTrade again" in conn.status_reason
        assert s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one() == kept
        assert create_portal_link(s, user_id=uid, redirect_url=REDIRECT).startswith(sandbox.base_url)
        with pytest.raises(ValueError, match="reset it instead"):
            register_again(s, user_id=uid, actor="staff:sam")  # only for a flagged user: it cannot be undone
