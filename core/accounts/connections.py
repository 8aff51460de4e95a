"""SnapTrade users, the connection portal, and reconciling connections and accounts with SnapTrade.

SnapTrade is the source of truth for which connections exist: the portal's redirect is only a hint,
so a sync or a callback always re-reads connections and accounts first (a run queued right after such a
re-read, by the callback or the CLI, reuses it while it is fresh: core.ingest.reconcile_once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.accounts.crypto import decrypt_secret, encrypt_secret
from core.redaction import remember_secret
from core.settings import get_settings
from core.snaptrade.client import (
    InvalidInputError,
    NotFoundError,
    SnapTradeClient,
    UserSecretRefused,
    new_snaptrade_user_id,
)
from core.snaptrade.values import date_or_none, datetime_or_none, decimal_or_none
from core.storage.models import (
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    SnapTradeUser,
    utcnow,
)

log = logging.getLogger("tradistry.connections")

DEFAULT_DISABLED_REASON = "SnapTrade reports this connection as disabled: the brokerage login expired or was revoked."
SECRET_REFUSED_CODE = "1083"
SECRET_REFUSED_REASON = ("SnapTrade no longer accepts this user's secret (error 1083): syncing, connecting and "
                         "reconnecting are paused until the secret is reset or the user is registered again.")  # fmt: skip


@dataclass
class SnapTradeIdentity:
    """Who we are at SnapTrade for one user. The decrypted secret never shows in repr(), so not in a
    traceback's locals, a log line or a debugger's summary either."""

    snaptrade_user_id: str
    user_secret: str = field(repr=False)
    problem: str | None = None  # why SnapTrade calls for this user are paused (status needs_attention)


def ensure_snaptrade_user(session: Session, user_id: int, client: SnapTradeClient | None = None) -> SnapTradeIdentity:
    """The user's SnapTrade identity, registering one (opaque id, encrypted secret) the first time."""
    row = session.exec(select(SnapTradeUser).where(SnapTradeUser.user_id == user_id)).first()
    if row is not None:
        return _identity(row)
    client = client or SnapTradeClient()
    snaptrade_user_id = new_snaptrade_user_id()
    secret = client.register_user(snaptrade_user_id)
    session.add(SnapTradeUser(user_id=user_id, snaptrade_user_id=snaptrade_user_id,
                              user_secret_encrypted=encrypt_secret(secret)))  # fmt: skip
    session.commit()
    return SnapTradeIdentity(snaptrade_user_id, secret)


def get_snaptrade_identity(session: Session, user_id: int) -> SnapTradeIdentity | None:
    row = session.exec(select(SnapTradeUser).where(SnapTradeUser.user_id == user_id)).first()
    return None if row is None else _identity(row)


def _identity(row: SnapTradeUser) -> SnapTradeIdentity:
    secret = decrypt_secret(row.user_secret_encrypted)
    remember_secret(secret)
    problem = (row.status_reason or SECRET_REFUSED_REASON) if row.status == "needs_attention" else None
    return SnapTradeIdentity(row.snaptrade_user_id, secret, problem)


def mark_secret_refused(session: Session, user_id: int, reason: str = SECRET_REFUSED_REASON) -> None:
    """Flag the user's registration and live connections as needing attention, with the reason.

    The scheduler only picks active connections, so the flagged ones stop being synced automatically;
    the 1083 code in error_details tells a recovery which connections to bring back. Idempotent: a
    webhook may have set a flagged connection active again, so it is flagged again."""
    now = utcnow()
    row = session.exec(select(SnapTradeUser).where(SnapTradeUser.user_id == user_id)).first()
    if row is not None:
        if row.status != "needs_attention":
            row.status, row.status_changed_at = "needs_attention", now
        row.status_reason, row.updated_at = reason, now
        session.add(row)
    live = select(BrokerageConnection).where(BrokerageConnection.user_id == user_id,
                                             BrokerageConnection.status != "disconnected")  # fmt: skip
    for conn in session.exec(live):
        if conn.status != "error" or (conn.error_details or {}).get("code") != SECRET_REFUSED_CODE:
            conn.error_details = {
                "code": SECRET_REFUSED_CODE,
                "type": "UserSecretRefused",
                "previous_status": conn.status,
            }
        conn.status, conn.status_reason, conn.updated_at = "error", reason, now
        session.add(conn)
    session.commit()
    log.warning("SnapTrade refuses the secret of user %s: registration and connections flagged", user_id)


