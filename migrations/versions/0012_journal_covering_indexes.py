"""journal: option_mini stored; the journal's indexes hold only the rows it reads, and on SQLite every column it reads

`brokerage_transactions.option_mini` keeps `raw.option_symbol.is_mini_option` of an option row ("true",
"false", "null", "other"; NULL when absent), which the journal read from the raw JSON in SQL: existing rows are
filled from their raw record. The three partial indexes the journal reads a pair through (0008, 0009) are
replaced, on both databases, by ones that leave out the rows of types it never reads (dividends, fees,
deposits: core.storage.models.JOURNAL_READ_WHERE); on SQLite they also hold every column it reads
(core.storage.models.imports.journal_indexes), so a full rebuild reads them alone instead of looking up each
row in the table.

Filling option_mini updates the option rows, so the journal's update trigger (0009) marks their pairs for a
rebuild at the next upkeep: it gives what they hold now, read the new way.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 03:40:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: Union[str, None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

T = "brokerage_transactions"
NAMELESS_WHERE = "option_ticker IS NULL AND (symbol IS NULL OR security_type = 'option')"
READ = ("snaptrade_activity_id", "transaction_type", "symbol", "security_type", "option_ticker", "option_action",
        "quantity", "price", "fee", "currency", "trade_date", "trade_timestamp", "raw_type", "option_mini")  # fmt: skip
READ_WHERE = ("transaction_type IN ('ADJUSTMENT', 'BUY', 'EXTERNAL_ASSET_TRANSFER_IN', 'EXTERNAL_ASSET_TRANSFER_OUT', "
              "'INTERNAL_ASSET_TRANSFER_IN', 'INTERNAL_ASSET_TRANSFER_OUT', 'OPTIONASSIGNMENT', 'OPTIONEXERCISE', "
              "'OPTIONEXPIRATION', 'OTHER', 'REI', 'REVERSE_SPLIT', 'SELL', 'SPINOFF', 'SPLIT', 'STOCK_DIVIDEND', "
              "'STOCK_MERGER', 'TRANSFER')")  # fmt: skip
INDEXES = (  # name, keys, WHERE: as 0009 made them
    ("account_option_date", ("account_id", "option_ticker", "trade_date"), "option_ticker IS NOT NULL"),
    ("account_symbol_date", ("account_id", "symbol", "trade_date"), "option_ticker IS NULL"),
    ("account_nameless", ("account_id", "trade_date"), NAMELESS_WHERE),
)
IS_OPTION = "(security_type = 'option' OR option_ticker IS NOT NULL)"
SQLITE_FLAG = "json_type(raw, '$.option_symbol.is_mini_option')"
PG_FLAG = "jsonb_typeof(raw #> '{option_symbol,is_mini_option}')"


def upgrade() -> None:
    op.add_column(T, sa.Column("option_mini", sa.String(length=8), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        flag = f"CASE {PG_FLAG} WHEN 'boolean' THEN raw #>> '{{option_symbol,is_mini_option}}' WHEN 'null' THEN 'null' ELSE 'other' END"  # fmt: skip
        op.execute(f"UPDATE {T} SET option_mini = {flag} WHERE {IS_OPTION} AND {PG_FLAG} IS NOT NULL")
        for name, keys, where in INDEXES:  # the same names and keys, of the rows the journal reads only
            op.drop_index(f"idx_{T}_{name}", table_name=T)
            op.create_index(f"idx_{T}_{name}", T, list(keys), postgresql_where=sa.text(f"{where} AND {READ_WHERE}"))
        return
    flag = f"CASE WHEN {SQLITE_FLAG} IN ('true', 'false', 'null') THEN {SQLITE_FLAG} ELSE 'other' END"
    op.execute(f"UPDATE {T} SET option_mini = {flag} WHERE {IS_OPTION} AND {SQLITE_FLAG} IS NOT NULL")
    for name, keys, where in INDEXES:
        covering = [*keys, *(c for c in READ if c not in keys)]
        op.create_index(f"idx_{T}_{name}_rows", T, covering, sqlite_where=sa.text(f"{where} AND {READ_WHERE}"))
        op.drop_index(f"idx_{T}_{name}", table_name=T)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, keys, where in INDEXES:
        old = f"idx_{T}_{name}" if postgres else f"idx_{T}_{name}_rows"
        op.drop_index(old, table_name=T)
        op.create_index(f"idx_{T}_{name}", T, list(keys), postgresql_where=sa.text(where), sqlite_where=sa.text(where))
    # Not batch mode: on SQLite it copies the table, and the copy would lose the table's triggers (0004, 0009).
    op.execute(f"ALTER TABLE {T} DROP COLUMN option_mini")
