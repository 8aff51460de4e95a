"""core.reads.transactions on SQLite and PostgreSQL: filters, paging, sorting, exact per-currency totals,
CSV export, per-user scoping, the covering index and the data version."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.reads import export
from core.reads import formatting as fmt
from core.reads import transactions as q
from core.reads.transactions import TransactionFilters as F
from core.reads.transactions import TransactionSort as S
from core.storage.models import TransactionSyncLog
from tests import factories as f

NOW = datetime.now(UTC)


@pytest.fixture
def book(session):
    """alice: two accounts, USD and CAD rows incl. an option; bob: rows that alice must never see."""
    alice, conn, usd = f.make_trader(session, "alice")
    cad = f.make_account(session, conn, account_name="TFSA", currency="CAD")
    rows = {
        "buy": f.make_transaction(
            session,
            usd,
            transaction_type="BUY",
            symbol="AAPL",
            quantity="10",
            price="150.25",
            amount="-1502.50",
            fee="0.1",
            trade_date=date(2026, 1, 5),
            description="Buy Apple",
        ),
        "div1": f.make_transaction(
            session,
            usd,
            transaction_type="DIVIDEND",
            symbol="MSFT",
            amount="0.1",
            fee="0.2",
            trade_date=date(2026, 2, 1),
            description="MSFT cash dividend",
        ),
        "div2": f.make_transaction(
            session,
            usd,
            transaction_type="DIVIDEND",
            symbol="MSFT",
            amount="0.2",
            trade_date=date(2026, 2, 1),
            description="MSFT cash dividend",
        ),
        "opt": f.make_transaction(
            session,
            usd,
            transaction_type="SELL",
            symbol="AAPL",
            option_ticker="AAPL  261218C00240000",
            quantity="-1",
            price="3.5",
            amount="350",
            trade_date=date(2026, 3, 1),
            description="Sell to open 100% call",
        ),
        "btc": f.make_transaction(
            session,
            usd,
            transaction_type="BUY",
            symbol="BTC",
            quantity="0.00012345",
            amount="-12.345678",
            trade_date=date(2025, 12, 31),
        ),
        "cad": f.make_transaction(
            session,
            cad,
            transaction_type="CONTRIBUTION",
            amount="1000",
            currency="CAD",
            trade_date=date(2026, 1, 10),
            description="Deposit",
        ),
    }
    bob, _, bob_acct = f.make_trader(session, "bob")
    rows["bob"] = f.make_transaction(
        session,
        bob_acct,
        transaction_type="DIVIDEND",
        symbol="MSFT",
        amount="999",
        trade_date=date(2026, 2, 1),
        description="MSFT cash dividend",
    )
    return alice, bob, usd, cad, rows


def ids(df) -> list[int]:
    return [int(i) for i in df["id"]]


def test_default_page_is_newest_first_and_counts_only_the_users_rows(session, book):
    alice, _, _, _, rows = book
    df, total = q.transactions_page(session, alice.id, F())
    assert total == 6
    assert ids(df) == [rows[k].id for k in ("opt", "div2", "div1", "cad", "buy", "btc")]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (F(symbol="msft"), {"div1", "div2"}),
        (F(types=("BUY",)), {"buy", "btc"}),
        (F(types=("BUY", "SELL")), {"buy", "btc", "opt"}),
        (F(date_from=date(2026, 1, 6), date_to=date(2026, 2, 1)), {"div1", "div2", "cad"}),
        (F(currencies=("CAD",)), {"cad"}),
        (F(text="100%"), {"opt"}),  # % is matched literally, not as a wildcard
        (F(text="dividend"), {"div1", "div2"}),
        (F(symbol="AAPL", types=("BUY",)), {"buy"}),
    ],
)
def test_each_filter_narrows_the_set(session, book, filters, expected):
    alice, _, _, _, rows = book
    df, total = q.transactions_page(session, alice.id, filters)
    assert set(ids(df)) == {rows[k].id for k in expected}
    assert total == len(expected)


def test_account_filter(session, book):
    alice, _, _, cad, rows = book
    df, total = q.transactions_page(session, alice.id, F(account_ids=(cad.id,)))
    assert ids(df) == [rows["cad"].id] and total == 1


def test_paging_is_stable_and_covers_every_row_once(session, book):
    alice = book[0]
    for sort in (S("trade_date", True), S("trade_date", False), S("amount", True), S("symbol", False), S("type", True)):
        pages = [ids(q.transactions_page(session, alice.id, F(), sort, page, 4)[0]) for page in (1, 2)]
        everything = ids(q.transactions_page(session, alice.id, F(), sort, 1, 100)[0])
        assert pages[0] + pages[1] == everything, sort
        assert len(set(everything)) == 6


def test_sort_by_amount_is_numeric_not_textual(session, book):
    alice, _, _, _, rows = book
    df, _ = q.transactions_page(session, alice.id, F(currencies=("USD",)), S("amount", True))
    assert ids(df) == [rows[k].id for k in ("opt", "div2", "div1", "btc", "buy")]


def test_page_formats_money_quantities_and_options(session, book):
    alice, _, _, _, rows = book
    df, _ = q.transactions_page(session, alice.id, F(), page_size=100)
    by_id = df.set_index("id")
    assert list(df.columns) == [
        "id",
        "Date",
        "Account",
        "Type",
        "Symbol",
        "Quantity",
        "Price",
        "Amount",
        "Fee",
        "Currency",
        "Description",
    ]
    assert tuple(by_id.loc[rows["buy"].id, ["Amount", "Fee", "Currency"]]) == ("-1,502.50", "0.10", "USD")
    assert by_id.loc[rows["buy"].id, "Price"] == "150.25"
    assert by_id.loc[rows["btc"].id, "Quantity"] == "0.00012345"
    assert by_id.loc[rows["btc"].id, "Amount"] == "-12.345678"
    assert by_id.loc[rows["opt"].id, "Symbol"] == "AAPL 2026-12-18 240 C"
    assert by_id.loc[rows["cad"].id, "Account"] == "TFSA ••••1234"  # short: the filter has the full label


def test_totals_are_exact_and_per_currency(session, book):
    alice = book[0]
    totals = {t.currency: t for t in q.transaction_totals(session, alice.id, F())}
    assert set(totals) == {"USD", "CAD"}
    assert totals["USD"].count == 5
    assert totals["USD"].amount == Decimal("-1164.545678")
    assert totals["CAD"].amount == Decimal("1000") and totals["CAD"].count == 1
    dividends = q.transaction_totals(session, alice.id, F(types=("DIVIDEND",)))
    assert [(t.currency, t.amount, t.fee) for t in dividends] == [("USD", Decimal("0.3"), Decimal("0.2"))]
    assert isinstance(dividends[0].amount, Decimal) and str(dividends[0].amount.normalize()) == "0.3"


SORT = q.TransactionSort()


def test_csv_has_exactly_the_filtered_rows_with_exact_decimals(session, book):
    alice, _, _, _, rows = book
    text = "".join(export.iter_csv(export.export_rows(session, alice.id, F(symbol="AAPL"), SORT), chunk_rows=1))
    records = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["id"]) for r in records] == [rows["opt"].id, rows["buy"].id]
    buy = records[1]
    assert (buy["trade_date"], buy["amount"], buy["fee"], buy["price"]) == (
        "2026-01-05",
        "-1502.50",
        "0.10",
        "150.25",  # money keeps at least its currency's decimals
    )
    assert records[0]["option"] == "AAPL 2026-12-18 240 C"
    page_csv = export.transactions_csv(session, alice.id, F(), SORT)
    assert page_csv.startswith("\ufeff")  # the page's download opens as UTF-8 in Excel
    all_rows = list(csv.DictReader(io.StringIO(page_csv.removeprefix("\ufeff"))))
    assert len(all_rows) == 6 and rows["bob"].id not in {int(r["id"]) for r in all_rows}


def test_csv_of_an_empty_set_is_just_the_header(session, book):
    text = export.transactions_csv(session, book[0].id, F(text="nothing like this"), SORT)
    assert text.removeprefix("\ufeff").split(",")[0] == "id" and text.count("\n") == 1


def test_a_user_never_sees_another_users_rows(session, book):
    alice, bob, _, _, rows = book
    assert q.transaction_detail(session, alice.id, rows["bob"].id) is None
    assert q.transaction_detail(session, bob.id, rows["buy"].id) is None
    bob_df, bob_total = q.transactions_page(session, bob.id, F())
    assert ids(bob_df) == [rows["bob"].id] and bob_total == 1
    assert [t.amount for t in q.transaction_totals(session, bob.id, F())] == [Decimal("999")]
    alice_div = q.transaction_totals(session, alice.id, F(symbol="MSFT"))
    assert alice_div[0].amount == Decimal("0.3")
    options = q.filter_options(session, alice.id)
    assert options.transaction_count == 6 and "CAD" in options.currencies


def test_detail_includes_raw_payload_and_labels(session, book):
    alice, _, _, _, rows = book
    detail = q.transaction_detail(session, alice.id, rows["opt"].id)
    assert detail["option"] == "AAPL 2026-12-18 240 C"
    assert detail["raw"]["id"] == rows["opt"].snaptrade_activity_id
    assert detail["amount"] == Decimal("350")
    assert '"id":"' in fmt.payload_json(detail["raw"])


def test_filter_options(session, book):
    alice = book[0]
    options = q.filter_options(session, alice.id)
    assert options.has_connection
    assert options.currencies == ["USD", "CAD"]  # most used first
    assert options.types == ["BUY", "CONTRIBUTION", "DIVIDEND", "SELL"]
    assert options.symbols == ["AAPL", "BTC", "MSFT"]
    assert (options.first_date, options.last_date) == (date(2025, 12, 31), date(2026, 3, 1))
    assert [a.label for a in options.accounts][1] == "Alpaca · TFSA · ••••1234"


def test_trade_date_bounds_read_each_end_of_the_index_not_the_users_rows(session, book):
    """filter_options' first and last trade date: SQLite answers a lone min() or max() from one end of
    the (user_id, trade_date) index; both in one select would step through every row of the user."""
    alice, _, usd, _, rows = book
    T = rows["buy"].__table__
    template = {k: v for k, v in session.execute(sa.select(T).where(T.c.id == rows["buy"].id)).mappings().one().items()
                if k != "id"}  # fmt: skip
    engine = session.get_bind()

    def bounds_and_steps(user_id: int) -> tuple[tuple, int]:
        steps = [0]
        raw = session.connection().connection.dbapi_connection
        if engine.dialect.name == "sqlite":  # SQLite's own count of virtual-machine instructions
            raw.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1) or 0, 1)
        try:
            bounds = tuple(session.execute(q.trade_date_bounds(user_id)).one())
        finally:
            if engine.dialect.name == "sqlite":
                raw.set_progress_handler(None, 1)
        return bounds, steps[0]

    small, small_steps = bounds_and_steps(alice.id)
    assert small == (date(2025, 12, 31), date(2026, 3, 1))
    session.execute(sa.insert(T), [{**template, "snaptrade_activity_id": f"bulk-{i}",
                                    "trade_date": date(2026, 1, 6) + timedelta(days=i % 50)} for i in range(3_000)])  # fmt: skip
    session.commit()
    big, big_steps = bounds_and_steps(alice.id)
    assert (
        big == small == (q.filter_options(session, alice.id).first_date, q.filter_options(session, alice.id).last_date)
    )
    if engine.dialect.name == "sqlite":
        assert big_steps < small_steps + 100, (small_steps, big_steps)


def test_data_version_changes_when_rows_are_added(session, book):
    alice, _, usd, _, _ = book
    before = q.data_version(session, alice.id)
    f.make_transaction(session, usd, amount="1")
    assert q.data_version(session, alice.id) != before


def test_data_version_reads_the_last_final_run_from_its_own_index(session, book):
    """A user with a long run history: data_version names the last completed/partial/failed run (not a
    queued, running or interrupted one) and the database answers it from the partial index, not by walking
    every run of the user."""
    alice, bob, *_ = book
    users = [alice, bob, *(f.make_user(session) for _ in range(38))]
    T = TransactionSyncLog.__table__
    now = datetime.now(UTC)
    statuses = ("completed", "partial", "failed", "interrupted")
    session.execute(sa.insert(T), [{"user_id": user.id, "trigger": "scheduled", "status": statuses[i % 4], "full_sync": False,
                                    "pages_total": 0, "pages_done": 0, "accounts_total": 0, "accounts_done": 0,
                                    "transactions_fetched": 0, "transactions_new": 0, "transactions_updated": 0,
                                    "transactions_unchanged": 0, "transactions_skipped": 0, "api_requests": 0,
                                    "attempts": 1, "queued_at": now - timedelta(hours=i)}
                                   for i in range(200) for user in users])  # fmt: skip
    f.make_run(session, alice, status="interrupted")
    f.make_run(session, alice, status="running")
    session.commit()
    final = session.execute(sa.select(sa.func.max(T.c.id)).where(T.c.user_id == alice.id,
                                                                 T.c.status.in_(("completed", "partial", "failed")))).scalar()  # fmt: skip
    assert q.data_version(session, alice.id)[2] == final
    engine = session.get_bind()
    stmt = q.last_final_run(alice.id).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as c:
        if engine.dialect.name == "sqlite":
            c.exec_driver_sql("ANALYZE")
            plan = " ".join(str(r[-1]) for r in c.exec_driver_sql(f"EXPLAIN QUERY PLAN {stmt}"))
        else:
            c.exec_driver_sql("ANALYZE transaction_sync_log")
            plan = " ".join(r[0] for r in c.exec_driver_sql(f"EXPLAIN {stmt}"))
    assert "idx_transaction_sync_log_user_finished" in plan, plan


def test_symbol_sort_orders_by_symbol_then_date_then_id(session, book):
    alice, _, _, _, rows = book
    df, _ = q.transactions_page(session, alice.id, F(currencies=("USD",)), S("symbol", False))
    assert ids(df) == [rows[k].id for k in ("buy", "opt", "btc", "div1", "div2")]
    df, _ = q.transactions_page(session, alice.id, F(currencies=("USD",)), S("symbol", True))
    assert ids(df) == [rows[k].id for k in ("div2", "div1", "btc", "opt", "buy")]


@contextmanager
def recorded_statements(engine) -> Iterator[list[tuple[str, object]]]:
    """(SQL, parameters) of every statement the engine runs inside the block."""
    statements: list[tuple[str, object]] = []
    listener = lambda conn, cur, stmt, params, ctx, many: statements.append((stmt, params))  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def test_a_page_reuses_the_users_row_count_it_is_given(session, book):
    """The page already has the user's row count from data_version: handing it over saves reading it
    again (SQLite's plan choice needs it), nothing counts the user's rows, and the page is the same."""
    alice = book[0]
    user_rows = q.data_version(session, alice.id)[0]
    engine = session.get_bind()

    def page(filters, sort, total, **hint):
        session.info.pop("txn_user_stats", None)  # what a new page session starts with
        with recorded_statements(engine) as statements:
            result = q.transactions_page(session, alice.id, filters, sort, total=total, **hint)
        sql = [stmt.lower() for stmt, _ in statements]
        return result, [s for s in sql if "count(" in s], [s for s in sql if "user_transaction_counts" in s]

    for sort in (S(), S("amount", True)):
        for filters in (F(), F(types=("BUY", "SELL"))):
            total = sum(t.count for t in q.transaction_totals(session, alice.id, filters))
            given, counts_given, kept_given = page(filters, sort, total, user_rows=user_rows)
            counted, counts, kept = page(filters, sort, total)
            assert ids(given[0]) == ids(counted[0]) and given[1] == counted[1] == total
            assert counts_given == counts == [] and kept_given == []
            if engine.dialect.name == "sqlite":
                assert len(kept) == 1, "without the hint SQLite's page reads the user's kept count once"


def test_aggregations_read_the_covering_index_on_sqlite(session, book):
    """SQLite plans for the average user; the totals, filter options and Analytics aggregations are
    pinned to the covering index (INDEXED BY) so a heavy user's wide rows are never read."""
    from core.reads import analytics as an

    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL chooses its index-only scans itself")
    alice = book[0]
    with recorded_statements(session.get_bind()) as statements:
        q.transaction_totals(session, alice.id, F(text="dividend"))
        q.filter_options(session, alice.id)
        an.monthly_fees(session, alice.id, F(), "USD")
        an.dividends_by_symbol(session, alice.id, F(), "USD")
        an.traded_value_by_symbol(session, alice.id, F(), "USD")
        an.monthly_cash_flow(session, alice.id, F(), "USD")
    aggregations = [(s, p) for s, p in statements if "group by" in s.lower()]
    assert len(aggregations) == 6
    raw = session.connection().connection.dbapi_connection
    for stmt, params in aggregations:
        assert f"INDEXED BY {q.AGGREGATES_INDEX}" in stmt
        plan = " ".join(r[-1] for r in raw.execute("EXPLAIN QUERY PLAN " + stmt, params))
        assert f"COVERING INDEX {q.AGGREGATES_INDEX}" in plan, plan


def test_a_long_multibyte_description_fits_the_covering_index(session, book):
    """PostgreSQL refuses B-tree entries over ~2,700 bytes; the normalizer's 500-character cut keeps a
    4-byte-per-character description inside that, and the raw record keeps it whole."""
    from datetime import UTC, datetime

    from core.ingest.normalize import normalize_activity
    from core.ingest.page_write import write_page
    from core.snaptrade.client import ActivityPage

    alice, _, usd, _, _ = book
    text = "\U0001f4c8" * 3000
    activity = {"id": "long-desc", "type": "DIVIDEND", "trade_date": "2026-01-02", "amount": "1.5",
                "currency": {"code": "USD"}, "description": text}  # fmt: skip
    assert len(normalize_activity(activity)["description"]) == 500
    counts = write_page(session, user_id=alice.id, account=usd, page=ActivityPage([activity], 1, 0, 1000),
                        run_id=None, now=datetime.now(UTC))  # fmt: skip
    session.commit()
    assert counts.new == 1
    df, _ = q.transactions_page(session, alice.id, F(text="\U0001f4c8"), S())
    assert len(df) == 1 and df["Description"][0] == "\U0001f4c8" * 500
