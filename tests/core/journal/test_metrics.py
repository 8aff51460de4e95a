"""core.journal.metrics: the summary tiles, daily P&L and drawdown, by hand."""

from __future__ import annotations

from fractions import Fraction

from core.journal.exact import fraction_to_decimal
from core.journal.jsonout import to_json_dict
from core.journal.metrics import daily_pnl, summarize
from core.journal.trips import RoundTrip
from tests.core.journal.builders import D, day

# ---------------------------------------------------------------------------------------------------------
# Metrics and daily P&L
# ---------------------------------------------------------------------------------------------------------


def rt(net, opened, closed, *, currency="USD", flags=(), fees="0") -> RoundTrip:
    net = D(net) if net is not None else None
    return RoundTrip(
        account="acc-1", instrument="AAPL", currency=currency, direction="long",
        status="closed" if closed else "open", opened_on=day(opened), closed_on=day(closed) if closed else None,
        quantity=D(1), gross_pnl=net + D(fees) if net is not None else None, fees=D(fees), net_pnl=net,
        flags=tuple(flags), activities=("x",),
    )  # fmt: skip


def test_metrics_by_hand():
    trips = [
        rt("100", 1, 1),
        rt("-150", 1, 2),
        rt("30", 1, 3),
        rt("-50", 4, 4),
        rt("0", 2, 2),  # a scratch
        rt("999", 1, 5, flags=["transferred"]),  # flagged: out of every metric
        rt(None, 1, None),  # open: out too
    ]
    (s,) = summarize(trips)
    assert (s.closed_trades, s.wins, s.losses, s.scratches) == (5, 2, 2, 1)
    assert (s.win_rate, s.gross_profit, s.gross_loss, s.profit_factor) == (D("0.5"), D(130), D(-200), D("0.65"))
    assert (s.expectancy, s.average_win, s.average_loss) == (D(-14), D(65), D(-100))
    assert (s.largest_win, s.largest_loss) == (D(100), D(-150))
    # Daily: d1 +100, d2 -150 + 0, d3 +30, d4 -50 -> cumulative 100, -50, -20, -70: fall from 100 to -70.
    assert s.max_drawdown == D(170)
    assert s.average_holding_days == D("0.6")  # (0 + 1 + 2 + 0 + 0) / 5
    daily = [(d.date, d.net_pnl, d.trades) for d in daily_pnl(trips)]
    assert daily == [(day(1), D(100), 1), (day(2), D(-150), 2), (day(3), D(30), 1), (day(4), D(-50), 1)]


def test_metrics_with_zero_denominators():
    (s,) = summarize([rt("0", 1, 1), rt("0", 1, 2)])  # scratches only
    assert (s.closed_trades, s.scratches, s.win_rate, s.profit_factor) == (2, 2, None, None)
    assert (s.expectancy, s.average_win, s.average_loss, s.average_holding_days) == (D(0), None, None, D("0.5"))
    (s,) = summarize([rt("10", 1, 1), rt("20", 1, 2)])  # wins only: no loss to divide by
    assert (s.win_rate, s.profit_factor, s.average_loss, s.largest_loss, s.max_drawdown) == (D(1), None, None, None, 0)
    # Only flagged and open trades: a row with zero counts and null ratios for each currency traded.
    summaries = summarize([rt(None, 1, 2, currency="EUR", flags=["cost_unknown"]), rt(None, 1, None)])
    assert [to_json_dict(s) for s in summaries] == [
        {"currency": cur, "closed_trades": 0, "wins": 0, "losses": 0, "scratches": 0, "win_rate": None,
         "gross_profit": "0", "gross_loss": "0", "profit_factor": None, "expectancy": None, "average_win": None,
         "average_loss": None, "largest_win": None, "largest_loss": None, "max_drawdown": "0",
         "average_holding_days": None}
        for cur in ("EUR", "USD")
    ]  # fmt: skip
    assert summarize([]) == [] and daily_pnl([]) == []


def test_ratios_round_to_ten_places_only_when_not_terminating():
    (s,) = summarize([rt("10", 1, 1), rt("-5", 1, 1), rt("-1", 1, 1)])
    assert s.win_rate == D("0.3333333333") and s.profit_factor == D("1.6666666667")
    assert s.expectancy == D("1.3333333333") and s.average_loss == D(-3)
    assert fraction_to_decimal(Fraction(1, 1024)) == D("0.0009765625")