@contextmanager
def secret_in_use(session: Session, user_id: int, identity: SnapTradeIdentity) -> Iterator[None]:
    """Around SnapTrade calls made with the user's secret: a refused secret flags the user (see
    mark_secret_refused) and raises UserSecretRefused with the reason. While the user is flagged, no
    call is made at all: it could only be refused again."""
    if identity.problem:
        mark_secret_refused(session, user_id, identity.problem)
        raise UserSecretRefused(identity.problem, status=401, code=SECRET_REFUSED_CODE)
    try:
        yield
    except UserSecretRefused as exc:
        mark_secret_refused(session, user_id)
        raise UserSecretRefused(SECRET_REFUSED_REASON, status=exc.status, code=exc.code,
                                request_id=exc.request_id) from None  # fmt: skip


def create_portal_link(
    session: Session,
    *,
    user_id: int,
    broker: str | None = None,
    reconnect_connection_id: int | None = None,
    redirect_url: str | None = None,
    client: SnapTradeClient | None = None,
    requested_by: str | None = None,
) -> str:
    """A fresh connection-portal URL (valid 5 minutes), for a new connection or a reconnect; the attempt is
    recorded for staff (core.accounts.attempts), `requested_by` naming a staff member who asked for it."""
    from core.accounts.attempts import record_portal_link

    client = client or SnapTradeClient()
    identity = ensure_snaptrade_user(session, user_id, client)
    reconnect = None
    if reconnect_connection_id is not None:
        conn = session.get(BrokerageConnection, reconnect_connection_id)
        if conn is None or conn.user_id != user_id:
            raise ValueError("That connection does not exist.")
        reconnect = conn.authorization_id
    if redirect_url is None:
        redirect_url = get_settings().app_base_url.rstrip("/") + "/callback"
    with secret_in_use(session, user_id, identity):
        url = client.login_link(identity.snaptrade_user_id, identity.user_secret, broker=broker,
                                redirect=redirect_url, reconnect=reconnect)  # fmt: skip
    record_portal_link(session, user_id=user_id, broker=broker, reconnect_connection_id=reconnect_connection_id,
                       requested_by=requested_by)  # fmt: skip
    return url


@dataclass
class ReconcileResult:
    connections: dict[str, BrokerageConnection] = field(default_factory=dict)  # authorization id → row
    new_connection_ids: list[int] = field(default_factory=list)
    fixed_connection_ids: list[int] = field(default_factory=list)
    accounts: dict[str, BrokerageAccount] = field(default_factory=dict)  # SnapTrade account id → row
    requests: int = 0
    matched_webhook_ids: list[int] = field(default_factory=list)  # early webhooks that took effect now
    at: datetime | None = None  # when it asked SnapTrade (before the requests): runs queued on it reuse it


def _apply_authorization(conn: BrokerageConnection, auth: dict, now: datetime) -> str | None:
    """Copy SnapTrade's view of a connection onto our row; returns 'broken' / 'fixed' on a change."""
    brokerage = auth.get("brokerage") or {}
    conn.brokerage_slug = brokerage.get("slug") or conn.brokerage_slug
    conn.brokerage_name = brokerage.get("display_name") or brokerage.get("name") or conn.brokerage_name or "Brokerage"
    conn.connection_type = auth.get("type") or conn.connection_type
    change = None
    if auth.get("disabled"):
        if conn.status != "needs_reconnect":
            change = "broken"
        conn.status = "needs_reconnect"
        conn.disabled_at = datetime_or_none(auth.get("disabled_date")) or conn.disabled_at or now
        meta = auth.get("meta") if isinstance(auth.get("meta"), dict) else {}
        conn.status_reason = (
            auth.get("disabled_reason") or meta.get("disabled_reason") or conn.status_reason or DEFAULT_DISABLED_REASON
        )
    else:
        if conn.status in ("needs_reconnect", "disconnected", "pending"):
            change = "fixed"
        if conn.status != "error":
            conn.status = "active"
        conn.disabled_at = None
        conn.status_reason = None
    conn.updated_at = now
    return change


