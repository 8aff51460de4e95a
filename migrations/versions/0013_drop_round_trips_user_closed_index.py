"""journal: drop the round trips' (user_id, closed_on) index, which no query reads

Since 0009 every read of a user's round trips goes through (user_id, currency, on_date) and a pair's through
(account_id, pair_key); (user_id, closed_on) was only written: at every round trip a rebuild inserts and at
every open one a day's upkeep updates (its closed_on is in the UPDATE). The user_id foreign key's cascade
still has an index that starts with user_id.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 06:30:00
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0013"
down_revision: Union[str, None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.drop_index("idx_journal_round_trips_user_closed", table_name="journal_round_trips")


def downgrade() -> None:
    op.create_index("idx_journal_round_trips_user_closed", "journal_round_trips", ["user_id", "closed_on"])
