"""What the Journal, Positions and Operations pages (and the CLI) read from the stored journal: plain
dataclasses and DataFrames of exact Decimals, per currency, never mixing currencies.

Functions take a Session; none writes. Formatting stays with core.reads.formatting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from core.journal.exact import ZERO, exact, ratio
from core.journal.jsonout import positions_json, trades_json
from core.journal.metrics import DailyPnl, Summary, currency_order, max_drawdown
from core.journal.positions import reconciled_positions
from core.journal.reconcile import ReconciledPosition
from core.journal.trips import RoundTrip
from core.reads.formatting import account_label, format_option, format_quantity
from core.reads.transactions import account_short_labels
from core.storage.models import (
    AppUser,
    BrokerageAccount,
    BrokeragePosition,
    BrokerageTransaction,
    JournalDaily,
    JournalReconciliation,
    JournalRoundTrip,
    JournalUnplaceable,
    utcnow,
)

R = JournalRoundTrip.__table__.c
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Holding time buckets: (label, most days held), in display order.
HOLDING_BUCKETS = (("same day", 0), ("1 day", 1), ("2–7 days", 7), ("8–30 days", 30), ("31–90 days", 90),
                   ("over 90 days", None))  # fmt: skip
OUTCOMES = ("win", "loss", "scratch", "open", "flagged")
TRIPS_PER_PAGE = 200  # the Journal page's round-trip table shows this many at a time


@dataclass(frozen=True, slots=True)
class StoredTrip:
    """A stored round trip: the engine's record plus where it is stored and the underlying symbol."""

    id: int
    account_id: int
    symbol: str | None
    trip: RoundTrip

    @property
    def outcome(self) -> str:
        return self.trip.outcome


@dataclass(frozen=True)
class TripFilter:
    """The round-trip table's filters; None means no restriction."""

    account_id: int | None = None
    symbol: str | None = None  # the underlying symbol or the instrument, case-insensitive
    start: date | None = None  # inclusive, on the close date (the open date while open)
    end: date | None = None
    direction: str | None = None  # "long" | "short"
    outcome: str | None = None  # one of OUTCOMES
    currency: str | None = None


def stored_trips(session: Session, user_id: int, *, account_id: int | None = None, with_activities: bool = False,
                 where: Iterable[Any] = ()) -> list[StoredTrip]:  # fmt: skip
    """The user's round trips in engine order (as `python -m core trades` lists them)."""
    accounts = _snaptrade_ids(session, user_id)
    columns = [R.id, R.account_id, R.symbol, R.instrument, R.currency, R.direction, R.status, R.opened_on, R.closed_on,
               R.quantity, R.gross_pnl, R.fees, R.net_pnl, R.flags, R.seq]  # fmt: skip
    if with_activities:
        columns.append(R.activity_ids)
    query = sa.select(*columns).where(R.user_id == user_id, *where)
    if account_id is not None:
        query = query.where(R.account_id == account_id)
    out = []
    for row in session.execute(query):
        trip = RoundTrip(
            account=accounts[row.account_id], instrument=row.instrument, currency=row.currency,
            direction=row.direction, status=row.status, opened_on=row.opened_on, closed_on=row.closed_on,
            quantity=row.quantity, gross_pnl=row.gross_pnl, fees=row.fees, net_pnl=row.net_pnl,
            flags=tuple(row.flags), activities=tuple(row.activity_ids) if with_activities else (),
        )  # fmt: skip
        out.append((row.seq, StoredTrip(row.id, row.account_id, row.symbol, trip)))
    # engine.build's order: by open date, then book (account, instrument, currency with none last), then seq.
    out.sort(key=lambda p: (p[1].trip.opened_on, p[1].trip.account, p[1].trip.instrument,
                            p[1].trip.currency is None, p[1].trip.currency or "", p[0]))  # fmt: skip
    return [trip for _, trip in out]


def _snaptrade_ids(session: Session, user_id: int | None) -> dict[int, str]:
    query = sa.select(BrokerageAccount.id, BrokerageAccount.snaptrade_account_id)
    if user_id is not None:
        query = query.where(BrokerageAccount.user_id == user_id)
    return dict(session.execute(query).all())


