"""core/reads/export.py: one export for the Transactions CSV and the CLI, with every digit and the whole text."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

from core.reads import export
from core.reads.transactions import TransactionFilters, TransactionSort
from tests import factories as f


def _seed(session):
    user, _, account = f.make_trader(session, "erin")
    long_text = "Quarterly reorganisation notice. " * 40  # 1,320 characters: stored cut at 500
    long = f.make_transaction(session, account, transaction_type="OTHER", description=long_text[:500],
                              raw={"id": "x1", "description": long_text}, trade_date=date(2026, 1, 2))  # fmt: skip
    buy = f.make_transaction(session, account, transaction_type="BUY", symbol="DOGE", quantity="79.14982855",
                             price="0.123456789012345678", amount="-9.77", fee="0.01",
                             trade_date=date(2026, 1, 3))  # fmt: skip
    return user, account, long, buy, long_text


def test_json_and_csv_carry_the_whole_description_and_every_digit(session):
    user, account, long, buy, long_text = _seed(session)
    out = io.StringIO()
    export.write_export(session, user.id, "json", out)
    rows = json.loads(out.getvalue())
    assert [r["id"] for r in rows] == [str(long.id), str(buy.id)]  # oldest first
    assert rows[0]["description"] == long_text and len(long_text) > 500
    assert (rows[1]["quantity"], rows[1]["price"]) == ("79.14982855", "0.123456789012345678")
    assert rows[1]["snaptrade_account_id"] == account.snaptrade_account_id
    assert list(rows[0]) == list(export.COLUMNS)

    out = io.StringIO()
    export.write_export(session, user.id, "csv", out)
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["description"] for r in records][0] == long_text
    assert records[1]["fee"] == "0.01" and records[0]["quantity"] == ""  # empty, never "None"


def test_the_page_download_has_the_cli_columns_in_the_pages_order(session):
    user, _, long, buy, _ = _seed(session)
    text = export.transactions_csv(session, user.id, TransactionFilters(), TransactionSort())  # newest first
    assert text.startswith(export.BOM) and text.count(export.BOM) == 1  # Excel reads it as UTF-8
    records = list(csv.DictReader(io.StringIO(text.removeprefix(export.BOM))))
    assert tuple(records[0]) == export.COLUMNS
    assert [r["id"] for r in records] == [str(buy.id), str(long.id)]


def test_money_has_at_least_its_currencys_decimals_and_never_fewer_digits_than_stored(session):
    user, _, account = f.make_trader(session, "mona")
    f.make_transaction(session, account, transaction_type="FEE", quantity="0", price="0", amount="-2.5", fee="0",
                       trade_date=date(2026, 1, 1))  # fmt: skip
    f.make_transaction(session, account, transaction_type="BUY", symbol="7203", quantity="100", price="2500",
                       amount="-250000", fee="0", currency="JPY", trade_date=date(2026, 1, 2))  # fmt: skip
    f.make_transaction(session, account, transaction_type="BUY", symbol="BTC", quantity="0.000000000000000001",
                       price="64123.123456789", amount="-1234567.891", fee="0.1", trade_date=date(2026, 1, 3))  # fmt: skip
    out = io.StringIO()
    export.write_export(session, user.id, "csv", out)
    assert not out.getvalue().startswith(export.BOM)  # the CLI writes plain UTF-8 unless asked (--bom)
    rows = [(r["quantity"], r["price"], r["amount"], r["fee"]) for r in csv.DictReader(io.StringIO(out.getvalue()))]
    assert rows == [("0", "0.00", "-2.50", "0.00"), ("100", "2500", "-250000", "0"),
                    ("0.000000000000000001", "64123.123456789", "-1234567.891", "0.10")]  # fmt: skip
