"""Test-data seeding: users, connections, accounts, transactions, runs, issues and webhook events.

ORM helpers (`make_*`) for readable tests; `bulk_transactions` inserts many rows with one
executemany per chunk, fast enough to seed 1M rows for benchmarks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.ingest.normalize import option_mini
from core.storage.models import (
    AppUser,
    BrokerageAccount,
    BrokerageConnection,
    BrokerageTransaction,
    SyncIssue,
    TransactionSyncLog,
    WebhookEvent,
)

_seq = itertools.count(1)


def _next(prefix: str) -> str:
    return f"{prefix}-{next(_seq)}"


def _save(session: Session, obj: Any) -> Any:
    session.add(obj)
    session.commit()
    session.refresh(obj)
    return obj


def make_user(session: Session, username: str | None = None, role: str = "trader", **kw: Any) -> AppUser:
    return _save(session, AppUser(username=username or _next("user"), password_hash="x", role=role, **kw))


def make_connection(session: Session, user: AppUser, **kw: Any) -> BrokerageConnection:
    kw.setdefault("authorization_id", _next("auth"))
    kw.setdefault("brokerage_name", "Alpaca")
    kw.setdefault("brokerage_slug", "ALPACA")
    return _save(session, BrokerageConnection(user_id=user.id, **kw))


def make_account(session: Session, connection: BrokerageConnection, **kw: Any) -> BrokerageAccount:
    kw.setdefault("snaptrade_account_id", _next("acct"))
    kw.setdefault("account_name", "Individual")
    kw.setdefault("account_number", "****1234")
    kw.setdefault("institution_name", connection.brokerage_name)
    kw.setdefault("currency", "USD")
    return _save(session, BrokerageAccount(user_id=connection.user_id, connection_id=connection.id, **kw))


def make_trader(session: Session, username: str | None = None) -> tuple[AppUser, BrokerageConnection, BrokerageAccount]:
    """A user with one active connection and one account: the usual starting point."""
    user = make_user(session, username)
    connection = make_connection(session, user)
    return user, connection, make_account(session, connection)


def _money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise TypeError("pass money as str or Decimal, never float")
    return Decimal(value)


def transaction_row(account: BrokerageAccount, **kw: Any) -> dict[str, Any]:
    """Column values for one transaction, with a raw payload shaped like SnapTrade's activity."""
    activity_id = kw.pop("snaptrade_activity_id", None) or _next("act")
    row: dict[str, Any] = {
        "user_id": account.user_id,
        "account_id": account.id,
        "snaptrade_activity_id": activity_id,
        "transaction_type": "BUY",
        "symbol": None,
        "currency": account.currency or "USD",
        "trade_date": date(2026, 1, 15),
        "description": None,
        "fingerprint": hashlib.sha256(activity_id.encode()).hexdigest(),
    }
    row.update(kw)
    for key in ("quantity", "price", "amount", "fee", "fx_rate", "option_strike"):
        if key in row:
            row[key] = _money(row[key])
    row.setdefault("raw_type", row["transaction_type"])
    row.setdefault(
        "raw",
        {
            "id": activity_id,
            "type": row["raw_type"],
            "amount": str(row.get("amount")) if row.get("amount") is not None else None,
            "currency": {"code": row["currency"]},
            "trade_date": f"{row['trade_date'].isoformat()}T00:00:00Z",
            "description": row["description"],
        },
    )
    # As the normalizer stores it beside the raw record (the journal reads it instead of the raw JSON); only
    # where set, so rows without it still insert into a database migrated to before 0012.
    if "option_mini" not in row and (
        mini := option_mini(row["raw"], row.get("security_type"), row.get("option_ticker"))
    ):
        row["option_mini"] = mini
    if "raw_hash" in BrokerageTransaction.__table__.c:  # column added by the sync engine's dedupe
        row.setdefault("raw_hash", hashlib.sha256(json.dumps(row["raw"], sort_keys=True).encode()).hexdigest())
    return row


def make_transaction(session: Session, account: BrokerageAccount, **kw: Any) -> BrokerageTransaction:
    """One transaction; money as str/Decimal, e.g. make_transaction(s, acct, amount="-100.50")."""
    return _save(session, BrokerageTransaction(**transaction_row(account, **kw)))