def reconcile_connections(
    session: Session, *, user_id: int, client: SnapTradeClient | None = None, identity: SnapTradeIdentity | None = None
) -> ReconcileResult:
    """Bring connections and accounts in line with SnapTrade (2 requests: authorizations + accounts)."""
    client = client or SnapTradeClient()
    identity = identity or get_snaptrade_identity(session, user_id)
    result = ReconcileResult()
    if identity is None:
        return result
    before = client.requests_made
    now = utcnow()
    with secret_in_use(session, user_id, identity):
        authorizations = client.list_authorizations(identity.snaptrade_user_id, identity.user_secret)
    seen = _reconcile_authorizations(session, user_id, authorizations, now, result)
    with secret_in_use(session, user_id, identity):
        accounts = client.list_accounts(identity.snaptrade_user_id, identity.user_secret)
    _reconcile_accounts(session, user_id, accounts, seen, now, result)
    session.commit()
    result.requests = client.requests_made - before
    result.at = now
    result.matched_webhook_ids = _match_early_webhooks(session, user_id, result.new_connection_ids)
    return result


def _reconcile_authorizations(session: Session, user_id: int, authorizations: list[dict], now: datetime,
                              result: ReconcileResult) -> set[str]:  # fmt: skip
    """Record new authorizations, refresh known ones, and mark those SnapTrade no longer lists disconnected
    (their history is kept); the authorization ids listed."""
    existing = {
        c.authorization_id: c
        for c in session.exec(select(BrokerageConnection).where(BrokerageConnection.user_id == user_id))
    }
    frequency = get_settings().sync_frequency_minutes
    seen: set[str] = set()
    for auth in authorizations:
        auth_id = str(auth.get("id") or "")
        if not auth_id:
            continue
        seen.add(auth_id)
        conn = existing.get(auth_id)
        is_new = conn is None
        if is_new:
            conn = BrokerageConnection(user_id=user_id, authorization_id=auth_id, status="active",
                                       sync_frequency_minutes=frequency, next_sync_at=None)  # fmt: skip
        change = _apply_authorization(conn, auth, now)
        session.add(conn)
        session.flush()
        if is_new:
            result.new_connection_ids.append(conn.id)
        elif change == "fixed":
            result.fixed_connection_ids.append(conn.id)
        result.connections[auth_id] = conn
    for auth_id, conn in existing.items():
        if auth_id not in seen and conn.status != "disconnected":
            conn.status = "disconnected"
            conn.status_reason = "The connection no longer exists at SnapTrade; imported history is kept."
            conn.updated_at = now
            session.add(conn)
    return seen


def _reconcile_accounts(session: Session, user_id: int, accounts: list[dict], seen: set[str], now: datetime,
                        result: ReconcileResult) -> None:  # fmt: skip
    """Record and refresh the listed accounts; one no longer listed under a still-listed connection is removed."""
    by_auth = {
        c.authorization_id: c
        for c in session.exec(select(BrokerageConnection).where(BrokerageConnection.user_id == user_id))
    }
    stored = {
        a.snaptrade_account_id: a
        for a in session.exec(select(BrokerageAccount).where(BrokerageAccount.user_id == user_id))
    }
    listed: set[str] = set()
    for raw in accounts:
        acc_id = str(raw.get("id") or "")
        conn = by_auth.get(str(raw.get("connection_id") or raw.get("brokerage_authorization") or ""))
        if not acc_id or conn is None:
            continue
        listed.add(acc_id)
        acc = stored.get(acc_id) or BrokerageAccount(
            user_id=user_id, connection_id=conn.id, snaptrade_account_id=acc_id
        )
        _apply_account(acc, conn, raw, now)
        session.add(acc)
        session.flush()
        result.accounts[acc_id] = acc
    for acc_id, acc in stored.items():
        conn = session.get(BrokerageConnection, acc.connection_id)
        if acc_id not in listed and acc.is_active and conn is not None and conn.authorization_id in seen:
            acc.is_active = False
            acc.removed_at = now
            acc.updated_at = now
            session.add(acc)


