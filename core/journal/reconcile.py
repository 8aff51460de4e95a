"""The history's open positions beside the broker's units: one row per account and instrument held by
either, with its status (matched, differs, not_at_broker, only_at_broker)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from core.journal.exact import ZERO
from core.journal.metrics import currency_order
from core.journal.trips import OpenPosition


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerPosition:
    """Units of one instrument the broker reports for an account."""

    account: str
    instrument: str
    currency: str | None
    units: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciledPosition:
    account: str
    instrument: str
    currency: str | None
    quantity: Decimal
    cost_basis: Decimal | None
    broker_quantity: Decimal | None
    status: str  # "matched" | "differs" | "not_at_broker" | "only_at_broker"


def reconcile(positions: Iterable[OpenPosition], broker: Iterable[BrokerPosition]) -> list[ReconciledPosition]:
    """History's holdings beside the broker's, one row per account and instrument held by either.

    A broker position is matched to the history row of the same account and instrument, preferring the same
    currency (the history may hold one instrument in two currencies); broker rows with zero units and no
    history are not holdings and give no row.
    """
    rows: list[ReconciledPosition] = []
    by_key: dict[tuple[str, str], list[OpenPosition]] = defaultdict(list)
    for position in positions:
        by_key[(position.account, position.instrument)].append(position)
    matched: dict[int, BrokerPosition] = {}
    for held in broker:
        candidates = by_key.get((held.account, held.instrument), [])
        free = [p for p in candidates if id(p) not in matched]
        target = next((p for p in free if p.currency == held.currency), free[0] if free else None)
        if target is not None:
            matched[id(target)] = held
        elif held.units:
            rows.append(_only_at_broker(held))
    for group in by_key.values():
        rows.extend(_history_row(position, matched.get(id(position))) for position in group)
    rows.sort(key=lambda r: (r.account, r.instrument, currency_order(r.currency)))
    return rows


def _history_row(position: OpenPosition, held: BrokerPosition | None) -> ReconciledPosition:
    if held is None:
        status = "not_at_broker"
    else:
        status = "matched" if held.units == position.quantity else "differs"
    return ReconciledPosition(
        account=position.account,
        instrument=position.instrument,
        currency=position.currency,
        quantity=position.quantity,
        cost_basis=position.cost_basis,
        broker_quantity=held.units if held is not None else None,
        status=status,
    )


def _only_at_broker(held: BrokerPosition) -> ReconciledPosition:
    return ReconciledPosition(
        account=held.account,
        instrument=held.instrument,
        currency=held.currency,
        quantity=ZERO,
        cost_basis=None,
        broker_quantity=held.units,
        status="only_at_broker",
    )
