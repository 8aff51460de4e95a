"""user transaction stats: each user's transaction count and a revision, kept by triggers

`queries.data_version` (the cache key of every dashboard page) counted the user's rows on every page
load: ~40 ms for a 200k-row user. Triggers keep the count in the same transaction as the rows, so it is
exact whoever writes them and whatever crashes; the page reads one row by primary key.

SQLite: row triggers (a B-tree update in process, no measurable cost per insert). PostgreSQL: statement
triggers over transition tables, one stats update per statement; the sync writes a page as one
statement (core.sync), so a page costs one update, not one per row.

On SQLite, Alembic's batch mode rebuilds a table by copying it, which drops its triggers: a later
migration that batch-alters brokerage_transactions must create these triggers again
(tests/core/test_migrations.py checks they exist at head).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

S = 'user_transaction_stats'
TRIGGERS = ('trg_brokerage_transactions_stats_insert', 'trg_brokerage_transactions_stats_update',
            'trg_brokerage_transactions_stats_move', 'trg_brokerage_transactions_stats_delete',
            'trg_brokerage_transactions_stats_truncate')

SQLITE = [
    """CREATE TRIGGER trg_brokerage_transactions_stats_insert AFTER INSERT ON brokerage_transactions
    BEGIN
      INSERT INTO user_transaction_stats (user_id, row_count, revision) VALUES (NEW.user_id, 1, 1)
      ON CONFLICT (user_id) DO UPDATE SET row_count = row_count + 1, revision = revision + 1;
    END""",
    """CREATE TRIGGER trg_brokerage_transactions_stats_update AFTER UPDATE ON brokerage_transactions
    WHEN OLD.user_id = NEW.user_id
    BEGIN
      UPDATE user_transaction_stats SET revision = revision + 1 WHERE user_id = NEW.user_id;
    END""",
    """CREATE TRIGGER trg_brokerage_transactions_stats_move AFTER UPDATE ON brokerage_transactions
    WHEN OLD.user_id <> NEW.user_id
    BEGIN
      UPDATE user_transaction_stats SET row_count = row_count - 1, revision = revision + 1 WHERE user_id = OLD.user_id;
      INSERT INTO user_transaction_stats (user_id, row_count, revision) VALUES (NEW.user_id, 1, 1)
      ON CONFLICT (user_id) DO UPDATE SET row_count = row_count + 1, revision = revision + 1;
    END""",
    """CREATE TRIGGER trg_brokerage_transactions_stats_delete AFTER DELETE ON brokerage_transactions
    BEGIN
      UPDATE user_transaction_stats SET row_count = row_count - 1, revision = revision + 1 WHERE user_id = OLD.user_id;
    END""",
]

# Users in ascending order, so two statements touching several users lock their stats rows in one order.
POSTGRESQL = [
    """CREATE FUNCTION brokerage_transactions_stats_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO user_transaction_stats AS s (user_id, row_count, revision)
      SELECT user_id, count(*), 1 FROM new_rows GROUP BY user_id ORDER BY user_id
      ON CONFLICT (user_id) DO UPDATE SET row_count = s.row_count + excluded.row_count, revision = s.revision + 1;
      RETURN NULL;
    END $$""",
    """CREATE FUNCTION brokerage_transactions_stats_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO user_transaction_stats AS s (user_id, row_count, revision)
      SELECT user_id, sum(n), 1 FROM (
        SELECT user_id, count(*) AS n FROM new_rows GROUP BY user_id
        UNION ALL SELECT user_id, -count(*) FROM old_rows GROUP BY user_id
      ) changed GROUP BY user_id ORDER BY user_id
      ON CONFLICT (user_id) DO UPDATE SET row_count = s.row_count + excluded.row_count, revision = s.revision + 1;
      RETURN NULL;
    END $$""",
    """CREATE FUNCTION brokerage_transactions_stats_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE user_transaction_stats AS s SET row_count = s.row_count - d.n, revision = s.revision + 1
      FROM (SELECT user_id, count(*) AS n FROM old_rows GROUP BY user_id) d WHERE s.user_id = d.user_id;
      RETURN NULL;
    END $$""",
    """CREATE FUNCTION brokerage_transactions_stats_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE user_transaction_stats SET row_count = 0, revision = revision + 1;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER trg_brokerage_transactions_stats_insert AFTER INSERT ON brokerage_transactions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_stats_insert()""",
    """CREATE TRIGGER trg_brokerage_transactions_stats_update AFTER UPDATE ON brokerage_transactions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION brokerage_transactions_stats_update()""",
    """CREATE TRIGGER trg_brokerage_transactions_stats_delete AFTER DELETE ON brokerage_transactions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_stats_delete()""",
    """CREATE TRIGGER trg_brokerage_transactions_stats_truncate AFTER TRUNCATE ON brokerage_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_stats_truncate()""",
]


def upgrade() -> None:
    op.create_table(
        S,
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('app_users.id', ondelete='CASCADE'), primary_key=True,
                  autoincrement=False),
        sa.Column('row_count', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('revision', sa.BigInteger(), nullable=False, server_default='0'),
    )
    op.execute(f"INSERT INTO {S} (user_id, row_count, revision) "
               "SELECT user_id, count(*), 1 FROM brokerage_transactions GROUP BY user_id")
    for statement in POSTGRESQL if op.get_bind().dialect.name == 'postgresql' else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON brokerage_transactions" if postgres else ""))
    if postgres:
        for name in ('insert', 'update', 'delete', 'truncate'):
            op.execute(f"DROP FUNCTION IF EXISTS brokerage_transactions_stats_{name}()")
    op.drop_table(S)
