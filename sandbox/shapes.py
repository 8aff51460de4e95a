"""SnapTrade response objects built from sandbox state (REFERENCE §7): Account, ConnectionAccount,
BrokerageAuthorization, balances and positions.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from sandbox.catalog import BROKERAGES, CURRENCIES, Security, stable_id
from sandbox.data import UNIVERSES, _price_on
from sandbox.state import Account, Connection, State, day_iso, utc_now_iso


def _holdings_stamp(state: State, acct: Account) -> str:
    return f"{day_iso(acct.last_sync_day + 1)} 06:00:00.000000+00:00"


def _transactions_status(state: State, acct: Account) -> dict[str, Any]:
    first = state.view(acct).first_day()
    return {
        "initial_sync_completed": True,
        "last_successful_sync": day_iso(acct.last_sync_day),
        "first_transaction_date": None if first is None else day_iso(first),
    }


def _net_value(state: State, acct: Account) -> Decimal:
    positions = holdings(state, acct)
    total = sum((Decimal(p[2]) * p[1] for p in positions), Decimal(0))
    return (total + cash(acct)).quantize(Decimal("0.01"))


def account_legacy(state: State, acct: Account) -> dict[str, Any]:
    """The legacy `Account` object (`/accounts`, `/accounts/{id}`, `/authorizations/{id}/accounts`)."""
    broker = BROKERAGES[acct.broker]
    return {
        "id": acct.id,
        "brokerage_authorization": acct.connection_id,
        "portfolio_group": stable_id("portfolio_group", acct.id),
        "name": f"{broker.display_name} {acct.name}",
        "number": acct.number,
        "institution_name": broker.display_name,
        "created_date": acct.created,
        "sync_status": {
            "transactions": _transactions_status(state, acct),
            "holdings": {
                "initial_sync_completed": True,
                "last_successful_sync": _holdings_stamp(state, acct),
                "holdings_unavailable": False,
            },
        },
        "balance": {"total": {"amount": float(_net_value(state, acct)), "currency": acct.currency}},
        "is_paper": False,
        "institution_account_id": f"{broker.slug}-{acct.number}",
        "funding_date": None,
        "opening_date": None,
        "status": "open",
        "raw_type": acct.raw_type,
        "account_category": "INVESTMENT",
        "meta": {"type": acct.raw_type, "status": "ACTIVE", "institution_name": broker.display_name},
        "cash_restrictions": [],
    }


def connection_account(state: State, acct: Account) -> dict[str, Any]:
    """The `ConnectionAccount` (investment kind) of `/accounts/all`, `/accounts/{id}/details`, `/connections/{id}/accounts`."""
    broker = BROKERAGES[acct.broker]
    stamp = _holdings_stamp(state, acct)
    return {
        "kind": "investment",
        "id": acct.id,
        "connection_id": acct.connection_id,
        "display_name": f"{broker.display_name} {acct.name}",
        "masked_account_number": "****" + acct.number[-4:],
        "institution_account_id": f"{broker.slug}-{acct.number}",
        "institution_id": broker.id,
        "opening_date": None,
        "funding_date": None,
        "raw_type": acct.raw_type,
        "cash_or_margin": acct.cash_or_margin,
        "net_value": {"amount": float(_net_value(state, acct)), "currency": acct.currency},
        "sync_status": {
            "transactions": _transactions_status(state, acct),
            "orders": stamp,
            "positions": stamp,
            "balances": stamp,
        },
        "is_paper": False,
    }


def authorization(conn: Connection) -> dict[str, Any]:
    """A `BrokerageAuthorization` (a connection)."""
    return {
        "id": conn.id,
        "created_date": conn.created,
        "updated_date": conn.updated,
        "brokerage": BROKERAGES[conn.broker].as_json(),
        "name": conn.name,
        "type": conn.type,
        "disabled": conn.disabled,
        "disabled_date": conn.disabled_date,
        "meta": {},
        "is_eligible_for_payout": False,
        "data_freshness_mode": {"institution": "delayed", "snaptrade": "delayed"},
    }


def cash(acct: Account) -> Decimal:
    return Decimal(acct.key % 5_000_000) / 100


def holdings(state: State, acct: Account) -> list[tuple[Security, Decimal, str]]:
    """A few deterministic positions (security, units, price string) drawn from the account's universe."""
    rng = random.Random(acct.key ^ acct.last_sync_day)
    pool: list[Security] = []
    for securities in UNIVERSES[acct.profile].values():
        for s in securities:
            if s not in pool:
                pool.append(s)
    out = []
    for sec in rng.sample(pool, min(len(pool), 3 + acct.key % 4)):
        price = _price_on(sec, acct.last_sync_day, rng)
        units = Decimal(rng.randint(1, 300)) if sec.type_code != "crypto" else Decimal(rng.randint(1, 10**8)) / 10**8
        out.append((sec, units, str(price)))
    return out


def balances(acct: Account) -> list[dict[str, Any]]:
    c = float(cash(acct))
    return [
        {
            "currency": CURRENCIES[acct.currency],
            "cash": c,
            "buying_power": c * (2 if acct.cash_or_margin == "margin" else 1),
        }
    ]


def positions(state: State, acct: Account) -> dict[str, Any]:
    kinds = {"cs": "stock", "ad": "adr", "et": "etf", "crypto": "crypto", "oef": "mutualfund"}
    results = []
    for sec, units, price in holdings(state, acct):
        results.append(
            {
                "instrument": {
                    "kind": kinds[sec.type_code],
                    "id": sec.id,
                    "symbol": sec.symbol,
                    "raw_symbol": sec.raw_symbol,
                    "description": sec.description,
                    "currency": sec.currency,
                    "exchange": sec.exchange,
                    "figi_instrument": None if sec.figi is None else {"figi_code": sec.figi, "figi_share_class": None},
                },
                "units": str(units),
                "price": price,
                "cost_basis": str((Decimal(price) * Decimal("0.9")).quantize(Decimal("0.01"))),
                "currency": sec.currency,
                "cash_equivalent": False,
                "tax_lots": [],
            }
        )
    return {"results": results, "data_freshness": {"as_of": _holdings_stamp(state, acct).replace(" ", "T")}}


def status() -> dict[str, Any]:
    return {"version": 151, "timestamp": utc_now_iso(), "online": True}
