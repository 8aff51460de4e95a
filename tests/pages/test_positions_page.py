"""AppTest of the Positions page and of the Operations reconciliation tab: history beside broker units with
FIFO cost basis, each difference in words, the age of the last read, "Reconcile" reading the broker now (the
sandbox's late-history account flagged), and staff seeing unexplained accounts and unplaceable activities."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from core.journal.positions import HeldPosition, store_positions
from core.journal.upkeep import upkeep_accounts
from core.storage.models import utcnow
from tests import factories as f
from tests.syncsupport import connect, sync_now

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "positions.py")
OPS = str(ROOT / "pages" / "operations.py")
D = Decimal


def trade(account, aid, kind, symbol, units, price, on, **kw):
    return f.transaction_row(account, snaptrade_activity_id=aid, transaction_type=kind, symbol=symbol, quantity=units,
                             price=price, fee="0", trade_date=on, security_type="cs", currency="USD", **kw)  # fmt: skip


@pytest.fixture
def held(db):
    """tina holds 40 TSLA (cost 400) and 5 AAPL by history; the broker holds 50 TSLA, 5 AAPL and 3 VTI.
    Her second account was never read. One BUY of zero units cannot be placed."""
    user, conn, usd = f.make_trader(db, "tina")
    other = f.make_account(db, conn, account_name="Roth IRA")
    f.bulk_transactions(db, [
        trade(usd, "t1", "BUY", "TSLA", "40", "10", date(2025, 3, 10)),
        trade(usd, "p1", "BUY", "AAPL", "5", "100", date(2025, 3, 11)),
        trade(usd, "z1", "BUY", "NVDA", "0", "100", date(2025, 3, 12)),
    ])  # fmt: skip
    f.bulk_transactions(db, [trade(other, "o1", "BUY", "MSFT", "2", "300", date(2025, 3, 10))])
    upkeep_accounts(db, [usd.id, other.id])
    store_positions(db, usd, [HeldPosition("TSLA", "TSLA", "stock", "USD", D(50)),
                              HeldPosition("AAPL", "AAPL", "stock", "USD", D(5)),
                              HeldPosition("VTI", "VTI", "etf", "USD", D(3))], utcnow())  # fmt: skip
    db.commit()
    upkeep_accounts(db, [usd.id])
    return user, usd, other


def _app(path: str, user_id: int | None, role: str = "trader") -> AppTest:
    at = AppTest.from_file(path, default_timeout=60)
    at.context = {"timezone": "Europe/Paris"}
    if user_id is not None:
        at.session_state["current_user"] = f.session_user(user_id, username="tina", role=role)
    return at


def test_without_user_asks_to_sign_in(db):
    at = _app(PAGE, None).run()
    assert any("Please sign in" in i.value for i in at.info)


def test_no_accounts_shows_an_empty_state(db):
    user = f.make_user(db)
    at = _app(PAGE, user.id).run()
    assert not at.exception and any("No accounts yet" in i.value for i in at.info)


def test_history_beside_broker_with_each_difference_in_words(held):
    user, usd, other = held
    at = _app(PAGE, user.id).run()
    assert not at.exception
    table = at.dataframe[0].value
    rows = {r["Instrument"]: r for r in table.to_dict("records")}
    assert rows["TSLA"]["History"] == "40" and rows["TSLA"]["Broker"] == "50"
    assert rows["TSLA"]["Cost basis (FIFO)"] == "400.00 USD" and rows["TSLA"]["Status"] == "⚠️ Differs"
    assert rows["AAPL"]["Status"] == "✅ Matches" and rows["VTI"]["Status"] == "⚠️ Only at broker"
    text = " ".join(m.value for m in at.markdown)
    assert "history shows 40 TSLA, broker holds 50: 10 shares with no purchase in the imported history" in text
    assert any("2 position(s) the imported history does not explain" in w.value for w in at.warning)
    captions = " ".join(c.value for c in at.caption)
    assert "Broker positions read" in captions and "have not been read yet" in captions  # the other account
    # its age said once, in the read time's brackets
    assert re.search(r"Broker positions read [^;]+ \((just now|\d+ \w+ ago)\)\.", captions) and " old" not in captions
    assert at.dataframe[1].value["Status"].tolist() == ["… Not read yet"]


def test_reconcile_without_a_broker_registration_says_so(held):
    user, _, _ = held
    at = _app(PAGE, user.id).run()
    at.button(key="pos_reconcile_all").click().run()
    assert not at.exception
    assert any("No connected account" in i.value for i in at.info)


def test_reconcile_reads_the_sandbox_and_flags_the_late_history_account(app_engine, sandbox):
    with Session(app_engine, expire_on_commit=False) as s:
        user = f.make_user(s, "tina")
        connect(s, sandbox, user.id, broker="SANDBOX_US", history_size=300)
    sync_now(app_engine, user.id, trigger="initial")
    sandbox.reset_request_log()
    at = _app(PAGE, user.id).run()
    assert not at.exception
    accounts = [h.value for h in at.subheader]
    assert len(accounts) == 2
    at.button(key="pos_reconcile_all").click().run()
    assert not at.exception
    assert any("Positions read just now for 2 account(s)" in s.value for s in at.success)
    assert sum(sandbox.request_counts().values()) == 2  # one positions read per account, nothing else
    late = [i for i, name in enumerate(accounts) if "Roth IRA" in name]
    assert late, accounts
    text = " ".join(m.value for m in at.markdown)
    assert "with no purchase in the imported history" in text
    assert any("the imported history does not explain" in w.value for w in at.warning)
    assert any("explains every position" in s.value for s in at.success)  # the other account matches


def test_operations_lists_unexplained_accounts_and_unplaceable_activities(held, db):
    staff = f.make_user(db, "sam", role="staff")
    at = _app(OPS, staff.id, role="staff").run()
    assert not at.exception
    assert [t.label for t in at.tabs][-1] == "Reconciliation"
    heads = [h.value for h in at.subheader]
    assert "Positions the history does not explain (1)" in heads
    assert "Activities the journal could not place (1)" in heads
    unexplained = next(d.value for d in at.dataframe if "Unexplained positions" in d.value.columns)
    assert unexplained["User"].tolist() == ["tina"] and unexplained["Unexplained positions"].tolist() == [2]
    unplaceable = next(d.value for d in at.dataframe if "SnapTrade activity" in d.value.columns)
    assert unplaceable["SnapTrade activity"].tolist() == ["z1"]


def test_a_trader_cannot_open_the_reconciliation_tab(held):
    user, _, _ = held
    at = _app(OPS, user.id, role="trader").run()
    assert any("staff only" in e.value for e in at.error)
    assert not any("does not explain" in h.value for h in at.subheader)