SYMBOLS = ("AAPL", "MSFT", "VTI", "TSLA", "NVDA", "BTC", "SPY", "QQQ", "AMZN", "GOOG")
_TYPE_WEIGHTS = (("BUY", 40), ("SELL", 25), ("DIVIDEND", 15), ("CONTRIBUTION", 6), ("WITHDRAWAL", 2),
                 ("FEE", 4), ("INTEREST", 4), ("TAX", 2), ("OPTIONEXPIRATION", 1), ("TRANSFER", 1))  # fmt: skip


def random_transactions(
    account: BrokerageAccount,
    n: int,
    *,
    seed: int = 1,
    start: date = date(2018, 1, 1),
    days: int = 3000,
    currencies: tuple[str, ...] = ("USD",),
) -> Iterator[dict[str, Any]]:
    """n plausible rows spread over `days` days; deterministic for a given seed."""
    rng = random.Random(seed)
    types = [t for t, _ in _TYPE_WEIGHTS]
    weights = [w for _, w in _TYPE_WEIGHTS]
    prefix = f"r{account.id}-{seed}"
    for i in range(n):
        kind = rng.choices(types, weights)[0]
        symbol = rng.choice(SYMBOLS) if kind in ("BUY", "SELL", "DIVIDEND", "TAX") else None
        qty = Decimal(rng.randint(1, 500)) if kind in ("BUY", "SELL") else None
        price = Decimal(rng.randint(100, 50000)) / 100 if qty else None
        if qty is not None and price is not None:
            amount = (qty * price) * (-1 if kind == "BUY" else 1)
        else:
            amount = Decimal(rng.randint(1, 500000)) / 100 * (-1 if kind in ("WITHDRAWAL", "FEE", "TAX") else 1)
        yield transaction_row(
            account,
            snaptrade_activity_id=f"{prefix}-{i}",
            transaction_type=kind,
            symbol=symbol,
            quantity=qty,
            price=price,
            amount=amount,
            fee=Decimal(rng.randint(0, 999)) / 100 if qty else None,
            currency=rng.choice(currencies),
            trade_date=start + timedelta(days=rng.randrange(days)),
            description=f"{kind} {symbol or ''}".strip(),
            raw={"id": f"{prefix}-{i}", "type": kind},
        )


def bulk_transactions(session: Session, rows: Any, chunk: int = 10_000) -> int:
    """Insert rows (dicts from transaction_row/random_transactions) with one executemany per chunk."""
    table = BrokerageTransaction.__table__
    total = 0
    batch: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for row in rows:
        row.setdefault("created_at", now)
        row.setdefault("updated_at", now)
        batch.append(row)
        if len(batch) >= chunk:
            session.execute(sa.insert(table), batch)
            total += len(batch)
            batch = []
    if batch:
        session.execute(sa.insert(table), batch)
        total += len(batch)
    session.commit()
    return total


def make_run(
    session: Session, user: AppUser, connection: BrokerageConnection | None = None, **kw: Any
) -> TransactionSyncLog:
    kw.setdefault("trigger", "manual")
    kw.setdefault("status", "completed")
    return _save(
        session, TransactionSyncLog(user_id=user.id, connection_id=connection.id if connection else None, **kw)
    )


def make_issue(session: Session, user: AppUser, account: BrokerageAccount | None = None, **kw: Any) -> SyncIssue:
    kw.setdefault("kind", "quarantined")
    kw.setdefault("reason", "missing trade_date")
    kw.setdefault("payload_hash", hashlib.sha256(_next("payload").encode()).hexdigest())
    kw.setdefault("raw_payload", {"id": _next("bad"), "type": "BUY", "trade_date": None})
    return _save(session, SyncIssue(user_id=user.id, account_id=account.id if account else None, **kw))


def make_webhook_event(session: Session, user: AppUser | None = None, **kw: Any) -> WebhookEvent:
    kw.setdefault("webhook_id", _next("wh"))
    kw.setdefault("event_type", "ACCOUNT_TRANSACTIONS_UPDATED")
    kw.setdefault("payload", {"webhookId": kw["webhook_id"], "eventType": kw["event_type"]})
    return _save(session, WebhookEvent(user_id=user.id if user else None, **kw))


def session_user(user_id: int, username: str = "alice", role: str = "trader", timezone: str | None = None):
    """The signed-in user the router puts in `session_state["current_user"]` before a page runs."""
    from core.accounts.auth import SessionUser

    return SessionUser(user_id=user_id, username=username, role=role, name=None, email=None, session_epoch=0,
                       is_active=True, timezone=timezone)  # fmt: skip
