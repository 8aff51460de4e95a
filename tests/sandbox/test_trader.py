"""The sandbox trades like a person: its histories are position-consistent, show every feature the trade journal
handles, and trade on days the exchange is open (the `demo` fixture: every account of a demo trader, several seeds).
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sandbox import Sandbox
from sandbox.scenarios import LATE_HISTORY_PROFILE
from tests.sandbox.conftest import demo_accounts
from tests.sandbox.replay import instrument, is_option, replay


def test_stock_holdings_never_go_negative_except_deliberate_shorts(demo):
    for acct in demo:
        r = replay(acct.rows)
        assert r.crossings == [], acct.profile
        for trip in r.round_trips:
            if not trip.short or is_option(trip.instrument):
                continue  # long round trips never dip below zero (no crossings); selling options to open is fine
            first = trip.rows[0]
            if acct.profile == LATE_HISTORY_PROFILE and trip.closed_on is None:
                continue  # shares bought before the history begins: see test_ledger
            assert acct.profile == "us_margin" and first["type"] == "SELL" and "short" in first["description"], trip
            newest = {row["id"] for row in acct.rows[:8]}  # a short sale in the last block may still be open
            assert trip.closed_on is not None or first["id"] in newest, f"a short sale is bought back: {trip}"


def test_history_shows_every_feature_the_journal_handles(demo):
    closed = [t for a in demo for t in replay(a.rows).round_trips if t.closed_on and not _cost_unknown(t)]
    assert any(t.gross > 0 for t in closed) and any(t.gross < 0 for t in closed)
    assert any(_partial_fills(a.rows) for a in demo)
    assert any(_same_day_round_trips(a.rows) for a in demo if a.timed)
    rows = [r for a in demo for r in a.rows]
    types = Counter(r["type"] for r in rows)
    assert types["OPTIONEXPIRATION"] and types["SPLIT"] >= 1
    assert {r["option_type"] for r in rows if r["option_symbol"] and r["type"] in ("BUY", "SELL")} == {
        "BUY_TO_OPEN", "SELL_TO_CLOSE", "SELL_TO_OPEN", "BUY_TO_CLOSE"}  # fmt: skip
    for event, legs in (("OPTIONASSIGNMENT", {"BUY", "SELL"}), ("OPTIONEXERCISE", {"BUY"})):
        assert {_stock_leg(a.rows, r)["type"] for a in demo for r in a.rows if r["type"] == event} == legs, event
    assert any(r["type"] == "EXTERNAL_ASSET_TRANSFER_IN" and r["units"] > 0 for r in rows)
    assert any(a.currency == "CAD" and a.rows for a in demo)
    [margin] = [a for a in demo if a.profile == "us_margin"]
    assert sum(r["type"] == "SPLIT" for r in margin.rows) == 1  # one split, in the margin account


def test_no_trade_dates_on_weekends_or_exchange_holidays(demo):
    for acct in demo:
        if acct.profile == "crypto":
            continue  # crypto trades every day of the week
        days = {date.fromisoformat(r["trade_date"][:10]) for r in acct.rows if r["trade_date"]}
        assert all(d.weekday() < 5 for d in days), acct.profile
        closed = CA_HOLIDAYS if acct.profile.startswith("ca_") else US_HOLIDAYS
        assert not days & closed, (acct.profile, sorted(days & closed))


def test_rows_synced_on_closed_days_are_after_hours_trades_of_the_last_open_day():
    # from Friday 2026-06-12 through Juneteenth (Friday 2026-06-19) and two weekends; then a few backdated rows
    for acct in demo_accounts(5, history_size=120, days=12):
        if acct.profile in ("crypto", "ca_cad", "ca_usd"):
            continue
        days = {date.fromisoformat(r["trade_date"][:10]) for r in acct.rows if r["trade_date"]}
        assert all(d.weekday() < 5 for d in days) and date(2026, 6, 19) not in days, acct.profile
        stamps = [(r["trade_date"] + "T00:00:00")[:19] for r in acct.rows if r["trade_date"]]
        assert stamps == sorted(stamps, reverse=True)


def test_twin_fills_are_rare(demo):
    trades = [r for a in demo for r in a.rows if r["type"] in ("BUY", "SELL")]
    copies = Counter(tuple(sorted((k, str(v)) for k, v in r.items() if k != "id")) for r in trades)
    twins = sum(n - 1 for n in copies.values())
    assert twins <= 0.02 * len(trades), (twins, len(trades))


# ---------------------------------------------------------------------------------------------------------------------


def _cost_unknown(trip) -> bool:
    return any(r["type"].endswith("TRANSFER_IN") or (r["type"] == "BUY" and not r["price"]) for r in trip.rows)


def _partial_fills(rows: list[dict]) -> bool:
    """Two buys of one instrument under one order reference, at one time, of different sizes."""
    orders = Counter()
    sizes: dict[tuple, set] = {}
    for r in rows:
        if r["type"] == "BUY" and r["external_reference_id"]:
            key = (instrument(r), r["external_reference_id"], r["trade_date"])
            orders[key] += 1
            sizes.setdefault(key, set()).add(r["units"])
    return any(n >= 2 and len(sizes[k]) >= 2 for k, n in orders.items())


def _same_day_round_trips(rows: list[dict]) -> bool:
    """A buy and a sell of one instrument on one day, at different times of that day."""
    by_day: dict[tuple, set] = {}
    for r in rows:
        if r["type"] in ("BUY", "SELL") and r["trade_date"]:
            by_day.setdefault((instrument(r), r["trade_date"][:10]), set()).add((r["type"], r["trade_date"]))
    return any({t for t, _ in v} == {"BUY", "SELL"} and len({s for _, s in v}) >= 2 for v in by_day.values())


def _stock_leg(rows: list[dict], event: dict) -> dict:
    """The broker's separate stock trade of an assignment or exercise: same order reference, 100 shares a contract
    at the strike."""
    [leg] = [r for r in rows if r["external_reference_id"] == event["external_reference_id"] and r is not event]
    opt = event["option_symbol"]
    assert leg["symbol"]["symbol"] == opt["underlying_symbol"]["symbol"]
    assert abs(leg["units"]) == 100 * abs(event["units"]) and leg["price"] == opt["strike_price"]
    assert leg["trade_date"] == event["trade_date"]
    return leg


US_HOLIDAYS = {date.fromisoformat(d) for d in (
    "2022-01-17", "2022-04-15", "2022-06-20", "2022-12-26", "2023-01-02", "2023-04-07", "2023-06-19",
    "2023-07-04", "2023-11-23", "2024-01-15", "2024-03-29", "2024-05-27", "2024-07-04", "2024-09-02",
    "2024-11-28", "2024-12-25", "2025-01-01", "2025-02-17", "2025-04-18", "2025-06-19", "2025-07-04",
    "2025-11-27", "2025-12-25", "2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25",
)}  # fmt: skip
CA_HOLIDAYS = {date.fromisoformat(d) for d in (
    "2022-05-23", "2022-07-01", "2022-08-01", "2022-10-10", "2022-12-26", "2022-12-27", "2023-02-20",
    "2023-07-03", "2023-12-26", "2024-02-19", "2024-05-20", "2024-07-01", "2024-08-05", "2024-10-14",
    "2025-02-17", "2025-05-19", "2025-07-01", "2025-08-04", "2025-10-13", "2025-12-26", "2026-05-18",
)}  # fmt: skip


def test_appending_days_never_changes_the_rows_already_served():
    # cut inside the margin account's option tour story: the contracts' expiries must not move as days arrive
    with Sandbox(seed=3, today="2026-06-15") as sb:
        sb.create_connection("late", "SANDBOX_US", history_size=2 * 5 * 8 + 2)
        before = {r["id"]: r for rows in sb.ground_truth("late").values() for r in rows}
        sb.advance_day(30)
        after = {r["id"]: r for rows in sb.ground_truth("late").values() for r in rows}
    assert len(after) > len(before) and all(after[k] == row for k, row in before.items())
