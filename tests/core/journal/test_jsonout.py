"""core.journal.jsonout: issue 22's JSON contract, exactly."""

from __future__ import annotations

import json

from core.journal.jsonout import decimal_text, trades_json
from core.journal.trips import build
from tests.core.journal.builders import D, fill, one

# ---------------------------------------------------------------------------------------------------------
# JSON contract
# ---------------------------------------------------------------------------------------------------------


def test_trades_json_shape():
    result = build([fill("b1", "BUY", 100, "10", 1, fee="1"), fill("s1", "SELL", 150, "12.50", 2, fee="3")])
    payload = json.loads(json.dumps(trades_json(result.round_trips)))
    assert list(payload) == ["round_trips", "summary", "daily"]
    assert payload["round_trips"] == [
        {"account": "acc-1", "instrument": "AAPL", "currency": "USD", "direction": "long", "status": "closed",
         "opened_on": "2024-01-01", "closed_on": "2024-01-02", "quantity": "100", "gross_pnl": "250", "fees": "4",
         "net_pnl": "246", "flags": [], "activities": ["b1", "s1"]},
        {"account": "acc-1", "instrument": "AAPL", "currency": "USD", "direction": "short", "status": "open",
         "opened_on": "2024-01-02", "closed_on": None, "quantity": "50", "gross_pnl": None, "fees": "0",
         "net_pnl": None, "flags": [], "activities": ["s1"]},
    ]  # fmt: skip
    assert payload["summary"] == [
        {"currency": "USD", "closed_trades": 1, "wins": 1, "losses": 0, "scratches": 0, "win_rate": "1",
         "gross_profit": "246", "gross_loss": "0", "profit_factor": None, "expectancy": "246",
         "average_win": "246", "average_loss": None, "largest_win": "246", "largest_loss": None,
         "max_drawdown": "0", "average_holding_days": "1"}
    ]  # fmt: skip
    assert payload["daily"] == [{"date": "2024-01-02", "currency": "USD", "net_pnl": "246", "trades": 1}]


def test_decimal_text_is_plain_and_exact():
    assert [decimal_text(D(v)) for v in ("1050.00", "1E+3", "-0", "0.000001", "-12.3400")] == [
        "1050",
        "1000",
        "0",
        "0.000001",
        "-12.34",
    ]
    assert decimal_text(D("37037036703703703670.370370367037037034")) == "37037036703703703670.370370367037037034"


def test_large_numbers_stay_exact():
    # 3 x a 38-digit price needs more than the default context's 28 digits.
    big = "12345678901234567890.123456789012345678"
    (rt,), _ = one([fill("b", "BUY", 3, big, 1), fill("s", "SELL", 3, big[:-1] + "9", 2)])
    assert rt.gross_pnl == D("0.000000000000000003")
    _, position = one([fill("b", "BUY", 3, big, 1)])
    assert position.cost_basis == D("37037036703703703670.370370367037037034")
