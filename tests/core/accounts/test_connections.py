"""Connecting, the portal round trip, reconciling with SnapTrade, and disconnecting."""

from __future__ import annotations

import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.connections import (
    create_portal_link,
    disconnect_connection,
    handle_portal_callback,
    reconcile_connections,
    set_auto_sync,
)
from core.ingest.reconcile_once import REUSE_SECONDS
from core.ingest.sync import execute_run
from core.jobs import queue as jobs
from core.storage.models import BrokerageAccount, BrokerageConnection, BrokerageTransaction, TransactionSyncLog
from sandbox.portal import PREFIX as PORTAL_PREFIX
from tests.syncsupport import connect, make_user, snaptrade_user_id, sync_now


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def portal(url: str, broker: str | None, action: str) -> dict:
    """Drive the sandbox portal like a browser; returns the query of the redirect back to the app."""
    opener = urllib.request.build_opener(_NoRedirect)
    html = opener.open(url).read().decode()
    session_path = urllib.parse.urlparse(url).path
    base = url.split("/__portal__/")[0]
    data = {"action": action, "username": "u", "password": "p"}
    if broker:
        data["broker"] = broker
    try:
        resp = opener.open(f"{base}{session_path}/submit", urllib.parse.urlencode(data).encode())
        location = resp.headers.get("Location")
    except urllib.error.HTTPError as exc:  # 30x surfaces as an error when redirects are not followed
        location = exc.headers.get("Location")
    assert location, html[:300]
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(location).query))


def test_portal_success_callback_reconciles_and_queues_the_initial_sync(session, sandbox):
    uid = make_user(session)
    url = create_portal_link(session, user_id=uid, broker="SANDBOX_US", redirect_url="http://127.0.0.1:8501/callback")
    params = portal(url, "SANDBOX_US", "connect")
    assert params["status"] == "SUCCESS" and params["connection_id"]
    outcome = handle_portal_callback(session, user_id=uid, params=params)
    assert outcome.status == "connected" and outcome.run_ids
    conn = session.get(BrokerageConnection, outcome.connection_id)
    assert conn.authorization_id == params["connection_id"] and conn.status == "active"
    assert session.exec(select(BrokerageAccount).where(BrokerageAccount.connection_id == conn.id)).all()
    run = session.get(TransactionSyncLog, outcome.run_ids[0])
    assert run.trigger == "initial" and run.status == "queued"
    assert outcome.change == "new" and "first import has been queued" in outcome.message
    # A reload or replay of the callback (same params) finds a known connection: it queues nothing.
    again = handle_portal_callback(session, user_id=uid, params=params)
    assert again.run_ids == [] and again.change is None and "already connected" in again.message
    assert session.exec(select(sa.func.count()).select_from(TransactionSyncLog)).one() == 1


def _onboard(session, engine, sandbox, queue_wait: timedelta = timedelta(0)) -> list[str]:
    """A new trader from portal link to finished first import; the SnapTrade requests it made (portal pages aside)."""
    uid = make_user(session)
    sandbox.set_history_size(300)  # one page per account
    sandbox.reset_request_log()
    url = create_portal_link(
        session, user_id=uid, broker="SANDBOX_CRYPTO", redirect_url="http://127.0.0.1:8501/callback"
    )
    outcome = handle_portal_callback(session, user_id=uid, params=portal(url, "SANDBOX_CRYPTO", "connect"))
    [run_id] = outcome.run_ids
    run = session.get(TransactionSyncLog, run_id)
    run.queued_at -= queue_wait  # the run waited in the queue this long after the callback's reconcile
    run.reconciled_at = run.reconciled_at and run.reconciled_at - queue_wait
    session.add(run)
    session.commit()
    jobs.claim_run(session, run_id, "test-worker")
    assert execute_run(run_id, engine=engine).status == "completed"
    return [r["path_template"] for r in sandbox.request_log() if not r["path_template"].startswith(PORTAL_PREFIX)]


def test_a_new_connection_spends_the_reconcile_once_from_portal_link_to_first_import(session, engine, sandbox):
    requests = _onboard(session, engine, sandbox)
    # register, login link, the callback's reconcile (2), then one activities page, balances and positions
    assert requests.count("/authorizations") == 1 and requests.count("/accounts/all") == 1, requests
    assert len(requests) <= 7, requests


def test_an_initial_run_that_waited_past_the_reuse_window_reconciles_again(session, engine, sandbox):
    requests = _onboard(session, engine, sandbox, queue_wait=timedelta(seconds=REUSE_SECONDS + 5))
    assert requests.count("/authorizations") == 2 and requests.count("/accounts/all") == 2, requests


@pytest.mark.parametrize("action, status", [("invalid", "error"), ("cancel", "abandoned")])
def test_portal_failures_are_explained(session, sandbox, action, status):
    uid = make_user(session)
    url = create_portal_link(session, user_id=uid, broker="SANDBOX_US", redirect_url="http://127.0.0.1:8501/callback")
    outcome = handle_portal_callback(session, user_id=uid, params=portal(url, "SANDBOX_US", action))
    assert outcome.status == status and outcome.message
    if status == "error":
        assert outcome.error_code == "1066" and "1066" in outcome.message
    assert session.exec(select(sa.func.count()).select_from(BrokerageConnection)).one() == 0


