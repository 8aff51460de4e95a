"""core.reads.journal: what the Journal, Positions and Operations pages read, on a small history whose every
number is worked out by hand; both databases."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.journal.jsonout import positions_json, trades_json
from core.journal.metrics import daily_pnl, summarize
from core.journal.positions import HeldPosition, store_positions
from core.journal.reconcile import ReconciledPosition, reconcile
from core.journal.upkeep import upkeep_accounts
from core.reads.journal import (
    TripFilter,
    account_positions,
    breakdown,
    daily_calendar,
    equity_curve,
    explain,
    journal_currencies,
    positions_report,
    summary_tiles,
    trades_report,
    trip_count,
    trip_fills,
    trip_table,
    unexplained_accounts,
    unplaceable_activities,
)
from core.storage.models import utcnow
from tests import factories as f
from tests.core.journal.builders import OPT, engine_journal

D = Decimal


def trade(account, aid, kind, symbol, units, price, on, fee="0", **kw):
    return f.transaction_row(account, snaptrade_activity_id=aid, transaction_type=kind, symbol=symbol,
                             quantity=units, price=price, fee=fee, trade_date=on, security_type=kw.pop("security_type", "cs"),
                             option_ticker=kw.pop("option_ticker", None), option_action=kw.pop("option_action", None),
                             currency=kw.pop("currency", "USD"), **kw)  # fmt: skip


@pytest.fixture
def journal(engine):
    """A USD account (stocks, an option, an open TSLA, a trade naming nothing) and a CAD one."""
    with Session(engine, expire_on_commit=False) as s:
        user, conn, usd = f.make_trader(s, "tina")
        cad = f.make_account(s, conn, currency="CAD", account_name="TFSA")
        f.bulk_transactions(s, [
            trade(usd, "a1", "BUY", "AAPL", "10", "100", date(2025, 3, 3), fee="1"),  # Monday
            trade(usd, "a2", "SELL", "AAPL", "-10", "110", date(2025, 3, 5), fee="1"),  # Wednesday: +98
            trade(usd, "m1", "BUY", "MSFT", "5", "200", date(2025, 3, 4)),
            trade(usd, "m2", "SELL", "MSFT", "-5", "190", date(2025, 3, 4)),  # Tuesday, same day: -50
            trade(usd, "o1", "BUY", "AAPL", "1", "2", date(2025, 3, 6), security_type="option", option_ticker=OPT,
                  option_action="BUY_TO_OPEN"),
            trade(usd, "o2", "SELL", "AAPL", "-1", "3", date(2025, 3, 7), security_type="option", option_ticker=OPT,
                  option_action="SELL_TO_CLOSE"),  # Friday: (3 - 2) x 100 = +100
            trade(usd, "t1", "BUY", "TSLA", "40", "10", date(2025, 3, 10)),  # still open
            trade(usd, "x1", "BUY", None, "3", "10", date(2025, 3, 11)),  # names no instrument
        ])  # fmt: skip
        f.bulk_transactions(s, [
            trade(cad, "v1", "BUY", "VAB.TO", "10", "30", date(2025, 4, 1), currency="CAD"),
            trade(cad, "v2", "SELL", "VAB.TO", "-10", "29", date(2025, 4, 1), currency="CAD"),  # -10 CAD
        ])  # fmt: skip
        upkeep_accounts(s, [usd.id, cad.id])
        store_positions(s, usd, [HeldPosition("TSLA", "TSLA", "stock", "USD", D(50)),
                                 HeldPosition("VTI", "VTI", "etf", "USD", D(3))], utcnow())  # fmt: skip
        s.commit()
        upkeep_accounts(s, [usd.id])
        yield s, user, usd, cad


def test_summary_tiles_per_currency_by_hand(journal):
    s, user, _, _ = journal
    cad, usd = summary_tiles(s, user.id)
    assert (usd.currency, usd.closed_trades, usd.wins, usd.losses, usd.scratches) == ("USD", 3, 2, 1, 0)
    assert (usd.win_rate, usd.gross_profit, usd.gross_loss, usd.profit_factor) == (
        D("0.6666666667"),
        D(198),
        D(-50),
        D("3.96"),
    )
    assert (usd.expectancy, usd.average_win, usd.average_loss) == (D("49.3333333333"), D(99), D(-50))
    assert (usd.largest_win, usd.largest_loss, usd.max_drawdown) == (D(100), D(-50), D(50))
    assert usd.average_holding_days == D(1)  # (2 + 0 + 1) / 3
    assert (cad.currency, cad.closed_trades, cad.losses, cad.gross_loss, cad.win_rate) == ("CAD", 1, 1, D(-10), D(0))
    (only_march,) = summary_tiles(s, user.id, start=date(2025, 3, 5), end=date(2025, 3, 31))
    assert (only_march.currency, only_march.closed_trades, only_march.gross_profit) == ("USD", 2, D(198))
    assert journal_currencies(s, user.id) == ["USD", "CAD"]


def test_calendar_and_equity_curve_with_its_drawdown(journal):
    s, user, _, _ = journal
    march = daily_calendar(s, user.id, currency="USD", year=2025, month=3)
    assert march.to_dict("records") == [
        {"date": date(2025, 3, 4), "net_pnl": D(-50), "trades": 1},
        {"date": date(2025, 3, 5), "net_pnl": D(98), "trades": 1},
        {"date": date(2025, 3, 7), "net_pnl": D(100), "trades": 1},
    ]
    assert daily_calendar(s, user.id, currency="USD", year=2025, month=4).empty
    assert daily_calendar(s, user.id, currency="CAD", year=2025)["net_pnl"].tolist() == [D(-10)]
    curve = equity_curve(s, user.id, currency="USD")
    assert curve[["cumulative", "peak", "drawdown"]].values.tolist() == [[D(-50), D(0), D(50)], [D(48), D(48), D(0)],
                                                                        [D(148), D(148), D(0)]]  # fmt: skip


def test_breakdowns_by_symbol_weekday_and_holding_time(journal):
    s, user, _, _ = journal
    by_symbol = breakdown(s, user.id, currency="USD", by="symbol")
    assert by_symbol[["group", "trades", "wins", "losses", "net_pnl"]].values.tolist() == [
        ["AAPL", 2, 2, 0, D(198)],  # the option counts under its underlying
        ["MSFT", 1, 0, 1, D(-50)],
    ]
    assert breakdown(s, user.id, currency="USD", by="weekday")["group"].tolist() == ["Tuesday", "Wednesday", "Friday"]
    holding = breakdown(s, user.id, currency="USD", by="holding")
    assert holding[["group", "net_pnl"]].values.tolist() == [
        ["same day", D(-50)],
        ["1 day", D(100)],
        ["2–7 days", D(98)],
    ]
    with pytest.raises(ValueError):
        breakdown(s, user.id, currency="USD", by="moon phase")


def test_round_trip_table_filters_sorts_and_opens_a_trips_fills(journal):
    s, user, usd, cad = journal

    def table(**kw):
        sort = kw.pop("sort", "date")
        return trip_table(s, user.id, TripFilter(**kw), sort=sort)

    assert table(sort="pnl")["net_pnl"].tolist()[:4] == [D(100), D(98), D(-10), D(-50)]
    assert table(sort="pnl")["outcome"].tolist()[4:] == ["open"]
    assert table()["closed_on"].tolist()[0] == date(2025, 4, 1)
    aapl = table(symbol="aapl")
    assert sorted(aapl["instrument"]) == ["AAPL", "AAPL 2026-12-18 240 C"]
    assert table(outcome="loss", currency="USD")["instrument"].tolist() == ["MSFT"]
    assert table(account_id=cad.id)["currency"].tolist() == ["CAD"]
    assert table(direction="short").empty
    assert table(start=date(2025, 3, 6), end=date(2025, 3, 10))["instrument"].tolist() == [
        "TSLA",
        "AAPL 2026-12-18 240 C",
    ]
    option = aapl[aapl["instrument"] != "AAPL"].iloc[0]
    fills = trip_fills(s, user.id, int(option["id"]))
    assert fills[["activity_id", "type", "option_action", "quantity", "price"]].values.tolist() == [
        ["o1", "BUY", "BUY_TO_OPEN", D(1), D(2)],
        ["o2", "SELL", "SELL_TO_CLOSE", D(-1), D(3)],
    ]
    assert trip_fills(s, user.id + 1, int(option["id"])).empty  # another user's trip shows nothing


def test_positions_beside_the_broker_with_each_difference_explained(journal):
    s, user, usd, cad = journal
    pages = {p.account_id: p for p in account_positions(s, user.id)}
    rows = [
        (r.display, r.quantity, r.cost_basis, r.broker_quantity, r.status, r.explanation) for r in pages[usd.id].rows
    ]
    assert rows == [
        ("TSLA", D(40), D(400), D(50), "differs",
         "history shows 40 TSLA, broker holds 50: 10 shares with no purchase in the imported history"),
        ("VTI", D(0), None, D(3), "only_at_broker",
         "history shows none, broker holds 3 VTI: 3 shares with no purchase in the imported history"),
    ]  # fmt: skip
    assert pages[usd.id].differences == 2 and pages[usd.id].read_age_seconds >= 0
    assert pages[cad.id].rows == [] and pages[cad.id].positions_read_at is None


def test_explanations_for_every_status():
    def row(quantity, broker, status, instrument="TSLA"):
        return ReconciledPosition(account="a", instrument=instrument, currency="USD", quantity=D(quantity),
                                  cost_basis=None, broker_quantity=None if broker is None else D(broker), status=status)  # fmt: skip

    assert (
        explain(row(50, 40, "differs"))
        == "history shows 50 TSLA, broker holds 40: 10 shares with no sale in the imported history"
    )
    assert explain(row(40, 40, "matched")) == "history and broker agree: 40 TSLA"
    assert explain(row(40, None, "not_at_broker")) == (
        "history shows 40 TSLA, broker holds none: 40 shares with no sale in the imported history"
    )
    assert explain(row(-10, None, "not_at_broker")) == (
        "history shows a short of 10 TSLA, broker holds none: 10 shares with no purchase in the imported history"
    )
    assert explain(row(2, 3, "differs", OPT)) == (
        "history shows 2 AAPL 2026-12-18 240 C, broker holds 3: 1 contracts with no purchase in the imported history"
    )
    assert explain(row(1, None, "not_at_broker"), read=False) == (
        "history shows 1 TSLA; the broker's positions have not been read yet"
    )


def test_operations_lists_unexplained_accounts_across_users_newest_first_and_unplaceable_activities(journal):
    s, user, usd, cad = journal
    other, _, theirs = f.make_trader(s, "omar")
    f.bulk_transactions(s, [trade(theirs, "k1", "BUY", "KO", "7", "60", date(2025, 5, 2))])
    upkeep_accounts(s, [theirs.id])
    store_positions(s, theirs, [], utcnow())  # the broker holds nothing: the 7 KO are not explained
    s.commit()
    upkeep_accounts(s, [theirs.id])
    listed = unexplained_accounts(s)
    assert listed[["username", "account_id", "differences"]].values.tolist() == [
        ["omar", theirs.id, 1],
        ["tina", usd.id, 2],
    ]
    store_positions(s, theirs, [HeldPosition("KO", "KO", "stock", "USD", D(7))], utcnow())
    s.commit()
    upkeep_accounts(s, [theirs.id])
    assert unexplained_accounts(s)["username"].tolist() == ["tina"]
    flagged = unplaceable_activities(s)
    assert flagged[["username", "activity_id", "type", "reason"]].values.tolist() == [
        ["tina", "x1", "BUY", "no instrument (no symbol or option ticker)"]
    ]
    assert unplaceable_activities(s, user_id=other.id).empty


def test_the_cli_reports_are_the_engines_json_over_the_stored_activities(journal):
    s, user, usd, _ = journal
    reference = engine_journal(s, user.id)
    assert trades_report(s, user.id) == trades_json(reference.round_trips)
    from core.journal.reconcile import BrokerPosition

    broker = [BrokerPosition(account=usd.snaptrade_account_id, instrument=i, currency="USD", units=D(u))
              for i, u in (("TSLA", 50), ("VTI", 3))]  # fmt: skip
    assert positions_report(s, user.id) == positions_json(reconcile(reference.positions, broker))
    assert [p["status"] for p in positions_report(s, user.id)["positions"]] == ["differs", "only_at_broker"]


# --------------------------------------------------------------------------- what the page's queries cost


def statements_on(engine, table: str, work, **arguments) -> list[tuple[str, tuple]]:
    seen: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        work(**arguments)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return seen


def test_summary_tiles_add_up_the_daily_aggregates_kept_by_every_kind_of_upkeep(engine):
    """Random histories written in batches (later days, backdated rows, edits, deletes), upkeep after each: the
    tiles, per account and period too, are what metrics.summarize makes of the engine's round trips, and no
    tile reads a round trip (the daily aggregates are kept with them)."""
    rng = random.Random(22)
    with Session(engine, expire_on_commit=False) as s:
        user, conn, usd = f.make_trader(s, "tara")
        other = f.make_account(s, conn, currency="CAD", account_name="TFSA")
        serial = 0
        for batch in range(8):
            rows = []
            for _ in range(rng.randint(5, 30)):
                serial += 1
                account = rng.choice([usd, other])
                kind = rng.choice(["BUY", "SELL", "SELL", "BUY", "STOCK_DIVIDEND"])
                units = D(rng.randint(1, 9)) * (-1 if kind == "SELL" else 1)
                on = date(2025, 1, 1) + timedelta(days=rng.randint(0, 20) + (batch * 10 if rng.random() < 0.7 else 0))
                rows.append(trade(account, f"r{serial}", kind, rng.choice(["AAPL", "MSFT", "KO"]), units,
                                  D(rng.randint(50, 150)), on, fee=D(rng.randint(0, 2)),
                                  currency=rng.choice(["USD", "USD", "CAD"])))  # fmt: skip
            f.bulk_transactions(s, rows)
            if batch % 3 == 2:
                s.execute(
                    sa.text("DELETE FROM brokerage_transactions WHERE snaptrade_activity_id = :a"),
                    {"a": f"r{serial - 3}"},
                )
                s.execute(sa.text("UPDATE brokerage_transactions SET price = price WHERE snaptrade_activity_id = :a"),
                          {"a": f"r{serial - 7}"})  # fmt: skip
                s.commit()
            upkeep_accounts(s, [usd.id, other.id])
            trips = engine_journal(s, user.id).round_trips
            ids = {usd.snaptrade_account_id: usd.id, other.snaptrade_account_id: other.id}
            for account_id, start, end in [
                (None, None, None),
                (usd.id, None, None),
                (None, date(2025, 1, 15), date(2025, 2, 10)),
            ]:
                chosen = [rt for rt in trips if (account_id is None or ids[rt.account] == account_id)
                          and (start is None or (rt.closed_on or rt.opened_on) >= start)
                          and (end is None or (rt.closed_on or rt.opened_on) <= end)]  # fmt: skip
                reads = statements_on(engine, "journal_round_trips",
                                      lambda a=account_id, b=start, e=end: summary_tiles(s, user.id, account_id=a, start=b, end=e))  # fmt: skip
                assert summary_tiles(s, user.id, account_id=account_id, start=start, end=end) == summarize(chosen)
                assert reads == [], "the tiles read the round trips"
            for currency, account_id in [("USD", None), ("CAD", usd.id), (None, None)]:
                days = [d for d in daily_pnl(rt for rt in trips if rt.currency == currency
                                             and (account_id is None or ids[rt.account] == account_id))]  # fmt: skip
                january = [d for d in days if d.date.year == 2025 and d.date.month == 1]
                reads = statements_on(engine, "journal_round_trips", lambda c=currency, a=account_id: (
                    daily_calendar(s, user.id, currency=c, year=2025, month=1, account_id=a),
                    equity_curve(s, user.id, currency=c, account_id=a)))  # fmt: skip
                month = daily_calendar(s, user.id, currency=currency, year=2025, month=1, account_id=account_id)
                assert month.to_dict("records") == [{"date": d.date, "net_pnl": d.net_pnl, "trades": d.trades}
                                                    for d in january]  # fmt: skip
                curve = equity_curve(s, user.id, currency=currency, account_id=account_id)
                assert curve["date"].tolist() == [d.date for d in days]
                assert curve["net_pnl"].tolist() == [d.net_pnl for d in days]
                assert reads == [], "the calendar or the equity curve read the round trips"


def test_the_round_trip_table_by_date_reads_only_the_page_it_shows(engine):
    """Sorted by date (close, else open), newest first, a page at a time: the rows are those of the whole
    sorted table, and the statement returns only the page's rows (not every round trip of the user)."""
    with Session(engine, expire_on_commit=False) as s:
        user, _, acct = f.make_trader(s, "pia")
        rows = []
        for i in range(60):
            on = date(2025, 1, 1) + timedelta(days=i)
            rows += [
                trade(acct, f"b{i}", "BUY", "AAPL", "1", "10", on),
                trade(acct, f"s{i}", "SELL", "AAPL", "-1", str(10 + i % 3), on),
            ]
        rows.append(trade(acct, "open", "BUY", "MSFT", "1", "10", date(2025, 1, 20)))
        f.bulk_transactions(s, rows)
        upkeep_accounts(s, [acct.id])
        everything = trip_table(s, user.id, TripFilter(currency="USD"))
        assert len(everything) == 61 and trip_count(s, user.id, TripFilter(currency="USD")) == 61
        on = [c if c is not None else o for c, o in zip(everything["closed_on"], everything["opened_on"], strict=True)]
        assert on == sorted(on, reverse=True)
        pages = []
        for offset in range(0, 61, 25):
            reads = statements_on(engine, "journal_round_trips", lambda at: pages.append(
                trip_table(s, user.id, TripFilter(currency="USD"), limit=25, offset=at)), at=offset)  # fmt: skip
            shown = len(pages[-1])
            returned = sum(len(s.connection().exec_driver_sql(st, p).all()) for st, p in reads)
            assert returned == shown <= 25
        assert list(pd.concat(pages)["id"]) == list(everything["id"])
        wins = trip_table(s, user.id, TripFilter(currency="USD", outcome="win", start=date(2025, 1, 10)), limit=5)
        assert list(wins["outcome"]) == ["win"] * 5 and min(wins["closed_on"]) >= date(2025, 1, 10)
