"""core.journal.positions and the positions read through the SDK: when SnapTrade's positions are read (and
when not), how they are named and stored, and that a failed read keeps the last good one; both databases."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from core.accounts.connections import get_snaptrade_identity, reconcile_connections
from core.journal.positions import HeldPosition, held_positions, store_positions
from core.journal.upkeep import reconcile_positions, upkeep_accounts
from core.reads.journal import account_positions
from core.snaptrade.client import SnapTradeClient
from core.storage.models import BrokerageAccount, BrokeragePosition, JournalReconciliation, JournalRoundTrip, utcnow
from tests import factories as f
from tests.core.journal.builders import OPT
from tests.syncsupport import connect, make_user, sync_now

POSITIONS = "/accounts/{accountId}/positions/all"


def sandbox_answer(sandbox, account_id: str) -> list[dict]:
    """What the emulator serves for the account's positions right now (its own view, not through our client)."""
    from sandbox import shapes

    return shapes.positions(sandbox.state, sandbox.state.accounts[account_id])["results"]


def stored(session, account: BrokerageAccount) -> list[HeldPosition]:
    rows = session.exec(select(BrokeragePosition).where(BrokeragePosition.account_id == account.id)).all()
    return sorted((HeldPosition(r.instrument, r.symbol, r.kind, r.currency, r.units) for r in rows),
                  key=lambda h: (h.instrument, h.currency or ""))  # fmt: skip


def test_positions_are_named_as_activities_name_them_and_summed_exactly():
    option = {"kind": "option", "id": "o", "symbol": "AAPL261218C00240000", "option_type": "CALL",
              "strike_price": "240", "expiration_date": "2026-12-18", "multiplier": "100",
              "underlying": {"symbol": "AAPL"}}  # fmt: skip
    built = {"kind": "option", "id": "p", "symbol": "not an OCC symbol", "option_type": "PUT", "strike_price": "300",
             "expiration_date": "2027-01-15", "multiplier": "100", "underlying": {"symbol": "MSFT"}}  # fmt: skip
    held = held_positions([
        {"instrument": {"kind": "stock", "symbol": "VAB.TO"}, "units": "10.5", "currency": "CAD"},
        {"instrument": {"kind": "stock", "symbol": "VAB.TO"}, "units": "0.25", "currency": "CAD"},
        {"instrument": option, "units": "-2", "currency": "USD"},
        {"instrument": built, "units": "1", "currency": "USD"},
        {"instrument": {"kind": "crypto", "symbol": "BTC", "currency": "USD"}, "units": "0.12345678"},
        {"instrument": {"kind": "stock", "symbol": "KO"}},  # no units: cannot be compared, left out
        {"units": "3"},  # no instrument
    ])  # fmt: skip
    assert held == [
        HeldPosition(OPT, "AAPL", "option", "USD", Decimal(-2)),
        HeldPosition("BTC", "BTC", "crypto", "USD", Decimal("0.12345678")),
        HeldPosition("MSFT  270115P00300000", "MSFT", "option", "USD", Decimal(1)),
        HeldPosition("VAB.TO", "VAB.TO", "stock", "CAD", Decimal("10.75")),
    ]


def test_the_client_reads_positions_all_through_the_sdk(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=50)
        reconcile_connections(s, user_id=uid)
        identity = get_snaptrade_identity(s, uid)
        account = s.exec(select(BrokerageAccount)).first()
    sandbox.reset_request_log()
    client = SnapTradeClient()
    results = client.account_positions(identity.snaptrade_user_id, identity.user_secret, account.snaptrade_account_id)
    assert client.requests_made == 1 and sandbox.request_counts() == {POSITIONS: 1}
    expected = sandbox_answer(sandbox, account.snaptrade_account_id)
    assert [(r["instrument"]["symbol"], Decimal(r["units"])) for r in results] == [
        (e["instrument"]["symbol"], Decimal(e["units"])) for e in expected
    ]