def test_callback_does_not_trust_the_query_string(session, sandbox):
    uid = make_user(session)
    create_portal_link(session, user_id=uid)  # registers the SnapTrade user only
    forged = handle_portal_callback(
        session, user_id=uid, params={"status": "SUCCESS", "connection_id": "not-a-real-id"}
    )
    assert forged.status == "unknown"
    assert session.exec(select(sa.func.count()).select_from(BrokerageConnection)).one() == 0


def test_reconnect_link_targets_the_disabled_connection_and_keeps_ids(session, sandbox):
    uid = make_user(session)
    auth = connect(session, sandbox, uid, history_size=30)
    reconcile_connections(session, user_id=uid)
    sandbox.disable_connection(auth)
    reconcile_connections(session, user_id=uid)
    conn = session.exec(select(BrokerageConnection)).one()
    assert conn.status == "needs_reconnect" and conn.disabled_at
    url = create_portal_link(
        session, user_id=uid, reconnect_connection_id=conn.id, redirect_url="http://127.0.0.1:8501/callback"
    )
    params = portal(url, None, "connect")
    assert params == {"status": "SUCCESS", "connection_id": auth}
    outcome = handle_portal_callback(session, user_id=uid, params=params)
    session.refresh(conn)
    assert outcome.status == "connected" and conn.status == "active" and conn.disabled_at is None
    assert outcome.change == "reconnected" and len(outcome.run_ids) == 1 and "first import" not in outcome.message
    assert session.exec(select(sa.func.count()).select_from(BrokerageConnection)).one() == 1


def test_deleted_and_removed_at_snaptrade_are_marked_but_history_is_kept(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        gone = connect(s, sandbox, uid, broker="SANDBOX_CRYPTO", history_size=40)
        stays = connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=40)
    sync_now(engine, uid)
    with Session(engine, expire_on_commit=False) as s:
        kept = s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one()
        ca_account = s.exec(select(BrokerageAccount).join(BrokerageConnection)
                            .where(BrokerageConnection.authorization_id == stays)).first()  # fmt: skip
        sandbox.delete_connection(gone)
        sandbox.remove_account(ca_account.snaptrade_account_id)
        reconcile_connections(s, user_id=uid)
        conn = s.exec(select(BrokerageConnection).where(BrokerageConnection.authorization_id == gone)).one()
        assert conn.status == "disconnected"
        s.refresh(ca_account)
        assert not ca_account.is_active and ca_account.removed_at
        assert s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one() == kept


@pytest.mark.parametrize("keep", [True, False])
def test_disconnect_deletes_at_snaptrade_and_keeps_history_unless_asked(engine, sandbox, keep):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        auth = connect(s, sandbox, uid, history_size=60)
    sync_now(engine, uid)
    with Session(engine, expire_on_commit=False) as s:
        conn = s.exec(select(BrokerageConnection)).one()
        before = s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one()
        disconnect_connection(s, user_id=uid, connection_id=conn.id, keep_history=keep)
        s.refresh(conn)
        assert conn.status == "disconnected" and not conn.auto_sync_enabled
        assert auth not in {c["id"] for c in _authorizations(sandbox, snaptrade_user_id(s, uid))}
        after = s.exec(select(sa.func.count()).select_from(BrokerageTransaction)).one()
        assert after == (before if keep else 0) and before > 0
        with pytest.raises(ValueError):
            disconnect_connection(s, user_id=uid + 999, connection_id=conn.id)


def _authorizations(sandbox, st_user):
    from core.snaptrade.client import SnapTradeClient

    return SnapTradeClient().list_authorizations(st_user, sandbox.user_secret(st_user))


def test_auto_sync_settings_are_validated(session, sandbox):
    uid = make_user(session)
    connect(session, sandbox, uid, history_size=5)
    reconcile_connections(session, user_id=uid)
    conn = session.exec(select(BrokerageConnection)).one()
    with pytest.raises(ValueError, match="between 1 hour and 7 days"):
        set_auto_sync(session, user_id=uid, connection_id=conn.id, enabled=True, frequency_minutes=5)
    updated = set_auto_sync(session, user_id=uid, connection_id=conn.id, enabled=False, frequency_minutes=720)
    assert not updated.auto_sync_enabled and updated.next_sync_at is None and updated.sync_frequency_minutes == 720


def test_a_snaptrade_identity_never_shows_its_secret():
    import logging
    import traceback

    from core.accounts.connections import SnapTradeIdentity

    identity = SnapTradeIdentity(snaptrade_user_id="u-1", user_secret="s3cr3t-value-123")
    assert "s3cr3t" not in repr(identity) and "s3cr3t" not in str(identity) and "u-1" in repr(identity)
    assert "s3cr3t" not in f"{identity!r} {identity}"
    try:
        raise RuntimeError(f"sync failed for {identity!r}")
    except RuntimeError as exc:
        text = "".join(traceback.format_exception(exc))
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "identity %r", (identity,), None)
    assert "s3cr3t" not in text and "s3cr3t" not in record.getMessage()
