"""finished runs index: the user's last finished run is one index probe

`queries.data_version` reads the id of the user's last completed, partial or failed run on every page
load. The (user_id, queued_at) index made that a walk over every run the user ever had (an hourly
schedule leaves ~8,800 a year); this partial index answers max(id) from its last entry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FINAL = "status IN ('completed', 'partial', 'failed')"


def upgrade() -> None:
    op.create_index('idx_transaction_sync_log_user_finished', 'transaction_sync_log', ['user_id', 'id'],
                    postgresql_where=sa.text(FINAL), sqlite_where=sa.text(FINAL))


def downgrade() -> None:
    op.drop_index('idx_transaction_sync_log_user_finished', table_name='transaction_sync_log')
