"""user transaction counts: each user's row count and a revision, kept by triggers

`queries.data_version` (the cache key of every dashboard page) counted the user's rows on every page
load: 40-54 ms for a 200k-row user on PostgreSQL. Triggers keep the count in the same transaction as the
rows, so it is exact whoever writes them and whatever crashes; the page reads a handful of index entries.

PostgreSQL: statement triggers over transition tables append one (user_id, delta) row per user per write
statement; the sync writes a page as one statement (core.ingest.sync), so a 1M-row sync appends ~1,000, folded
into one after the run (core.storage.counts.fold). Appending, not updating a row per user: many updates of one
row in one transaction walk its growing version chain (measured 2,000/4,000/8,000 updates: 0.53/1.09/3.53 s)
and concurrent writers would queue on its lock.

SQLite: row triggers keep one row per user: an insert adds to its count in place; an update or delete
replaces it with a new row (a new id: the revision), since the count alone may not move.

A delta for a user being deleted is not written: that user's counts go with the user (cascade).

On SQLite, Alembic's batch mode rebuilds a table by copying it, which drops its triggers: a later
migration that batch-alters brokerage_transactions must create these triggers again
(tests/core/storage/test_migrations.py checks they exist at head).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

C = 'user_transaction_counts'
TRIGGERS = ('trg_brokerage_transactions_count_insert', 'trg_brokerage_transactions_count_update',
            'trg_brokerage_transactions_count_move', 'trg_brokerage_transactions_count_delete',
            'trg_brokerage_transactions_count_truncate')
FUNCTIONS = ('insert', 'update', 'delete', 'truncate')


def _sqlite_step(user: str, change: str, guard: str = '') -> str:
    """Replace `user`'s row by one with the count moved by `change`: insert first, so the new id is above
    the old one, then delete the older row (last_insert_rowid() is the trigger's own insert)."""
    return f"""
      INSERT INTO {C} (user_id, delta)
        SELECT {user}, n FROM (SELECT coalesce(sum(delta), 0) + ({change}) AS n FROM {C} WHERE user_id = {user}){guard};
      DELETE FROM {C} WHERE user_id = {user} AND id < last_insert_rowid();"""


_USER_EXISTS = " WHERE EXISTS (SELECT 1 FROM app_users WHERE id = OLD.user_id)"

# An insert only adds to the count, in place: the user's row by id, or, with no row yet (id NULL), a new
# one. A new id per inserted row cost 5-14 us a row (measured), this about 1. The count moving is what
# changes data_version then; updates and deletes give the row a new id (the revision), as they may
# leave the count where it was.
SQLITE = [
    f"""CREATE TRIGGER trg_brokerage_transactions_count_insert AFTER INSERT ON brokerage_transactions
    BEGIN
      INSERT INTO {C} (id, user_id, delta) VALUES ((SELECT max(id) FROM {C} WHERE user_id = NEW.user_id), NEW.user_id, 1)
        ON CONFLICT (id) DO UPDATE SET delta = delta + 1;
    END""",
    f"""CREATE TRIGGER trg_brokerage_transactions_count_update AFTER UPDATE ON brokerage_transactions
    WHEN OLD.user_id = NEW.user_id
    BEGIN{_sqlite_step('NEW.user_id', '0')}
    END""",
    f"""CREATE TRIGGER trg_brokerage_transactions_count_move AFTER UPDATE ON brokerage_transactions
    WHEN OLD.user_id <> NEW.user_id
    BEGIN{_sqlite_step('OLD.user_id', '-1')}{_sqlite_step('NEW.user_id', '1')}
    END""",
    f"""CREATE TRIGGER trg_brokerage_transactions_count_delete AFTER DELETE ON brokerage_transactions
    BEGIN{_sqlite_step('OLD.user_id', '-1', _USER_EXISTS)}
    END""",
]

POSTGRESQL = [
    f"""CREATE FUNCTION brokerage_transactions_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO {C} (user_id, delta) SELECT user_id, count(*) FROM new_rows GROUP BY user_id;
      RETURN NULL;
    END $$""",
    # An update appends a delta even when no count moves (a 0): the revision must move with the data.
    f"""CREATE FUNCTION brokerage_transactions_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO {C} (user_id, delta)
      SELECT user_id, sum(n) FROM (
        SELECT user_id, count(*) AS n FROM new_rows GROUP BY user_id
        UNION ALL SELECT user_id, -count(*) FROM old_rows GROUP BY user_id
      ) changed WHERE user_id IN (SELECT id FROM app_users) GROUP BY user_id;
      RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION brokerage_transactions_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO {C} (user_id, delta)
      SELECT user_id, -count(*) FROM old_rows WHERE user_id IN (SELECT id FROM app_users) GROUP BY user_id;
      RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION brokerage_transactions_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM {C};
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER trg_brokerage_transactions_count_insert AFTER INSERT ON brokerage_transactions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_count_insert()""",
    """CREATE TRIGGER trg_brokerage_transactions_count_update AFTER UPDATE ON brokerage_transactions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION brokerage_transactions_count_update()""",
    """CREATE TRIGGER trg_brokerage_transactions_count_delete AFTER DELETE ON brokerage_transactions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_count_delete()""",
    """CREATE TRIGGER trg_brokerage_transactions_count_truncate AFTER TRUNCATE ON brokerage_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_count_truncate()""",
]


def upgrade() -> None:
    op.create_table(
        C,
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('delta', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('idx_user_transaction_counts_user', C, ['user_id', 'id'])
    op.execute(f"INSERT INTO {C} (user_id, delta) "
               "SELECT user_id, count(*) FROM brokerage_transactions GROUP BY user_id ORDER BY user_id")
    for statement in POSTGRESQL if op.get_bind().dialect.name == 'postgresql' else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON brokerage_transactions" if postgres else ""))
    if postgres:
        for name in FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS brokerage_transactions_count_{name}()")
    op.drop_index('idx_user_transaction_counts_user', table_name=C)
    op.drop_table(C)
