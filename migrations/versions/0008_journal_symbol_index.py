"""journal upkeep reads one account's rows of a stock symbol through an index

`idx_brokerage_transactions_account_symbol` (account_id, symbol) over the rows that are not option
contracts: the dirty-pair read of core.journal.store finds a symbol's rows in one account without
reading the user's other accounts or the underlying's option rows (which have their own index,
`idx_brokerage_transactions_account_option`, from 0006).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 00:40:00
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "0008"
down_revision: Union[str, None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index(
        "idx_brokerage_transactions_account_symbol",
        "brokerage_transactions",
        ["account_id", "symbol"],
        postgresql_where=sa.text("option_ticker IS NULL"),
        sqlite_where=sa.text("option_ticker IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("idx_brokerage_transactions_account_symbol", table_name="brokerage_transactions")
