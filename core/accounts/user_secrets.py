"""Recovering a SnapTrade user whose secret SnapTrade refuses (401, code 1083): the two ways SnapTrade
offers, resetting the secret or registering the user again, for the trader, staff and the CLI alike.

Flagging happens in `core.accounts.connections` (`secret_in_use`); here the flag is read, shown and cleared.
The secret itself never leaves this module's locals except encrypted (core.accounts.crypto).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from core.accounts.connections import (
    SECRET_REFUSED_CODE,
    mark_disconnected,
    mark_secret_refused,
    reconcile_connections,
)
from core.accounts.crypto import decrypt_secret, encrypt_secret
from core.jobs.queue import enqueue_sync
from core.redaction import remember_secret
from core.snaptrade.client import (
    SnapTradeClient,
    SnapTradeError,
    UserSecretRefused,
    new_snaptrade_user_id,
)
from core.storage.models import AppUser, BrokerageConnection, SnapTradeUser, utcnow

log = logging.getLogger("tradistry.user_secrets")

RESET_REFUSED_REASON = ("SnapTrade refused to reset this user's secret because it no longer accepts the stored one "
                        "(error 1083): register the user with SnapTrade again, then reconnect the brokerages.")  # fmt: skip
REGISTERED_AGAIN_REASON = ("Registered with SnapTrade again after its secret was refused: connect this brokerage "
                           "again. Imported history is kept.")  # fmt: skip
RESTORABLE = ("active", "pending", "needs_reconnect")


@dataclass(frozen=True)
class SecretStatus:
    """A user's SnapTrade registration as pages show it (never the secret)."""

    user_id: int
    username: str
    needs_attention: bool
    reason: str | None
    since: datetime | None
    flagged_connections: int = 0


@dataclass
class RecoveryOutcome:
    ok: bool
    message: str  # a sentence fit for the trader, staff or the terminal
    run_ids: list[int] = field(default_factory=list)


class NoRegistration(ValueError):
    """The user never registered with SnapTrade, so there is no secret to recover."""


def _row(session: Session, user_id: int) -> SnapTradeUser:
    row = session.exec(select(SnapTradeUser).where(SnapTradeUser.user_id == user_id)).first()
    if row is None:
        raise NoRegistration("This user has no SnapTrade registration yet: nothing to reset.")
    return row


def _flagged(session: Session, user_id: int) -> list[BrokerageConnection]:
    conns = session.exec(select(BrokerageConnection).where(BrokerageConnection.user_id == user_id,
                                                           BrokerageConnection.status == "error")).all()  # fmt: skip
    return [c for c in conns if (c.error_details or {}).get("code") == SECRET_REFUSED_CODE]


def _clear_flag(row: SnapTradeUser) -> None:
    row.status, row.status_reason, row.status_changed_at = "active", None, utcnow()
    row.updated_at = row.status_changed_at


def secret_status(session: Session, user_id: int) -> SecretStatus | None:
    """The user's registration state, or None before their first connection."""
    found = session.exec(select(SnapTradeUser, AppUser.username).join(AppUser, AppUser.id == SnapTradeUser.user_id)
                         .where(SnapTradeUser.user_id == user_id)).first()  # fmt: skip
    if found is None:
        return None
    row, username = found
    return SecretStatus(user_id, username, row.status == "needs_attention", row.status_reason, row.status_changed_at,
                        len(_flagged(session, user_id)))  # fmt: skip


def users_needing_attention(session: Session) -> list[SecretStatus]:
    """Every user whose secret SnapTrade refuses, longest waiting first (staff's Operations view)."""
    ids = session.exec(select(SnapTradeUser.user_id).where(SnapTradeUser.status == "needs_attention")
                       .order_by(SnapTradeUser.status_changed_at, SnapTradeUser.id)).all()  # fmt: skip
    return [s for s in (secret_status(session, uid) for uid in ids) if s is not None]