def journal_currencies(session: Session, user_id: int) -> list[str | None]:
    """The currencies the user has round trips in, most trips first (the first is the page's default)."""
    rows = session.execute(
        sa.select(R.currency, sa.func.count()).where(R.user_id == user_id).group_by(R.currency)
    ).all()
    return [c for c, _ in sorted(rows, key=lambda r: (-r[1], r[0] is None, r[0] or ""))]


# --------------------------------------------------------------------------- Journal page


D = JournalDaily.__table__.c


def _daily_rows(user_id: int, account_id: int | None, start: date | None, end: date | None, *columns: Any) -> Any:
    """These columns of the user's daily aggregates, of one account and a period when given."""
    query = sa.select(*columns).where(D.user_id == user_id)
    if account_id is not None:
        query = query.where(D.account_id == account_id)
    if start is not None:
        query = query.where(D.day >= start)
    if end is not None:
        query = query.where(D.day <= end)
    return query


@exact
def summary_tiles(session: Session, user_id: int, *, account_id: int | None = None, start: date | None = None,
                  end: date | None = None) -> list[Summary]:  # fmt: skip
    """One Summary per currency traded (net P&L = expectancy × closed trades, win rate, profit factor, …): what
    metrics.summarize makes of the round trips in the period, added up from the daily aggregates (journal_daily,
    a few hundred rows) instead of read from every round trip."""
    query = _daily_rows(user_id, account_id, start, end, D.currency, D.day, D.closed, D.wins, D.losses,
                        D.holding_days, D.net, D.gross_profit, D.gross_loss, D.largest_win, D.largest_loss)  # fmt: skip
    totals: dict[str | None, dict[str, Any]] = {}
    nets: dict[str | None, dict[date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    # Unpacked by position: a few thousand rows, where attribute lookups by name were half the time.
    for currency, day, closed, wins, losses, holding, net, profit, loss, win_max, loss_min in session.execute(query):
        t = totals.get(currency)
        if t is None:
            t = totals[currency] = {"closed": 0, "wins": 0, "losses": 0, "holding_days": 0, "net": ZERO,
                                    "gross_profit": ZERO, "gross_loss": ZERO, "largest_win": None,
                                    "largest_loss": None}  # fmt: skip
        t["closed"] += closed
        t["wins"] += wins
        t["losses"] += losses
        t["holding_days"] += holding
        t["net"] += net
        t["gross_profit"] += profit
        t["gross_loss"] += loss
        if win_max is not None and (t["largest_win"] is None or win_max > t["largest_win"]):
            t["largest_win"] = win_max
        if loss_min is not None and (t["largest_loss"] is None or loss_min < t["largest_loss"]):
            t["largest_loss"] = loss_min
        if closed:
            nets[currency][day] += net
    out = []
    for currency in sorted(totals, key=currency_order):
        t = totals[currency]
        wins, losses, closed = t["wins"], t["losses"], t["closed"]
        out.append(Summary(
            currency=currency, closed_trades=closed, wins=wins, losses=losses, scratches=closed - wins - losses,
            win_rate=ratio(wins, wins + losses), gross_profit=t["gross_profit"], gross_loss=t["gross_loss"],
            profit_factor=ratio(t["gross_profit"], abs(t["gross_loss"])), expectancy=ratio(t["net"], closed),
            average_win=ratio(t["gross_profit"], wins), average_loss=ratio(t["gross_loss"], losses),
            largest_win=t["largest_win"], largest_loss=t["largest_loss"],
            max_drawdown=max_drawdown([net for _, net in sorted(nets[currency].items())]),
            average_holding_days=ratio(t["holding_days"], closed),
        ))  # fmt: skip
    return out


def daily_calendar(session: Session, user_id: int, *, currency: str | None, year: int, month: int | None = None,
                   account_id: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Daily net P&L of one month (or year): columns date, net_pnl (Decimal), trades; only days with trades."""
    start = date(year, month or 1, 1)
    end = date(year + (month or 12) // 12, (month or 12) % 12 + 1, 1) - timedelta(days=1)  # the period's last day
    days = _daily_from_aggregates(session, user_id, currency, account_id, start, end)
    return pd.DataFrame([{"date": d.date, "net_pnl": d.net_pnl, "trades": d.trades} for d in days],
                        columns=["date", "net_pnl", "trades"])  # fmt: skip


@exact
def _daily_from_aggregates(session: Session, user_id: int, currency: str | None, account_id: int | None,
                           start: date | None = None, end: date | None = None) -> list[DailyPnl]:  # fmt: skip
    """metrics.daily_pnl of the closed, unflagged round trips in the period, added up from the daily aggregates
    (a row per account and day) instead of read from every round trip."""
    query = _daily_rows(user_id, account_id, start, end, D.day, D.closed, D.net).where(
        D.currency.is_(None) if currency is None else D.currency == currency, D.closed > 0
    )
    totals: dict[date, list] = {}
    for day, closed, net in session.execute(query):
        entry = totals.get(day)
        if entry is None:
            totals[day] = [net, closed]
        else:
            entry[0] += net
            entry[1] += closed
    return [DailyPnl(date=day, currency=currency, net_pnl=net, trades=n) for day, (net, n) in sorted(totals.items())]


@exact
def equity_curve(
    session: Session, user_id: int, *, currency: str | None, account_id: int | None = None
) -> pd.DataFrame:
    """Cumulative net P&L by close date from 0, its running peak and the drawdown below it (>= 0)."""
    rows, cumulative, peak = [], ZERO, ZERO
    for day in _daily_from_aggregates(session, user_id, currency, account_id):
        cumulative += day.net_pnl
        peak = max(peak, cumulative)
        rows.append({"date": day.date, "net_pnl": day.net_pnl, "cumulative": cumulative, "peak": peak,
                     "drawdown": peak - cumulative})  # fmt: skip
    return pd.DataFrame(rows, columns=["date", "net_pnl", "cumulative", "peak", "drawdown"])


def _holding_bucket(rt: RoundTrip) -> str:
    days = (rt.closed_on - rt.opened_on).days if rt.closed_on else 0
    return next(label for label, most in HOLDING_BUCKETS if most is None or days <= most)


@exact
def breakdown(
    session: Session, user_id: int, *, currency: str | None, by: str, account_id: int | None = None
) -> pd.DataFrame:
    """Closed, unflagged round trips grouped by "symbol" (options under their underlying), "weekday" (of the
    close) or "holding" time: group, trades, wins, losses, scratches, net_pnl, win_rate (a fraction or None)."""
    trips = stored_trips(session, user_id, account_id=account_id,
                         where=[R.counts_in_metrics.is_(True), R.currency.is_(None) if currency is None else R.currency == currency])  # fmt: skip
    if by == "symbol":
        key, order = (lambda st: st.symbol or st.trip.instrument), None
    elif by == "weekday":
        key, order = (lambda st: WEEKDAYS[st.trip.closed_on.weekday()]), WEEKDAYS
    elif by == "holding":
        key, order = (lambda st: _holding_bucket(st.trip)), tuple(label for label, _ in HOLDING_BUCKETS)
    else:
        raise ValueError(f"breakdown by symbol, weekday or holding, not {by!r}")
    groups: dict[str, list[Decimal]] = defaultdict(list)
    for st in trips:
        groups[key(st)].append(st.trip.net_pnl)
    names = [g for g in order if g in groups] if order else sorted(groups, key=lambda g: (-sum(groups[g]), g))
    rows = []
    for name in names:
        nets = groups[name]
        wins, losses = sum(1 for n in nets if n > 0), sum(1 for n in nets if n < 0)
        rows.append({"group": name, "trades": len(nets), "wins": wins, "losses": losses,
                     "scratches": len(nets) - wins - losses, "net_pnl": sum(nets, ZERO),
                     "win_rate": ratio(wins, wins + losses)})  # fmt: skip
    return pd.DataFrame(rows, columns=["group", "trades", "wins", "losses", "scratches", "net_pnl", "win_rate"])


TRIP_COLUMNS = ["id", "account_id", "account", "instrument", "symbol", "currency", "direction", "status", "outcome",
                "opened_on", "closed_on", "holding_days", "quantity", "gross_pnl", "fees", "net_pnl", "flags"]  # fmt: skip


def _trip_where(user_id: int, f: TripFilter) -> list[Any]:
    where = [R.user_id == user_id]
    if f.account_id is not None:
        where.append(R.account_id == f.account_id)
    if f.direction:
        where.append(R.direction == f.direction)
    if f.currency:
        where.append(R.currency == f.currency)
    if f.symbol:
        wanted = f.symbol.strip().upper()
        where.append(sa.or_(sa.func.upper(R.symbol) == wanted, sa.func.upper(R.instrument) == wanted))
    if f.start is not None:
        where.append(R.on_date >= f.start)
    if f.end is not None:
        where.append(R.on_date <= f.end)
    if f.outcome is not None:
        where.append(R.outcome == f.outcome)
    return where


def trip_count(session: Session, user_id: int, filters: TripFilter | None = None) -> int:
    """How many round trips match the filters (the table shows a page of them)."""
    return session.execute(
        sa.select(sa.func.count()).where(*_trip_where(user_id, filters or TripFilter()))
    ).scalar_one()


def trip_table(session: Session, user_id: int, filters: TripFilter | None = None, *, sort: str = "date",
               descending: bool = True, limit: int | None = None, offset: int = 0) -> pd.DataFrame:  # fmt: skip
    """The round-trip table: filtered, sorted by "date" (close, else open; ties newest stored first when
    descending) or "pnl" (net; open and flagged last), `limit` rows from `offset`, with `id` for trip_fills.
    `instrument` is display text (an option as 'AAPL 2026-12-18 240 C'). By date, the filters and the page are
    one indexed query (user, currency, on_date) that reads only the rows shown."""
    f = filters or TripFilter()
    where = _trip_where(user_id, f)
    if sort == "date":
        order = (R.on_date.desc(), R.id.desc()) if descending else (R.on_date, R.id)
        columns = [R.id, R.account_id, R.symbol, R.instrument, R.currency, R.direction, R.status, R.opened_on,
                   R.closed_on, R.quantity, R.gross_pnl, R.fees, R.net_pnl, R.flags, R.outcome]  # fmt: skip
        query = sa.select(*columns).where(*where).order_by(*order).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        picked = [(row.id, row.account_id, row.symbol, row.outcome, row) for row in session.execute(query)]
    elif sort == "pnl":
        # Net P&L is exact text on SQLite, so it is ranked here: every matching round trip is read.
        trips = stored_trips(session, user_id, account_id=f.account_id, where=where[1:])
        ranked = [st for st in trips if st.trip.net_pnl is not None]
        ranked.sort(key=lambda st: st.trip.net_pnl, reverse=descending)
        ordered = ranked + [st for st in trips if st.trip.net_pnl is None]
        ordered = ordered[offset : offset + limit if limit is not None else None]
        picked = [(st.id, st.account_id, st.symbol, st.outcome, st.trip) for st in ordered]
    else:
        raise ValueError(f"sort by date or pnl, not {sort!r}")
    labels = account_short_labels(session, {p[1] for p in picked})
    rows = []
    for trip_id, account_id, symbol, outcome, rt in picked:
        rows.append({"id": trip_id, "account_id": account_id, "account": labels.get(account_id, ""),
                     "instrument": format_option(rt.instrument), "symbol": symbol, "currency": rt.currency,
                     "direction": rt.direction, "status": rt.status, "outcome": outcome,
                     "opened_on": rt.opened_on, "closed_on": rt.closed_on,
                     "holding_days": (rt.closed_on - rt.opened_on).days if rt.closed_on else None,
                     "quantity": rt.quantity, "gross_pnl": rt.gross_pnl, "fees": rt.fees, "net_pnl": rt.net_pnl,
                     "flags": ", ".join(rt.flags)})  # fmt: skip
    return pd.DataFrame(rows, columns=TRIP_COLUMNS)


FILL_COLUMNS = ["activity_id", "trade_date", "trade_timestamp", "type", "option_action", "quantity", "price", "fee",
                "amount", "currency", "description"]  # fmt: skip


def trip_fills(session: Session, user_id: int, trip_id: int) -> pd.DataFrame:
    """A round trip's activities in engine order (a flip is in both of its trips); empty when the trip is
    not the user's (or was rebuilt away by a sync since: ids change with each rebuild of its instrument)."""
    trip = session.get(JournalRoundTrip, trip_id)
    if trip is None or trip.user_id != user_id:
        return pd.DataFrame(columns=FILL_COLUMNS)
    T = BrokerageTransaction
    rows = session.execute(sa.select(T).where(T.account_id == trip.account_id,
                                              T.snaptrade_activity_id.in_(trip.activity_ids))).scalars()  # fmt: skip
    by_id = {t.snaptrade_activity_id: t for t in rows}
    out = [{"activity_id": a, "trade_date": t.trade_date, "trade_timestamp": t.trade_timestamp,
            "type": t.transaction_type, "option_action": t.option_action, "quantity": t.quantity, "price": t.price,
            "fee": t.fee, "amount": t.amount, "currency": t.currency, "description": t.description}
           for a in trip.activity_ids if (t := by_id.get(a)) is not None]  # fmt: skip
    return pd.DataFrame(out, columns=FILL_COLUMNS)


# --------------------------------------------------------------------------- Positions page


@dataclass(frozen=True, slots=True)
class PositionRow:
    instrument: str  # as stored (an option's canonical ticker)
    display: str  # for people: 'AAPL 2026-12-18 240 C'
    currency: str | None
    quantity: Decimal  # history, signed
    cost_basis: Decimal | None  # FIFO, None when a lot's cost is unknown
    broker_quantity: Decimal | None
    status: str  # matched / differs / not_at_broker / only_at_broker / not_read (no good broker read yet)
    explanation: str


@dataclass(frozen=True, slots=True)
class AccountPositions:
    account_id: int
    account: str  # label
    positions_read_at: datetime | None  # the broker positions shown were read then
    read_age_seconds: float | None
    last_error: str | None  # the last read failed (the positions shown are the last good ones)
    last_attempt_at: datetime | None
    rows: list[PositionRow]

    @property
    def differences(self) -> int:
        return sum(1 for row in self.rows if row.status not in ("matched", "not_read"))


def _noun(instrument: str, kind: str | None) -> str:
    if kind == "option" or format_option(instrument) != instrument:
        return "contracts"
    return "units" if kind == "crypto" else "shares"


def _holding(quantity: Decimal | None, name: str) -> str:
    if not quantity:
        return "none"
    if quantity < 0:
        return f"a short of {format_quantity(-quantity)} {name}"
    return f"{format_quantity(quantity)} {name}"


def explain(row: ReconciledPosition, kind: str | None = None, *, read: bool = True) -> str:
    """One sentence a trader can act on, e.g. "history shows 40 TSLA, broker holds 50: 10 shares with no
    purchase in the imported history"."""
    name = format_option(row.instrument)
    if not read:
        return f"history shows {_holding(row.quantity, name)}; the broker's positions have not been read yet"
    if row.status == "matched":
        return f"history and broker agree: {_holding(row.quantity, name)}"
    broker = row.broker_quantity or ZERO
    history = _holding(row.quantity, name)
    held = _holding(broker, name if not row.quantity else "").strip()
    gap = broker - row.quantity
    what = "with no purchase" if gap > 0 else "with no sale"
    return f"history shows {history}, broker holds {held}: {format_quantity(abs(gap))} {_noun(row.instrument, kind)} {what} in the imported history"


def account_positions(session: Session, user_id: int, account_id: int | None = None,
                      now: datetime | None = None) -> list[AccountPositions]:  # fmt: skip
    """Per account: the history's holdings with FIFO cost basis beside the broker's units, each explained."""
    now = now or utcnow()
    query = sa.select(BrokerageAccount).where(BrokerageAccount.user_id == user_id).order_by(BrokerageAccount.id)
    if account_id is not None:
        query = query.where(BrokerageAccount.id == account_id)
    out = []
    for account in session.execute(query).scalars():
        state = session.get(JournalReconciliation, account.id)
        read_at = state.positions_read_at if state else None
        kinds = dict(session.execute(sa.select(BrokeragePosition.instrument, BrokeragePosition.kind)
                                     .where(BrokeragePosition.account_id == account.id)).all())  # fmt: skip
        rows = []
        for r in reconciled_positions(session, account):
            status = r.status if read_at is not None else "not_read"
            rows.append(PositionRow(r.instrument, format_option(r.instrument), r.currency, r.quantity, r.cost_basis,
                                    r.broker_quantity, status, explain(r, kinds.get(r.instrument), read=read_at is not None)))  # fmt: skip
        if not rows and not account.is_active:
            continue
        age = (now - _aware(read_at)).total_seconds() if read_at else None
        out.append(AccountPositions(account.id, account_label(account), read_at, age,
                                    state.positions_error if state else None,
                                    state.positions_attempted_at if state else None, rows))  # fmt: skip
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- Operations page (staff)

UNEXPLAINED_COLUMNS = ["user_id", "username", "account_id", "account", "differences", "differs_since",
                       "positions_read_at", "last_error"]  # fmt: skip


def unexplained_accounts(session: Session, limit: int = 100) -> pd.DataFrame:
    """Accounts, across users, whose history does not explain the broker's positions, newest first (by when
    they started to differ)."""
    S = JournalReconciliation
    rows = session.execute(
        sa.select(S, AppUser.username, BrokerageAccount)
        .join(AppUser, AppUser.id == S.user_id)
        .join(BrokerageAccount, BrokerageAccount.id == S.account_id)
        .where(S.differences > 0)
        .order_by(S.differs_since.desc(), S.account_id.desc())
        .limit(limit)
    ).all()
    return pd.DataFrame([{"user_id": s.user_id, "username": username, "account_id": s.account_id,
                          "account": account_label(a), "differences": s.differences, "differs_since": s.differs_since,
                          "positions_read_at": s.positions_read_at, "last_error": s.positions_error}
                         for s, username, a in rows], columns=UNEXPLAINED_COLUMNS)  # fmt: skip


UNPLACEABLE_COLUMNS = ["user_id", "username", "account_id", "account", "activity_id", "trade_date", "type",
                       "instrument", "currency", "reason", "flagged_at"]  # fmt: skip


def unplaceable_activities(session: Session, user_id: int | None = None, limit: int = 200) -> pd.DataFrame:
    """Activities the engine could not place (listed, never dropped), newest flagged first."""
    U = JournalUnplaceable
    query = (sa.select(U, AppUser.username, BrokerageAccount).join(AppUser, AppUser.id == U.user_id)
             .join(BrokerageAccount, BrokerageAccount.id == U.account_id)
             .order_by(U.flagged_at.desc(), U.id.desc()).limit(limit))  # fmt: skip
    if user_id is not None:
        query = query.where(U.user_id == user_id)
    return pd.DataFrame([{"user_id": u.user_id, "username": username, "account_id": u.account_id,
                          "account": account_label(a), "activity_id": u.activity_id, "trade_date": u.trade_date,
                          "type": u.transaction_type, "instrument": format_option(u.instrument) if u.instrument else None,
                          "currency": u.currency, "reason": u.reason, "flagged_at": u.flagged_at}
                         for u, username, a in session.execute(query).all()], columns=UNPLACEABLE_COLUMNS)  # fmt: skip


# --------------------------------------------------------------------------- the CLI's JSON


def trades_report(session: Session, user_id: int) -> dict[str, Any]:
    """`{"round_trips", "summary", "daily"}` exactly as issue 22's contract writes it."""
    return trades_json(st.trip for st in stored_trips(session, user_id, with_activities=True))


def positions_report(session: Session, user_id: int) -> dict[str, Any]:
    """`{"positions": [...]}`: every account's reconciliation, by account, instrument and currency."""
    rows: list[ReconciledPosition] = []
    accounts = session.execute(sa.select(BrokerageAccount).where(BrokerageAccount.user_id == user_id)).scalars()
    for account in accounts:
        rows.extend(reconciled_positions(session, account))
    rows.sort(key=lambda r: (r.account, r.instrument, r.currency is None, r.currency or ""))
    return positions_json(rows)


__all__ = [
    "AccountPositions",
    "DailyPnl",
    "PositionRow",
    "StoredTrip",
    "Summary",
    "TripFilter",
    "account_positions",
    "breakdown",
    "daily_calendar",
    "equity_curve",
    "explain",
    "journal_currencies",
    "positions_report",
    "stored_trips",
    "summary_tiles",
    "trades_report",
    "trip_count",
    "trip_fills",
    "trip_table",
    "unexplained_accounts",
    "unplaceable_activities",
]
