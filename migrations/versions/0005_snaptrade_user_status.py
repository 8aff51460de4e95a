"""snaptrade user status: a registration whose secret SnapTrade refuses needs attention

After SnapTrade answers 401 (code 1083) for a user, every call for that user fails the same way until
the secret is reset or the user is registered again. The status (with its reason and time) lets pages,
the CLI and the sync worker say so and stop calling SnapTrade meanwhile.

On SQLite the check constraint rebuilds snaptrade_users (batch mode); no table references it, so the
copy cascades nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 12:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('snaptrade_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                      server_default='active'))
        batch_op.add_column(sa.Column('status_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('status_changed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_check_constraint('ck_snaptrade_users_status', "status IN ('active', 'needs_attention')")


def downgrade() -> None:
    with op.batch_alter_table('snaptrade_users', schema=None) as batch_op:
        batch_op.drop_constraint('ck_snaptrade_users_status', type_='check')
        batch_op.drop_column('status_changed_at')
        batch_op.drop_column('status_reason')
        batch_op.drop_column('status')