def test_the_first_sync_reads_each_accounts_positions_once_and_stores_them_with_the_time(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=300)
    sandbox.reset_request_log()
    started = utcnow()
    sync_now(engine, uid, trigger="initial")
    finished = utcnow()
    with Session(engine) as s:
        accounts = s.exec(select(BrokerageAccount)).all()
        assert len(accounts) == 2 and sandbox.request_counts()[POSITIONS] == 2
        for account in accounts:
            assert stored(s, account) == held_positions(sandbox_answer(sandbox, account.snaptrade_account_id))
            state = s.get(JournalReconciliation, account.id)
            assert started <= state.positions_read_at <= finished and state.positions_error is None
            assert {
                p.read_at for p in s.exec(select(BrokeragePosition).where(BrokeragePosition.account_id == account.id))
            } == {state.positions_read_at}
            assert state.differences is not None  # reconciled against the history right away


def test_a_later_sync_rereads_positions_only_where_activities_came_in(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=300)
    sync_now(engine, uid, trigger="initial")
    with Session(engine) as s:
        busy, quiet = s.exec(select(BrokerageAccount).order_by(BrokerageAccount.id)).all()
        quiet_read = s.get(JournalReconciliation, quiet.id).positions_read_at
    sandbox.add_backdated(busy.snaptrade_account_id, count=3, days_back=2)
    sandbox.reset_request_log()
    [run] = sync_now(engine, uid, full=True)  # both accounts re-read; only one brings anything new
    assert run.status == "completed" and run.transactions_new == 3
    log = [r["path"] for r in sandbox.request_log() if r["path_template"] == POSITIONS]
    assert len(log) == 1 and busy.snaptrade_account_id in log[0]
    with Session(engine) as s:
        assert s.get(JournalReconciliation, quiet.id).positions_read_at == quiet_read


def test_a_failed_positions_read_keeps_the_last_good_one_and_says_how_old_it_is(engine, sandbox, monkeypatch):
    from core.settings import reset_settings_cache

    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_CA", history_size=200)
    sync_now(engine, uid, trigger="initial")
    with Session(engine, expire_on_commit=False) as s:
        account = s.exec(select(BrokerageAccount)).first()
        good, good_at = stored(s, account), s.get(JournalReconciliation, account.id).positions_read_at
        assert good
    monkeypatch.setenv("HTTP_MAX_RETRIES", "0")
    reset_settings_cache()
    sandbox.set_faults(error_rate=1.0, seed=1)  # every request answers 5xx
    with Session(engine, expire_on_commit=False) as s:
        [read] = reconcile_positions(s, uid, account_id=account.id)
    sandbox.set_faults()
    assert not read.ok and read.read_at == good_at and "SnapTrade" in read.error
    with Session(engine) as s:
        assert stored(s, account) == good
        state = s.get(JournalReconciliation, account.id)
        assert state.positions_read_at == good_at and state.positions_attempted_at > good_at and state.positions_error
        [page] = account_positions(s, uid, account_id=account.id)
        assert page.positions_read_at == good_at and page.last_error == state.positions_error
        assert page.read_age_seconds > 0 and all(row.status != "not_read" for row in page.rows)


def test_reconcile_reads_every_active_account_now_or_just_one(engine, sandbox):
    with Session(engine, expire_on_commit=False) as s:
        uid = make_user(s)
        connect(s, sandbox, uid, broker="SANDBOX_US", history_size=100)
    sync_now(engine, uid, trigger="initial")
    sandbox.advance_day()  # the emulator's holdings move with the day
    sandbox.reset_request_log()
    with Session(engine, expire_on_commit=False) as s:
        reads = reconcile_positions(s, uid)
        assert [r.ok for r in reads] == [True, True] and sandbox.request_counts() == {POSITIONS: 2}
        for account in s.exec(select(BrokerageAccount)):
            assert stored(s, account) == held_positions(sandbox_answer(sandbox, account.snaptrade_account_id))
        one = s.exec(select(BrokerageAccount)).first()
        sandbox.reset_request_log()
        [read] = reconcile_positions(s, uid, account_id=one.id)
        assert read.account_id == one.id and sandbox.request_counts() == {POSITIONS: 1}


