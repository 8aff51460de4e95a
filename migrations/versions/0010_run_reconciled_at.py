"""sync runs remember the reconcile that queued them

`transaction_sync_log.reconciled_at`: when the portal callback or the CLI reconciled the user's connections
and accounts with SnapTrade just before queuing the run. A run that starts soon enough after it reuses that
reconcile instead of asking SnapTrade again (core.ingest.reconcile_once); a nullable column without a
constraint, so SQLite adds it in place (no table rebuild).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:30:00
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

revision: str = "0010"
down_revision: Union[str, None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column(
        "transaction_sync_log", sa.Column("reconciled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("transaction_sync_log", "reconciled_at")  # SQLite 3.35+ drops it in place too
