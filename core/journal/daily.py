"""The journal's daily aggregates (table journal_daily): per account, currency and day, how many round trips
fall on the day and the metric sums of the closed, unflagged ones. The summary tiles add them up instead of
reading every round trip; core.journal.store keeps them in the same transaction as the round trips.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.journal.copyrows import insert_rows
from core.journal.exact import ZERO, exact
from core.journal.trips import RoundTrip
from core.storage.models import JournalDaily, JournalRoundTrip

DAILY = JournalDaily.__table__
R = JournalRoundTrip.__table__.c
_CHUNK = 500

Day = tuple[str | None, date]  # (currency, day)


def empty() -> dict[str, Any]:
    return {"trips": 0, "closed": 0, "wins": 0, "losses": 0, "holding_days": 0, "net": ZERO, "gross_profit": ZERO,
            "gross_loss": ZERO, "largest_win": None, "largest_loss": None}  # fmt: skip


def add_trip(days: dict[Day, dict[str, Any]], currency: str | None, on_date: date, counts: bool,
             opened_on: date, closed_on: date | None, net: Any) -> None:  # fmt: skip
    """Count one round trip in its day (its close date, else its open date), as metrics.summarize would.
    Callers hold the exact context (add_trips, refresh)."""
    d = days.setdefault((currency, on_date), empty())
    d["trips"] += 1
    if not counts or closed_on is None or net is None:
        return
    d["closed"] += 1
    d["net"] += net
    d["holding_days"] += (closed_on - opened_on).days
    if net > 0:
        d["wins"] += 1
        d["gross_profit"] += net
        d["largest_win"] = net if d["largest_win"] is None else max(d["largest_win"], net)
    elif net < 0:
        d["losses"] += 1
        d["gross_loss"] += net
        d["largest_loss"] = net if d["largest_loss"] is None else min(d["largest_loss"], net)


@exact
def add_trips(days: dict[Day, dict[str, Any]], trips: Iterable[RoundTrip]) -> None:
    for rt in trips:
        add_trip(days, rt.currency, rt.closed_on or rt.opened_on, rt.counts_in_metrics, rt.opened_on, rt.closed_on,
                 rt.net_pnl)  # fmt: skip


def insert(session: Session, user_id: int, account_id: int, days: dict[Day, dict[str, Any]]) -> None:
    rows = [{"user_id": user_id, "account_id": account_id, "currency": c, "day": d, **v}
            for (c, d), v in days.items() if v["trips"]]  # fmt: skip
    insert_rows(session, DAILY, rows, copy=True)


@exact
def refresh(session: Session, user_id: int, account_id: int, affected: Iterable[Day]) -> None:
    """Recount these (currency, day)s of the account from its stored round trips (after a pair changed)."""
    by_currency: dict[str | None, set[date]] = {}
    for currency, day in affected:
        by_currency.setdefault(currency, set()).add(day)
    for currency, days in by_currency.items():
        same = R.currency.is_(None) if currency is None else R.currency == currency
        same_daily = DAILY.c.currency.is_(None) if currency is None else DAILY.c.currency == currency
        ordered = sorted(days)
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            counted: dict[Day, dict[str, Any]] = {}
            # Through (user_id, currency, on_date): the account's other days are not read.
            query = sa.select(R.on_date, R.counts_in_metrics, R.opened_on, R.closed_on, R.net_pnl).where(
                R.user_id == user_id, same, R.on_date.in_(chunk), R.account_id == account_id
            )
            for on_date, counts, opened_on, closed_on, net in session.execute(query):
                add_trip(counted, currency, on_date, counts, opened_on, closed_on, net)
            session.execute(
                sa.delete(DAILY).where(DAILY.c.account_id == account_id, same_daily, DAILY.c.day.in_(chunk))
            )
            insert(session, user_id, account_id, counted)
