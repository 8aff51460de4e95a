"""Deterministic, SnapTrade-shaped transactions for many users, written as a sync writes pages (PERFORMANCE §4)."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate, islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.storage.models import AppUser, BrokerageAccount, BrokerageConnection, BrokerageTransaction

T = BrokerageTransaction.__table__

# (type, weight): a trader's history is mostly trades and dividends.
TYPE_WEIGHTS = (
    ("BUY", 300), ("SELL", 200), ("DIVIDEND", 150), ("REI", 30), ("INTEREST", 50), ("FEE", 50), ("TAX", 30),
    ("CONTRIBUTION", 60), ("WITHDRAWAL", 20), ("OPTIONEXPIRATION", 10), ("OPTIONASSIGNMENT", 5),
    ("TRANSFER", 10), ("STOCK_DIVIDEND", 5), ("RETURN_OF_CAPITAL", 5), ("SPLIT", 3), ("OTHER", 2),
)  # fmt: skip
SYMBOLS = (
    "AAPL MSFT NVDA AMZN GOOG META TSLA BRK.B JPM V UNH XOM JNJ PG MA HD CVX MRK ABBV PEP KO AVGO COST WMT MCD "
    "CSCO TMO ACN ABT DHR NEE LIN TXN PM NKE ORCL AMD INTC QCOM IBM SPY QQQ VTI VOO IWM DIA SCHD VYM XLE XLF "
    "SHOP RY TD ENB CNR BNS BMO CP SU TRP BCE MFC SLF NTR CNQ ATD WCN FTS T BAM GIB L DOL WN"
).split()
QUANTUM = Decimal("0.01")


@dataclass
class SeedPlan:
    users: int = 100
    rows_per_user: int = 10_000
    big_user_rows: int = 200_000
    seed: int = 42
    years: int = 6
    chunk: int = 5_000


@dataclass
class Seeded:
    big_user_id: int
    typical_user_id: int
    rows: int
    top_symbol: str
    big_username: str = "bigtrader"
    account_ids: dict[int, list[int]] = field(default_factory=dict)  # per user (bench.journal adds pages to them)


def _create_owners(engine: Engine, plan: SeedPlan) -> dict[str, tuple[int, list[tuple[int, str]]]]:
    """App users, one connection each and two accounts (USD margin + USD IRA, or CAD TFSA for every 4th user)."""
    owners: dict[str, tuple[int, list[tuple[int, str]]]] = {}
    with Session(engine) as s:
        for i, username in enumerate([*(f"trader{i:03d}" for i in range(plan.users)), "bigtrader"]):
            s.add(user := AppUser(username=username, password_hash="x", role="trader"))
            s.flush()
            s.add(conn := BrokerageConnection(user_id=user.id, authorization_id=f"auth-{username}",
                                              brokerage_slug="QUESTRADE", brokerage_name="Questrade"))  # fmt: skip
            s.flush()
            second = ("TFSA", "CAD") if (i % 4 == 3 or username == "bigtrader") else ("Roth IRA", "USD")
            s.add_all(accounts := [BrokerageAccount(user_id=user.id, connection_id=conn.id, snaptrade_account_id=f"acct-{username}-{k}",
                                                    account_name=name, account_number=f"****{1000 + i * 2 + k}",
                                                    institution_name="Questrade", currency=currency)
                                   for k, (name, currency) in enumerate((("Individual Margin", "USD"), second))])  # fmt: skip
            s.flush()
            owners[username] = (user.id, [(a.id, a.currency) for a in accounts])
        s.commit()
    return owners


def _figures(kind: str, day: date, symbol: str | None, rng: random.Random) -> tuple:
    """(units, price, fee, option ticker, amount) of one seeded activity: 12 % of trades are options."""
    qty = price = fee = option = None
    if kind in ("BUY", "SELL"):
        if rng.random() < 0.12:
            expiry = day + timedelta(days=rng.randrange(7, 120))
            strike = Decimal(rng.randrange(5, 500))
            option = f"{symbol or 'SPY':<6}{expiry:%y%m%d}{rng.choice('CP')}{int(strike * 1000):08d}"  # OCC
            qty = Decimal(rng.randrange(1, 10))
            price = (Decimal(rng.randrange(5, 2000)) / 100).quantize(QUANTUM)
            amount = qty * price * 100
        else:
            qty = Decimal(rng.randrange(1, 300))
            price = (Decimal(rng.randrange(500, 90000)) / 100).quantize(QUANTUM)
            amount = qty * price
        fee = Decimal(rng.choice(("0", "0", "4.95", "9.99", "1.00")))
        amount = -(amount + fee) if kind == "BUY" else amount - fee
    elif kind in ("DIVIDEND", "REI", "INTEREST", "CONTRIBUTION", "RETURN_OF_CAPITAL"):
        amount = (Decimal(rng.randrange(100, 500000)) / 100).quantize(QUANTUM)
    elif kind in ("FEE", "TAX", "WITHDRAWAL"):
        amount = -(Decimal(rng.randrange(100, 200000)) / 100).quantize(QUANTUM)
    else:
        amount = Decimal(0)
    return qty, price, fee, option, amount


def transactions(user_id: int, accounts: list[tuple[int, str]], n: int, rng: random.Random, years: int) -> Iterator[dict[str, Any]]:  # fmt: skip
    """n rows spread over `years` years up to yesterday, 70 % in the first account."""
    types, cum = [t for t, _ in TYPE_WEIGHTS], list(accumulate(w for _, w in TYPE_WEIGHTS))
    sym_cum = list(accumulate(1 / (k + 1) for k in range(len(SYMBOLS))))  # a few favourites, a long tail
    end = date.today() - timedelta(days=1)
    span = 365 * years
    now = datetime.now(UTC)
    for i in range(n):
        account_id, currency = accounts[0] if rng.random() < 0.7 else accounts[1]
        kind = rng.choices(types, cum_weights=cum)[0]
        day = end - timedelta(days=rng.randrange(span))
        no_symbol = kind in ("CONTRIBUTION", "WITHDRAWAL", "INTEREST", "FEE", "TRANSFER", "OTHER")
        symbol = None if no_symbol else rng.choices(SYMBOLS, cum_weights=sym_cum)[0]
        qty, price, fee, option, amount = _figures(kind, day, symbol, rng)
        activity_id = f"{user_id:04x}-{i:08x}-{rng.getrandbits(48):012x}"
        desc = f"{kind.replace('_', ' ').title()} {option or symbol or ''}".strip()
        settle = day + timedelta(days=1 if kind in ("BUY", "SELL") else 0)
        raw = {
            "id": activity_id, "account": {"id": f"acct-{account_id}"}, "type": kind, "description": desc,
            "symbol": {"id": f"sym-{symbol}", "symbol": symbol, "raw_symbol": symbol, "description": f"{symbol} Inc.",
                       "currency": {"code": currency}, "exchange": {"code": "NASDAQ", "mic_code": "XNAS"},
                       "type": {"code": "cs", "description": "Common Stock"}} if symbol and not option else None,
            "option_symbol": {"ticker": option, "option_type": "CALL" if option and option[12] == "C" else "PUT",
                              "underlying_symbol": {"symbol": symbol}} if option else None,
            "units": qty, "price": price, "amount": amount, "fee": fee, "fx_rate": None,
            "currency": {"code": currency, "name": currency}, "institution": "Questrade",
            "trade_date": f"{day.isoformat()}T14:30:00.000Z", "settlement_date": f"{settle.isoformat()}T00:00:00.000Z",
            "external_reference_id": f"ord-{rng.getrandbits(32):08x}", "option_type": "", "pagination": None,
        }  # fmt: skip
        yield {
            "user_id": user_id, "account_id": account_id, "snaptrade_activity_id": activity_id, "transaction_type": kind,
            "raw_type": kind, "symbol": (option[:6].strip() if option else symbol), "security_name": f"{symbol} Inc." if symbol else None,
            "security_type": "option" if option else ("cs" if symbol else None), "option_ticker": option,
            "option_underlying": symbol if option else None, "option_right": ("CALL" if option[12] == "C" else "PUT") if option else None,
            "option_strike": Decimal(int(option[13:])) / 1000 if option else None,
            "option_expiration": datetime.strptime(option[6:12], "%y%m%d").date() if option else None,
            "option_action": ("BUY_TO_OPEN" if kind == "BUY" else "SELL_TO_CLOSE") if option else None,
            "quantity": qty, "price": price, "amount": amount, "fee": fee, "currency": currency, "fx_rate": None,
            "trade_date": day, "trade_timestamp": raw["trade_date"], "trade_date_from_settlement": False,
            "settlement_date": settle, "description": desc, "institution": "Questrade",
            "external_reference_id": raw["external_reference_id"],
            "fingerprint": hashlib.blake2b(f"{account_id}{kind}{day}{amount}{symbol}".encode(), digest_size=16).hexdigest(),
            "raw_hash": hashlib.blake2b(activity_id.encode(), digest_size=16).hexdigest(), "raw": raw,
            "created_at": now, "updated_at": now,
        }  # fmt: skip


def insert_rows(engine: Engine, rows: Iterator[dict[str, Any]], chunk: int = 5_000) -> int:
    """Write `rows` in one transaction, `chunk` rows a statement; how many there were."""
    # RETURNING is what makes SQLAlchemy batch a PostgreSQL executemany into multi-row statements.
    insert = sa.insert(T).returning(T.c.id) if engine.dialect.name == "postgresql" else sa.insert(T)
    total = 0
    with engine.begin() as c:
        while batch := list(islice(rows, chunk)):
            c.execute(insert, batch)
            total += len(batch)
    return total


def all_visible_share(c) -> float:
    """Share of brokerage_transactions' pages that PostgreSQL's visibility map marks all-visible."""
    pages, visible = c.execute(sa.text("SELECT relpages, relallvisible FROM pg_class WHERE relname = 'brokerage_transactions'")).one()  # fmt: skip
    return visible / pages if pages else 1.0


def _vacuum_until_all_visible(c, attempts: int = 20) -> float:
    """VACUUM ANALYZE until the table is all-visible despite older snapshots (PERFORMANCE §4); the share it covers."""
    share = 0.0
    for attempt in range(attempts):
        c.execute(sa.text("VACUUM ANALYZE brokerage_transactions"))
        share = all_visible_share(c)
        if share >= 0.99:
            break
        time.sleep(1 + attempt)  # let the snapshot that holds the rows back end
    else:
        raise RuntimeError(f"VACUUM left only {share:.0%} of brokerage_transactions all-visible after {attempts} tries")
    c.execute(sa.text("VACUUM ANALYZE"))  # the other tables
    return share


def seed(engine: Engine, plan: SeedPlan) -> Seeded:
    """Seed a migrated, empty database; ANALYZE (VACUUM ANALYZE on PostgreSQL) at the end."""
    owners, total = _create_owners(engine, plan), 0
    for username, (user_id, accounts) in owners.items():
        n = plan.big_user_rows if username == "bigtrader" else plan.rows_per_user
        rows = transactions(user_id, accounts, n, random.Random(f"{plan.seed}/{username}"), plan.years)
        total += insert_rows(engine, rows, plan.chunk)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        if engine.dialect.name == "postgresql":
            _vacuum_until_all_visible(c)
        else:
            c.execute(sa.text("ANALYZE"))
    big_id = owners["bigtrader"][0]
    with engine.connect() as c:
        top = c.execute(sa.select(T.c.symbol, sa.func.count().label("n")).where(T.c.user_id == big_id, T.c.symbol.is_not(None))
                        .group_by(T.c.symbol).order_by(sa.desc("n")).limit(1)).first()  # fmt: skip
    return Seeded(big_id, owners["trader000"][0] if plan.users else big_id, total, top[0] if top else "AAPL",
                  account_ids={uid: [a for a, _ in accounts] for uid, accounts in owners.values()})  # fmt: skip