def _apply_account(acc: BrokerageAccount, conn: BrokerageConnection, raw: dict, now: datetime) -> None:
    """SnapTrade's account fields onto our row (a missing field keeps what we had)."""
    acc.connection_id = conn.id
    acc.account_name = raw.get("display_name") or raw.get("name") or acc.account_name
    acc.account_number = raw.get("masked_account_number") or raw.get("number") or acc.account_number
    acc.account_type = raw.get("raw_type") or raw.get("kind") or acc.account_type
    acc.institution_name = raw.get("institution_name") or conn.brokerage_name
    net = raw.get("net_value") or (raw.get("balance") or {}).get("total") or {}
    if isinstance(net, dict) and net.get("amount") is not None:
        acc.total_value = decimal_or_none(net.get("amount"))
        cur = net.get("currency")
        acc.currency = (cur.get("code") if isinstance(cur, dict) else cur) or acc.currency
        acc.balance_updated_at = now
    tx = ((raw.get("sync_status") or {}).get("transactions")) or {}
    acc.snaptrade_initial_sync_completed = tx.get("initial_sync_completed")
    acc.snaptrade_last_successful_sync = date_or_none(tx.get("last_successful_sync"))
    acc.first_transaction_date = date_or_none(tx.get("first_transaction_date"))
    if not acc.is_active and acc.removed_at is not None:
        acc.is_active, acc.removed_at = True, None
    acc.extra = {"is_paper": raw.get("is_paper"), "institution_account_id": raw.get("institution_account_id")}
    acc.updated_at = now


def _match_early_webhooks(session: Session, user_id: int, new_connection_ids: list[int]) -> list[int]:
    """SnapTrade's webhooks for a connection we had not recorded yet wait as pending: they take effect now."""
    from core.accounts.pending_webhooks import match_pending

    try:
        return match_pending(session.get_bind(), user_id=user_id, initial_for=new_connection_ids).matched
    except Exception:  # noqa: BLE001 - a reconcile must not fail for a hint; the events are matched next time
        log.warning("matching user %s's pending webhooks failed", user_id, exc_info=True)
        return []


@dataclass
class CallbackOutcome:
    status: str  # connected / error / abandoned / unknown
    message: str
    connection_id: int | None = None
    error_code: str | None = None
    run_ids: list[int] = field(default_factory=list)  # runs this callback queued (none for a replay)
    change: str | None = None  # "new" (first import queued), "reconnected" (one sync queued), or None


PORTAL_ERRORS = {
    "1066": "the brokerage rejected the login (wrong credentials or missing permission)",
    "3000": "the brokerage could not be reached",
    "1006": "the connection attempt expired before it was finished",
    "1012": "the request was invalid",
    "1023": "the reconnect used a different brokerage login than the original connection",
    "1140": "the brokerage API key lacks a needed permission",
    "1086": "the multi-factor code was wrong",
    "0000": "SnapTrade did not recognise the user",
}


def handle_portal_callback(
    session: Session, *, user_id: int, params: dict, client: SnapTradeClient | None = None
) -> CallbackOutcome:
    """The portal sent the browser back: treat the query as a hint, re-read SnapTrade, queue syncs.

    Only a change seen by this reconcile queues anything: an authorization new to us gets its first
    import, a broken one that SnapTrade now reports healthy gets one sync. A replayed or repeated
    callback finds neither (the first one recorded the change), so it shows the state and queues nothing."""
    from core.jobs.queue import enqueue_sync

    status = str(params.get("status") or "").upper()
    client = client or SnapTradeClient()
    if status == "ABANDONED":
        return CallbackOutcome("abandoned", "You left the connection portal before finishing; nothing was connected.")
    if status == "ERROR":
        code = str(params.get("error_code") or "") or None
        why = PORTAL_ERRORS.get(code or "", "the connection could not be completed")
        return CallbackOutcome("error", f"The brokerage connection failed: {why}" + (f" (error code {code})." if code else "."),
                               error_code=code)  # fmt: skip
    try:
        result = reconcile_connections(session, user_id=user_id, client=client)
    except IntegrityError:  # a concurrent callback recorded the same new authorization first: it queues the import
        session.rollback()
        result = reconcile_connections(session, user_id=user_id, client=client)
    from core.accounts.attempts import reconnecting

    new, fixed = set(result.new_connection_ids), set(result.fixed_connection_ids)
    target_id = reconnecting(session, user_id)
    target = session.get(BrokerageConnection, target_id) if target_id is not None else None
    if target is not None and target.status == "active":
        fixed.add(target.id)  # fixed before the browser came back (SnapTrade's webhook): still this pass's reconnect
    run_ids = []
    for cid in sorted(new | fixed):
        c = session.get(BrokerageConnection, cid)
        if c is None or c.status == "disconnected":
            continue
        run, _ = enqueue_sync(session, user_id=user_id, connection_id=cid, trigger="initial", reconciled_at=result.at)
        run_ids.append(run.id)
    hinted = result.connections.get(str(params.get("connection_id") or params.get("authorizationId") or ""))
    conn = hinted or (session.get(BrokerageConnection, min(new | fixed)) if new | fixed else None)
    if conn is None:
        return CallbackOutcome("unknown", "SnapTrade does not list a new connection yet. If you finished the portal, "
                                          "it will appear after the next sync.", run_ids=run_ids)  # fmt: skip
    name = conn.brokerage_name or "Your brokerage"
    if conn.id in new:
        message = f"{name} is connected; the first import has been queued."
    elif conn.id in fixed:
        message = f"{name} is reconnected; a sync has been queued to fetch what it missed."
    elif conn.status == "needs_reconnect":
        return CallbackOutcome("error", f"{name} still needs to be reconnected: SnapTrade reports it disabled.",
                               connection_id=conn.id, run_ids=run_ids)  # fmt: skip
    else:
        message = f"{name} is already connected: nothing more to do here."
    change = "new" if conn.id in new else "reconnected" if conn.id in fixed else None
    return CallbackOutcome("connected", message, connection_id=conn.id, run_ids=run_ids, change=change)


