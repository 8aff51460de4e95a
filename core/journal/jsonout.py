"""Issue 22's JSON contract of `python -m core trades` and `positions`: numbers as strings of exact
decimals, dates YYYY-MM-DD, counts as integers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from core.journal.exact import EXACT_CONTEXT
from core.journal.metrics import DailyPnl, Summary, daily_pnl, summarize
from core.journal.reconcile import ReconciledPosition
from core.journal.trips import RoundTrip


def decimal_text(value: Decimal | None) -> str | None:
    """ "1050" for Decimal("1050.00"), never an exponent, never "-0"; None stays None."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(EXACT_CONTEXT), "f")


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_json_dict(record: RoundTrip | Summary | DailyPnl | ReconciledPosition) -> dict[str, Any]:
    """The contract's object for one record."""
    if isinstance(record, RoundTrip):
        return _round_trip_json(record)
    if isinstance(record, Summary):
        return _summary_json(record)
    if isinstance(record, DailyPnl):
        return {
            "date": _day(record.date),
            "currency": record.currency,
            "net_pnl": decimal_text(record.net_pnl),
            "trades": record.trades,
        }
    if isinstance(record, ReconciledPosition):
        return {
            "account": record.account,
            "instrument": record.instrument,
            "currency": record.currency,
            "quantity": decimal_text(record.quantity),
            "cost_basis": decimal_text(record.cost_basis),
            "broker_quantity": decimal_text(record.broker_quantity),
            "status": record.status,
        }
    raise TypeError(f"no JSON shape for {type(record).__name__}")


def _round_trip_json(rt: RoundTrip) -> dict[str, Any]:
    return {
        "account": rt.account,
        "instrument": rt.instrument,
        "currency": rt.currency,
        "direction": rt.direction,
        "status": rt.status,
        "opened_on": _day(rt.opened_on),
        "closed_on": _day(rt.closed_on),
        "quantity": decimal_text(rt.quantity),
        "gross_pnl": decimal_text(rt.gross_pnl),
        "fees": decimal_text(rt.fees),
        "net_pnl": decimal_text(rt.net_pnl),
        "flags": list(rt.flags),
        "activities": list(rt.activities),
    }


def _summary_json(s: Summary) -> dict[str, Any]:
    return {
        "currency": s.currency,
        "closed_trades": s.closed_trades,
        "wins": s.wins,
        "losses": s.losses,
        "scratches": s.scratches,
        "win_rate": decimal_text(s.win_rate),
        "gross_profit": decimal_text(s.gross_profit),
        "gross_loss": decimal_text(s.gross_loss),
        "profit_factor": decimal_text(s.profit_factor),
        "expectancy": decimal_text(s.expectancy),
        "average_win": decimal_text(s.average_win),
        "average_loss": decimal_text(s.average_loss),
        "largest_win": decimal_text(s.largest_win),
        "largest_loss": decimal_text(s.largest_loss),
        "max_drawdown": decimal_text(s.max_drawdown),
        "average_holding_days": decimal_text(s.average_holding_days),
    }


def trades_json(round_trips: Iterable[RoundTrip]) -> dict[str, Any]:
    """`{"round_trips": [...], "summary": [...], "daily": [...]}` as `python -m core trades` prints it."""
    trips = list(round_trips)
    return {
        "round_trips": [to_json_dict(rt) for rt in trips],
        "summary": [to_json_dict(s) for s in summarize(trips)],
        "daily": [to_json_dict(d) for d in daily_pnl(trips)],
    }


def positions_json(rows: Iterable[ReconciledPosition]) -> dict[str, Any]:
    """`{"positions": [...]}` as `python -m core positions` prints it."""
    return {"positions": [to_json_dict(row) for row in rows]}
