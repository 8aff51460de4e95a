"""journal: a pair's open lots indexed in seq order

`idx_journal_open_lots_pair` (account_id, pair_key) becomes `idx_journal_open_lots_pair_seq` (account_id,
pair_key, seq). A continuation reads a book's oldest lots only, in seq order (core.journal.saved.load_lots):
without seq in the index every read fetched and sorted all of the pair's lots (thousands for a much-traded
symbol) to keep the first few. Deleting a pair's lots uses the same index's prefix.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 07:40:00
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0011"
down_revision: Union[str, None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("idx_journal_open_lots_pair_seq", "journal_open_lots", ["account_id", "pair_key", "seq"])
    op.drop_index("idx_journal_open_lots_pair", table_name="journal_open_lots")


def downgrade() -> None:
    op.create_index("idx_journal_open_lots_pair", "journal_open_lots", ["account_id", "pair_key"])
    op.drop_index("idx_journal_open_lots_pair_seq", table_name="journal_open_lots")