def test_a_broker_short_makes_a_sell_from_flat_a_real_short_and_its_loss_brings_back_the_flag(engine):
    """incomplete_history depends on the broker: a positions read that changes an instrument's short status
    marks that pair dirty, and the upkeep rebuilds it."""
    with Session(engine, expire_on_commit=False) as s:
        _, _, acct = f.make_trader(s)
        f.bulk_transactions(s, [f.transaction_row(acct, transaction_type="SELL", symbol="XYZ", quantity="-10",
                                                  price="5", trade_date=date(2025, 3, 3))])  # fmt: skip
        upkeep_accounts(s, [acct.id])
        (trip,) = s.exec(select(JournalRoundTrip).execution_options(populate_existing=True)).all()
        assert (trip.direction, trip.status, trip.flags) == ("short", "open", ["incomplete_history"])

        def broker_holds(units: str | None) -> None:
            held = [HeldPosition("XYZ", "XYZ", "stock", "USD", Decimal(units))] if units else []
            store_positions(s, acct, held, utcnow())
            s.commit()
            upkeep_accounts(s, [acct.id])

        broker_holds("-10")
        (trip,) = s.exec(select(JournalRoundTrip).execution_options(populate_existing=True)).all()
        assert trip.flags == []
        [page] = account_positions(s, acct.user_id)
        assert [(r.quantity, r.broker_quantity, r.status) for r in page.rows] == [
            (Decimal(-10), Decimal(-10), "matched")
        ]
        broker_holds(None)
        (trip,) = s.exec(select(JournalRoundTrip).execution_options(populate_existing=True)).all()
        assert trip.flags == ["incomplete_history"]
        assert s.execute(sa.text("SELECT count(*) FROM journal_dirty_pairs")).scalar() == 0


def test_a_staking_reward_adds_units_at_zero_cost_so_the_crypto_position_matches_the_broker(engine):
    """SnapTrade's STAKING_REWARD is not a documented type: it is stored as OTHER with its type kept in raw_type.
    The engine reads it as a buy-side acquisition at zero cost (like a stock dividend): the history holds what
    the broker holds, nothing is unplaceable, and selling everything later is one round trip whose cost is the
    purchase alone."""
    from core.ingest.normalize import normalize_activity
    from core.storage.models import JournalUnplaceable

    def activity(aid: str, kind: str, units: str, price: str, on: str) -> dict:
        return {"id": aid, "type": kind, "units": units, "price": price, "fee": 0, "amount": 0, "currency": {"code": "USD"},
                "trade_date": f"{on}T12:00:00Z", "symbol": {"symbol": "ETH", "type": {"code": "crypto"}},
                "description": kind}  # fmt: skip

    with Session(engine, expire_on_commit=False) as s:
        _, _, acct = f.make_trader(s)
        stored_rows = [normalize_activity(activity("e1", "BUY", "2", "3000", "2025-03-03")),
                       normalize_activity(activity("e2", "STAKING_REWARD", "0.05", "3100", "2025-03-10"))]  # fmt: skip
        assert [(r["transaction_type"], r["raw_type"]) for r in stored_rows] == [
            ("BUY", "BUY"),
            ("OTHER", "STAKING_REWARD"),
        ]
        f.bulk_transactions(s, [f.transaction_row(acct, **{k: v for k, v in r.items() if k in _COLUMNS})
                                for r in stored_rows])  # fmt: skip
        store_positions(s, acct, [HeldPosition("ETH", "ETH", "crypto", "USD", Decimal("2.05"))], utcnow())
        s.commit()
        upkeep_accounts(s, [acct.id])
        [page] = account_positions(s, acct.user_id)
        assert [(r.quantity, r.cost_basis, r.status) for r in page.rows] == [
            (Decimal("2.05"), Decimal(6000), "matched")
        ]
        assert s.exec(select(JournalUnplaceable)).all() == []
        f.bulk_transactions(s, [f.transaction_row(acct, transaction_type="SELL", symbol="ETH", security_type="crypto",
                                                  quantity=Decimal("-2.05"), price=Decimal(3200),
                                                  trade_date=date(2025, 4, 1))])  # fmt: skip
        upkeep_accounts(s, [acct.id])
        (trip,) = s.exec(select(JournalRoundTrip).execution_options(populate_existing=True)).all()
        assert (trip.status, trip.flags, trip.gross_pnl) == ("closed", [], Decimal("6560") - Decimal(6000))


_COLUMNS = ("snaptrade_activity_id", "transaction_type", "raw_type", "symbol", "security_type", "quantity", "price",
            "fee", "currency", "trade_date", "trade_timestamp", "raw")  # fmt: skip
