"""The export of a trader's transactions, one set of columns for the Transactions CSV and the CLI's
CSV and JSON: exact decimal strings (money with at least its currency's usual decimals, never fewer digits
than stored), ISO dates, and each activity's whole description. The page's CSV starts with a UTF-8
byte-order mark, which is how Excel knows the file is UTF-8 (the masked account numbers' "•").

Rows stream from the database in chunks; nothing holds a user's whole history in memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import IO, Any

import sqlalchemy as sa
from sqlmodel import Session

from core.ingest.normalize import DESCRIPTION_LIMIT
from core.reads.formatting import format_money, format_option
from core.reads.transactions import TransactionFilters, TransactionSort, Txn, order_by, scoped_conditions, user_accounts
from core.storage.models import BrokerageAccount, BrokerageTransaction
from core.storage.types import format_decimal

CHUNK_ROWS = 2000
# The one header, documented in the README ("CSV export"); the page's CSV and `python -m core export` write it.
COLUMNS = (
    "id", "snaptrade_activity_id", "snaptrade_account_id", "account", "trade_date", "settlement_date", "type",
    "raw_type", "symbol", "option_ticker", "option", "description", "quantity", "price", "amount", "fee",
    "currency", "fx_rate", "external_reference_id",
)  # fmt: skip
_MONEY = ("price", "amount", "fee")  # in the row's currency: '-2.50', never '-2.5'
_EXACT = ("quantity", "fx_rate")
BOM = "\ufeff"


def _full_description(session: Session, txn_id: int, stored: str) -> str:
    """The stored description is cut at the column's index limit; the raw payload keeps the whole text."""
    raw = session.execute(sa.select(BrokerageTransaction.raw).where(Txn.id == txn_id)).scalar()
    whole = raw.get("description") if isinstance(raw, dict) else None
    return whole if isinstance(whole, str) and len(whole) > len(stored) else stored


def export_rows(
    session: Session,
    user_id: int,
    filters: TransactionFilters = TransactionFilters(),
    sort: TransactionSort = TransactionSort(descending=False),
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[dict[str, Any]]:
    """The user's filtered transactions as dicts keyed by COLUMNS, values as exact text (None when empty)."""
    accounts = {a.id: a for a in user_accounts(session, user_id)}  # few per user: no join per row
    ids = dict(session.execute(sa.select(BrokerageAccount.id, BrokerageAccount.snaptrade_account_id)
                               .where(BrokerageAccount.user_id == user_id)).all())  # fmt: skip
    stmt = (
        sa.select(
            Txn.id,
            Txn.snaptrade_activity_id,
            Txn.account_id,
            Txn.trade_date,
            Txn.settlement_date,
            Txn.transaction_type,
            Txn.raw_type,
            Txn.symbol,
            Txn.option_ticker,
            Txn.description,
            Txn.quantity,
            Txn.price,
            Txn.amount,
            Txn.fee,
            Txn.currency,
            Txn.fx_rate,
            Txn.external_reference_id,
        )  # fmt: skip
        .where(*scoped_conditions(session, user_id, filters))
        .order_by(*order_by(session, sort))
        .execution_options(yield_per=chunk_rows)
    )
    for r in session.execute(stmt):
        account = accounts.get(r.account_id)
        description = r.description
        if description is not None and len(description) >= DESCRIPTION_LIMIT:
            description = _full_description(session, r.id, description)
        row = {
            "id": str(r.id), "snaptrade_activity_id": r.snaptrade_activity_id,
            "snaptrade_account_id": ids.get(r.account_id), "account": account.label if account else None,
            "trade_date": r.trade_date.isoformat(),
            "settlement_date": r.settlement_date.isoformat() if r.settlement_date else None,
            "type": r.transaction_type, "raw_type": r.raw_type, "symbol": r.symbol,
            "option_ticker": r.option_ticker, "option": format_option(r.option_ticker) or None,
            "description": description, "currency": r.currency, "external_reference_id": r.external_reference_id,
        }  # fmt: skip
        for key in _EXACT:
            value = getattr(r, key)
            row[key] = None if value is None else format_decimal(value)
        for key in _MONEY:
            value = getattr(r, key)
            row[key] = None if value is None else format_money(value, r.currency, code=False, grouping=False)
        yield {key: row[key] for key in COLUMNS}


def iter_csv(rows: Iterator[dict[str, Any]], chunk_rows: int = CHUNK_ROWS, *, bom: bool = False) -> Iterator[str]:
    """CSV text in chunks: the one header row, then one line per row (an empty value is an empty cell);
    with `bom`, a UTF-8 byte-order mark first (for Excel)."""
    if bom:
        yield BOM
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow(["" if row[k] is None else row[k] for k in COLUMNS])
        if n % chunk_rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def iter_json(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """A JSON array of the rows, one object per line, written as it streams."""
    yield "["
    for i, row in enumerate(rows):
        yield ("," if i else "") + "\n" + json.dumps(row, ensure_ascii=False)
    yield "\n]\n"


def write_export(session: Session, user_id: int, fmt: str, out: IO[str], *, bom: bool = False) -> None:
    """`python -m core export`: every transaction of the user, oldest first, as CSV (`bom`: for Excel) or JSON."""
    rows = export_rows(session, user_id)
    for chunk in iter_json(rows) if fmt == "json" else iter_csv(rows, bom=bom):
        out.write(chunk)


def transactions_csv(session: Session, user_id: int, filters: TransactionFilters, sort: TransactionSort) -> str:
    """The Transactions page's download: the filtered set in the page's order, as one string that Excel
    opens as UTF-8 (byte-order mark first)."""
    return "".join(iter_csv(export_rows(session, user_id, filters, sort), bom=True))
