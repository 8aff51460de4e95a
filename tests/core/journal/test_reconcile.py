"""core.journal.reconcile: the history's holdings beside the broker's."""

from __future__ import annotations

from core.journal.jsonout import positions_json
from core.journal.reconcile import BrokerPosition, reconcile
from core.journal.trips import build
from tests.core.journal.builders import D, fill


def test_reconcile_and_positions_json():
    positions = build(
        [
            fill("a", "BUY", 40, "10", 1, instrument="TSLA"),
            fill("b", "BUY", 5, "20", 1, instrument="MSFT"),
            fill("c", "BUY", 7, "1", 1, instrument="KO"),
        ]
    ).positions
    broker = [
        BrokerPosition(account="acc-1", instrument="TSLA", currency="USD", units=D(50)),
        BrokerPosition(account="acc-1", instrument="MSFT", currency="USD", units=D("5.000")),
        BrokerPosition(account="acc-1", instrument="VTI", currency="USD", units=D(3)),
        BrokerPosition(account="acc-1", instrument="SPY", currency="USD", units=D(0)),
    ]
    payload = positions_json(reconcile(positions, broker))
    assert [(p["instrument"], p["quantity"], p["cost_basis"], p["broker_quantity"], p["status"]) for p in payload["positions"]] == [
        ("KO", "7", "7", None, "not_at_broker"),
        ("MSFT", "5", "100", "5", "matched"),
        ("TSLA", "40", "400", "50", "differs"),
        ("VTI", "0", None, "3", "only_at_broker"),
    ]  # fmt: skip
    assert set(payload["positions"][0]) == {"account", "instrument", "currency", "quantity", "cost_basis",
                                            "broker_quantity", "status"}  # fmt: skip