def reset_user_secret(
    session: Session, *, user_id: int, actor: str, client: SnapTradeClient | None = None
) -> RecoveryOutcome:
    """Ask SnapTrade for a new secret (resetUserSecret), store it encrypted, resume the flagged connections.

    SnapTrade checks the current secret first, so after a real 1083 it usually refuses: the user is then
    left flagged with a reason that says to register again (`register_again`)."""
    client = client or SnapTradeClient()
    row = _row(session, user_id)
    old = decrypt_secret(row.user_secret_encrypted)
    remember_secret(old)
    try:
        new = client.reset_user_secret(row.snaptrade_user_id, old)
    except UserSecretRefused:
        mark_secret_refused(session, user_id, RESET_REFUSED_REASON)
        log.warning("secret reset for user %s (asked by %s) refused by SnapTrade", user_id, actor)
        return RecoveryOutcome(False, RESET_REFUSED_REASON)
    # SnapTrade has already killed the old secret: store the new one before anything else can fail.
    row.user_secret_encrypted = encrypt_secret(new)
    _clear_flag(row)
    session.add(row)
    session.commit()
    log.info("SnapTrade secret of user %s reset (asked by %s)", user_id, actor)
    run_ids = _resume(session, user_id, client)
    return RecoveryOutcome(True, f"The SnapTrade secret was reset and stored; {_queued(run_ids)}", run_ids)


def _resume(session: Session, user_id: int, client: SnapTradeClient) -> list[int]:
    """Put the flagged connections back as they were, re-read them from SnapTrade and queue a sync each."""
    flagged = _flagged(session, user_id)
    for conn in flagged:
        previous = (conn.error_details or {}).get("previous_status")
        conn.status = previous if previous in RESTORABLE else "active"
        conn.status_reason = conn.error_message = conn.error_details = None
        conn.updated_at = utcnow()
        session.add(conn)
    session.commit()
    reconcile_connections(session, user_id=user_id, client=client)
    return [enqueue_sync(session, user_id=user_id, connection_id=c.id, trigger="manual")[0].id
            for c in flagged if session.get(BrokerageConnection, c.id).status == "active"]  # fmt: skip


def _queued(run_ids: list[int]) -> str:
    if not run_ids:
        return "no connection needed a sync."
    return f"{len(run_ids)} connection(s) are active again and a sync was queued for each."


def register_again(
    session: Session, *, user_id: int, actor: str, client: SnapTradeClient | None = None
) -> RecoveryOutcome:
    """SnapTrade's last resort for a lost secret: a new registration (new opaque id and secret), the old
    user deleted at SnapTrade, and the old connections marked disconnected with their history kept.
    The trader then connects the brokerages again. Only for a flagged user: it cannot be undone."""
    client = client or SnapTradeClient()
    row = _row(session, user_id)
    if row.status != "needs_attention":
        raise ValueError("SnapTrade still accepts this user's secret: reset it instead of registering again.")
    old_id, new_id = row.snaptrade_user_id, new_snaptrade_user_id()
    secret = client.register_user(new_id)
    row.snaptrade_user_id, row.user_secret_encrypted = new_id, encrypt_secret(secret)
    _clear_flag(row)
    session.add(row)
    live = session.exec(select(BrokerageConnection).where(BrokerageConnection.user_id == user_id,
                                                          BrokerageConnection.status != "disconnected")).all()  # fmt: skip
    for conn in live:
        mark_disconnected(session, conn, REGISTERED_AGAIN_REASON)
    session.commit()
    log.info(
        "user %s registered with SnapTrade again (asked by %s); %d connection(s) closed", user_id, actor, len(live)
    )
    try:
        client.delete_user(old_id)  # its connections are unreachable without the secret, but still billed
    except SnapTradeError as exc:
        log.warning("deleting the old SnapTrade registration of user %s failed: %s", user_id, exc)
    return RecoveryOutcome(True, f"Registered with SnapTrade again; {len(live)} old connection(s) were closed with "
                                 "their history kept. Connect the brokerages again to resume syncing.")  # fmt: skip
