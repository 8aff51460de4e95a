"""SnapTrade response objects built from sandbox state (REFERENCE §7): Account, ConnectionAccount,
BrokerageAuthorization, balances and positions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox.catalog import BROKERAGES, CURRENCIES, Security, stable_id
from sandbox.ledger import broker_holdings, current_price, replay
from sandbox.market import Contract
from sandbox.state import Account, Connection, State, day_iso, utc_now_iso

CENT = Decimal("0.01")


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
    view = state.view(acct)
    book = broker_holdings(view)
    total = book.cash
    for inst, h in book.holdings.items():
        multiplier = 100 if isinstance(inst, Contract) else 1
        total += h.units * multiplier * current_price(view, inst, h, acct.last_sync_day)
    return total.quantize(CENT)


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


def balances(state: State, acct: Account) -> list[dict[str, Any]]:
    """Cash is what the activities add up to (the late-history account's earlier purchases were paid before)."""
    c = float(replay(state.view(acct)).cash.quantize(CENT))
    return [
        {
            "currency": CURRENCIES[acct.currency],
            "cash": c,
            "buying_power": c * (2 if acct.cash_or_margin == "margin" else 1) if c > 0 else 0.0,
        }
    ]


_KINDS = {"cs": "stock", "ad": "adr", "et": "etf", "crypto": "crypto", "oef": "mutualfund"}


def _instrument(inst: Security | Contract) -> dict[str, Any]:
    """SnapTrade's position instrument: a stock-like one, or an option with its underlying."""
    if isinstance(inst, Contract):
        ticker = inst.ticker(padded=True)
        return {
            "kind": "option",
            "id": stable_id("option", ticker),
            "symbol": ticker,
            "option_type": "CALL" if inst.cp == "C" else "PUT",
            "strike_price": str(inst.strike),
            "expiration_date": day_iso(inst.expiry),
            "multiplier": "100",
            "underlying": _instrument(inst.underlying),
            "description": inst.label(),
        }
    return {
        "kind": _KINDS[inst.type_code],
        "id": inst.id,
        "symbol": inst.symbol,
        "raw_symbol": inst.raw_symbol,
        "description": inst.description,
        "currency": inst.currency,
        "exchange": inst.exchange,
        "figi_instrument": None if inst.figi is None else {"figi_code": inst.figi, "figi_share_class": None},
    }


def positions(state: State, acct: Account) -> dict[str, Any]:
    """Every instrument the account holds (short positions negative), as of the last synced day."""
    view = state.view(acct)
    results = []
    for inst, h in broker_holdings(view).holdings.items():
        if not h.units:
            continue
        option = isinstance(inst, Contract)
        per_share_cost = h.cost / (h.units * (100 if option else 1))
        results.append(
            {
                "instrument": _instrument(inst),
                "units": format(h.units, "f"),
                "price": format(current_price(view, inst, h, acct.last_sync_day), "f"),
                "cost_basis": format(per_share_cost.quantize(Decimal("0.0001")), "f"),
                "currency": acct.currency if option else inst.currency,
                "cash_equivalent": False,
                "tax_lots": [],
            }
        )
    return {"results": results, "data_freshness": {"as_of": _holdings_stamp(state, acct).replace(" ", "T")}}


def status() -> dict[str, Any]:
    return {"version": 151, "timestamp": utc_now_iso(), "online": True}