def disconnect_connection(
    session: Session,
    *,
    user_id: int,
    connection_id: int,
    keep_history: bool = True,
    client: SnapTradeClient | None = None,
) -> None:
    """Delete the connection at SnapTrade and mark it disconnected; optionally delete its history."""
    conn = session.get(BrokerageConnection, connection_id)
    if conn is None or conn.user_id != user_id:
        raise ValueError("That connection does not exist.")
    identity = get_snaptrade_identity(session, user_id)
    if identity is not None:
        client = client or SnapTradeClient()
        try:
            with secret_in_use(session, user_id, identity):
                client.delete_connection(identity.snaptrade_user_id, identity.user_secret, conn.authorization_id)
        except (NotFoundError, InvalidInputError):
            pass  # already gone at SnapTrade: the local state is what is left to fix
    mark_disconnected(
        session, conn, "Disconnected by you" + ("; imported history kept." if keep_history else "; history deleted.")
    )
    if not keep_history:
        from core.journal.upkeep import upkeep_accounts  # here: the journal's upkeep imports this module

        account_ids = select(BrokerageAccount.id).where(BrokerageAccount.connection_id == conn.id)
        session.execute(sa.delete(BrokerageTransaction).where(BrokerageTransaction.account_id.in_(account_ids)))
        upkeep_accounts(session, session.execute(account_ids).scalars())  # its pairs go in the same commit
        return
    session.commit()


def mark_disconnected(session: Session, conn: BrokerageConnection, reason: str) -> None:
    """Our side of a connection that is gone: no more syncs, its accounts inactive, history kept (uncommitted)."""
    now = utcnow()
    conn.status, conn.status_reason = "disconnected", reason
    conn.auto_sync_enabled, conn.next_sync_at, conn.updated_at = False, None, now
    session.add(conn)
    session.execute(sa.update(BrokerageAccount).where(BrokerageAccount.connection_id == conn.id)
                    .values(is_active=False, removed_at=now, updated_at=now))  # fmt: skip


def set_auto_sync(
    session: Session, *, user_id: int, connection_id: int, enabled: bool, frequency_minutes: int
) -> BrokerageConnection:
    if frequency_minutes < 60 or frequency_minutes > 7 * 24 * 60:
        raise ValueError(
            "Sync frequency must be between 1 hour and 7 days (SnapTrade refreshes activities once a day)."
        )
    conn = session.get(BrokerageConnection, connection_id)
    if conn is None or conn.user_id != user_id:
        raise ValueError("That connection does not exist.")
    conn.auto_sync_enabled = enabled
    conn.sync_frequency_minutes = frequency_minutes
    base = conn.last_sync_at or utcnow()
    conn.next_sync_at = base + timedelta(minutes=frequency_minutes) if enabled else None
    conn.updated_at = utcnow()
    session.add(conn)
    session.commit()
    return conn
