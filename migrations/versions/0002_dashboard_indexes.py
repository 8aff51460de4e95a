"""dashboard indexes: a covering index for totals and aggregations, symbol and type indexes that
serve their sorts, and no more indexes that no query reads

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 09:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

T = 'brokerage_transactions'


def upgrade() -> None:
    # Read by no query, paid for by every insert.
    op.drop_index('idx_brokerage_transactions_symbol', table_name=T)
    op.drop_index('idx_brokerage_transactions_option', table_name=T)
    op.drop_index('idx_brokerage_transactions_user_symbol', table_name=T)
    op.create_index('idx_brokerage_transactions_user_symbol', T, ['user_id', 'symbol', 'trade_date', 'id'])
    op.drop_index('idx_brokerage_transactions_user_type_date', table_name=T)
    op.create_index('idx_brokerage_transactions_user_type_date', T, ['user_id', 'transaction_type', 'trade_date', 'amount', 'id'])
    op.create_index('idx_brokerage_transactions_user_aggregates', T,
                    ['user_id', 'currency', 'transaction_type', 'trade_date', 'symbol', 'account_id', 'amount', 'fee',
                     'description'])


def downgrade() -> None:
    op.drop_index('idx_brokerage_transactions_user_aggregates', table_name=T)
    op.drop_index('idx_brokerage_transactions_user_type_date', table_name=T)
    op.create_index('idx_brokerage_transactions_user_type_date', T, ['user_id', 'transaction_type', 'trade_date'])
    op.drop_index('idx_brokerage_transactions_user_symbol', table_name=T)
    op.create_index('idx_brokerage_transactions_user_symbol', T, ['user_id', 'symbol'])
    op.create_index('idx_brokerage_transactions_option', T, ['user_id', 'option_ticker'],
                    postgresql_where=sa.text('option_ticker IS NOT NULL'), sqlite_where=sa.text('option_ticker IS NOT NULL'))
    op.create_index('idx_brokerage_transactions_symbol', T, ['symbol'],
                    postgresql_where=sa.text('symbol IS NOT NULL'), sqlite_where=sa.text('symbol IS NOT NULL'))
