"""Journal metrics per currency over closed, unflagged round trips: the summary tiles, daily net P&L and
the maximum drawdown of its cumulative sum."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from core.journal.exact import ZERO, exact, ratio
from core.journal.trips import RoundTrip


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    currency: str | None
    closed_trades: int
    wins: int
    losses: int
    scratches: int
    win_rate: Decimal | None
    gross_profit: Decimal
    gross_loss: Decimal  # zero or negative
    profit_factor: Decimal | None
    expectancy: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None
    max_drawdown: Decimal  # zero or positive
    average_holding_days: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyPnl:
    date: date
    currency: str | None
    net_pnl: Decimal
    trades: int


def currency_order(currency: str | None) -> tuple[bool, str]:
    return (currency is None, currency or "")


def max_drawdown(daily_net: Sequence[Decimal]) -> Decimal:
    """Largest fall of the cumulative sum (from 0) below its running peak, as a positive number (or 0)."""
    cumulative = peak = worst = ZERO
    for net in daily_net:
        cumulative += net
        peak = max(peak, cumulative)
        worst = max(worst, peak - cumulative)
    return worst


@exact
def summarize(round_trips: Iterable[RoundTrip]) -> list[Summary]:
    """One Summary per currency traded (any round trip), over closed, unflagged round trips."""
    trips = list(round_trips)
    daily = daily_pnl(trips)
    summaries = []
    for currency in sorted({rt.currency for rt in trips}, key=currency_order):
        counted = [rt for rt in trips if rt.currency == currency and rt.counts_in_metrics]
        days = [row.net_pnl for row in daily if row.currency == currency]
        summaries.append(_summary(currency, counted, days))
    return summaries


def _summary(currency: str | None, trips: list[RoundTrip], daily_net: list[Decimal]) -> Summary:
    nets = [rt.net_pnl for rt in trips if rt.net_pnl is not None]
    wins = [net for net in nets if net > 0]
    losses = [net for net in nets if net < 0]
    gross_profit, gross_loss = sum(wins, ZERO), sum(losses, ZERO)
    holding_days = sum((rt.closed_on - rt.opened_on).days for rt in trips if rt.closed_on is not None)
    return Summary(
        currency=currency,
        closed_trades=len(nets),
        wins=len(wins),
        losses=len(losses),
        scratches=len(nets) - len(wins) - len(losses),
        win_rate=ratio(len(wins), len(wins) + len(losses)),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=ratio(gross_profit, abs(gross_loss)),
        expectancy=ratio(sum(nets, ZERO), len(nets)),
        average_win=ratio(gross_profit, len(wins)),
        average_loss=ratio(gross_loss, len(losses)),
        largest_win=max(wins) if wins else None,
        largest_loss=min(losses) if losses else None,
        max_drawdown=max_drawdown(daily_net),
        average_holding_days=ratio(holding_days, len(nets)),
    )


@exact
def daily_pnl(round_trips: Iterable[RoundTrip]) -> list[DailyPnl]:
    """Σ net P&L of closed, unflagged round trips by close date and currency, by date then currency."""
    totals: dict[tuple[date, str | None], list] = {}
    for rt in round_trips:
        if rt.counts_in_metrics and rt.closed_on is not None and rt.net_pnl is not None:
            entry = totals.setdefault((rt.closed_on, rt.currency), [ZERO, 0])
            entry[0] += rt.net_pnl
            entry[1] += 1
    ordered = sorted(totals.items(), key=lambda item: (item[0][0], currency_order(item[0][1])))
    return [DailyPnl(date=day, currency=cur, net_pnl=net, trades=n) for (day, cur), (net, n) in ordered]
