"""journal tables: round trips, open positions and lots, unplaceable activities, broker positions,
reconciliation state, and the dirty pairs that keep them current

The journal (core.journal) is derived from brokerage_transactions per (account, pair_key), where pair_key is
the instrument of a row: its option ticker when it is an option row, else its symbol, "" for a position
activity that names neither. Triggers mark a row's pair dirty in the same transaction as the row, whoever
writes it (the sync's page upsert, the re-key merge, a disconnect that deletes history), and each mark
raises the pair's generation; the end of a sync run rebuilds the dirty pairs of its accounts and clears the
marks whose generation it saw, in one transaction (core.journal.upkeep). A crash between the two leaves the
marks, so the next run (or `python -m core journal rebuild`) rebuilds what earlier attempts changed.

PostgreSQL: statement triggers over transition tables, one upsert per write statement (a sync page).
SQLite: row triggers, one upsert of a small primary key per row (about 3 us, against ~300 us a synced row).
Marks for an account being deleted are not written: its journal goes with it (cascade).

The option-ticker index lets a rebuild read one option contract's rows without scanning the account.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 12:56:25
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import core.storage.types
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

D = 'journal_dirty_pairs'
TRIGGERS = ('trg_brokerage_transactions_journal_insert', 'trg_brokerage_transactions_journal_update',
            'trg_brokerage_transactions_journal_delete', 'trg_brokerage_transactions_journal_truncate')
FUNCTIONS = ('insert', 'update', 'delete', 'truncate')
# core.journal.fills.POSITION_TYPES when this revision was written (a test holds them equal): a row of one
# of these types matters to the journal even without an instrument (it is listed as unplaceable).
POSITION_TYPES = ('BUY', 'REI', 'STOCK_DIVIDEND', 'EXTERNAL_ASSET_TRANSFER_IN', 'INTERNAL_ASSET_TRANSFER_IN', 'SELL',
                  'EXTERNAL_ASSET_TRANSFER_OUT', 'INTERNAL_ASSET_TRANSFER_OUT', 'SPLIT', 'REVERSE_SPLIT',
                  'OPTIONEXPIRATION', 'OPTIONASSIGNMENT', 'OPTIONEXERCISE')
DERIVED = ('journal_round_trips', 'journal_positions', 'journal_open_lots', 'journal_unplaceable', D)


def _key(r: str) -> str:
    """The instrument of row `r` (core.journal.fills.row_instrument; a test holds them equal)."""
    return f"(CASE WHEN {r}.security_type = 'option' OR {r}.option_ticker IS NOT NULL THEN {r}.option_ticker ELSE {r}.symbol END)"


def _relevant(r: str) -> str:
    types = ', '.join(f"'{t}'" for t in POSITION_TYPES)
    return f"({_key(r)} IS NOT NULL OR {r}.transaction_type IN ({types}))"


def _sqlite_mark(r: str, guard: str = '') -> str:
    return f"""
      INSERT INTO {D} (account_id, pair_key, generation) SELECT {r}.account_id, coalesce({_key(r)}, ''), 1
        WHERE {_relevant(r)}{guard}
        ON CONFLICT (account_id, pair_key) DO UPDATE SET generation = generation + 1;"""


_ACCOUNT_EXISTS = " AND EXISTS (SELECT 1 FROM brokerage_accounts WHERE id = OLD.account_id)"

SQLITE = [
    f"""CREATE TRIGGER trg_brokerage_transactions_journal_insert AFTER INSERT ON brokerage_transactions
    BEGIN{_sqlite_mark('NEW')}
    END""",
    f"""CREATE TRIGGER trg_brokerage_transactions_journal_update AFTER UPDATE ON brokerage_transactions
    BEGIN{_sqlite_mark('OLD', _ACCOUNT_EXISTS)}{_sqlite_mark('NEW')}
    END""",
    f"""CREATE TRIGGER trg_brokerage_transactions_journal_delete AFTER DELETE ON brokerage_transactions
    BEGIN{_sqlite_mark('OLD', _ACCOUNT_EXISTS)}
    END""",
]


def _pg_mark(source: str) -> str:
    return f"""INSERT INTO {D} (account_id, pair_key, generation)
      SELECT account_id, coalesce({_key('r')}, ''), 1 FROM ({source}) r WHERE {_relevant('r')}
        AND account_id IN (SELECT id FROM brokerage_accounts) GROUP BY 1, 2
      ON CONFLICT (account_id, pair_key) DO UPDATE SET generation = {D}.generation + 1;"""


POSTGRESQL = [
    f"""CREATE FUNCTION brokerage_transactions_journal_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      {_pg_mark('SELECT * FROM new_rows')}
      RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION brokerage_transactions_journal_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      {_pg_mark('SELECT * FROM old_rows UNION ALL SELECT * FROM new_rows')}
      RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION brokerage_transactions_journal_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      {_pg_mark('SELECT * FROM old_rows')}
      RETURN NULL;
    END $$""",
    # No rows are left to build anything from: the derived tables empty with them.
    f"""CREATE FUNCTION brokerage_transactions_journal_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      {' '.join(f'DELETE FROM {t};' for t in DERIVED)}
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER trg_brokerage_transactions_journal_insert AFTER INSERT ON brokerage_transactions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_journal_insert()""",
    """CREATE TRIGGER trg_brokerage_transactions_journal_update AFTER UPDATE ON brokerage_transactions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION brokerage_transactions_journal_update()""",
    """CREATE TRIGGER trg_brokerage_transactions_journal_delete AFTER DELETE ON brokerage_transactions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_journal_delete()""",
    """CREATE TRIGGER trg_brokerage_transactions_journal_truncate AFTER TRUNCATE ON brokerage_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION brokerage_transactions_journal_truncate()""",
]


def upgrade() -> None:
    op.create_table('brokerage_positions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('units', core.storage.types.ExactNumber(), nullable=False),
    sa.Column('read_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['brokerage_accounts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('brokerage_positions', schema=None) as batch_op:
        batch_op.create_index('idx_brokerage_positions_account', ['account_id', 'instrument'], unique=False)
        batch_op.create_index(batch_op.f('ix_brokerage_positions_user_id'), ['user_id'], unique=False)

    op.create_table('journal_dirty_pairs',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('pair_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['brokerage_accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'pair_key')
    )
    op.create_table('journal_open_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('pair_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('activity_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('quantity', core.storage.types.ExactNumber(), nullable=False),
    sa.Column('cost', core.storage.types.ExactNumber(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['brokerage_accounts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('journal_open_lots', schema=None) as batch_op:
        batch_op.create_index('idx_journal_open_lots_pair', ['account_id', 'pair_key'], unique=False)

    op.create_table('journal_positions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('pair_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('quantity', core.storage.types.ExactNumber(), nullable=False),
    sa.Column('cost_basis', core.storage.types.ExactNumber(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['brokerage_accounts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('journal_positions', schema=None) as batch_op:
        batch_op.create_index('idx_journal_positions_pair', ['account_id', 'pair_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_positions_user_id'), ['user_id'], unique=False)

    op.create_table('journal_reconciliations',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('positions_read_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('positions_attempted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('positions_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('differences', sa.Integer(), nullable=True),
    sa.Column('differs_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('checked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['brokerage_accounts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id')
    )
    with op.batch_alter_table('journal_reconciliations', schema=None) as batch_op:
        batch_op.create_index('idx_journal_reconciliations_differs', ['differs_since'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_reconciliations_user_id'), ['user_id'], unique=False)

    op.create_table('journal_round_trips',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('pair_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('quantity', core.storage.types.ExactNumber(), nullable=False),
    sa.Column('gross_pnl', core.storage.types.ExactNumber(), nullable=True),
    sa.Column('fees', core.storage.types.ExactNumber(), nullable=False),
    sa.Column('net_pnl', core.storage.types.ExactNumber(), nullable=True),
    sa.Column('flags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('counts_in_metrics', sa.Boolean(), nullable=False),
    sa.Column('activity_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.CheckConstraint("direction IN ('long', 'short')", name='ck_journal_round_trips_direction'),
    sa.CheckConstraint("status IN ('open', 'closed')", name='ck_journal_round_trips_status'),
    sa.ForeignKeyConstraint(['account_id'], ['brokerage_accounts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('journal_round_trips', schema=None) as batch_op:
        batch_op.create_index('idx_journal_round_trips_pair', ['account_id', 'pair_key'], unique=False)
        batch_op.create_index('idx_journal_round_trips_user_closed', ['user_id', 'closed_on'], unique=False)

    op.create_table('journal_unplaceable',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('pair_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('activity_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('transaction_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('flagged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['brokerage_accounts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('journal_unplaceable', schema=None) as batch_op:
        batch_op.create_index('idx_journal_unplaceable_pair', ['account_id', 'pair_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_unplaceable_user_id'), ['user_id'], unique=False)

    # Not a batch operation: rebuilding brokerage_transactions on SQLite would drop 0004's triggers.
    op.create_index('idx_brokerage_transactions_account_option', 'brokerage_transactions', ['account_id', 'option_ticker'],
                    postgresql_where=sa.text('option_ticker IS NOT NULL'), sqlite_where=sa.text('option_ticker IS NOT NULL'))
    postgres = op.get_bind().dialect.name == 'postgresql'
    for statement in POSTGRESQL if postgres else SQLITE:
        op.execute(statement)
    # Existing history: every pair is dirty, so the next sync of each connection (or `journal rebuild`) builds it.
    op.execute(f"INSERT INTO {D} (account_id, pair_key, generation) SELECT account_id, coalesce({_key('t')}, ''), 1 "
               f"FROM brokerage_transactions t WHERE {_relevant('t')} GROUP BY 1, 2")



def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON brokerage_transactions" if postgres else ""))
    if postgres:
        for name in FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS brokerage_transactions_journal_{name}()")
    op.drop_index('idx_brokerage_transactions_account_option', table_name='brokerage_transactions')
    with op.batch_alter_table('journal_unplaceable', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_unplaceable_user_id'))
        batch_op.drop_index('idx_journal_unplaceable_pair')

    op.drop_table('journal_unplaceable')
    with op.batch_alter_table('journal_round_trips', schema=None) as batch_op:
        batch_op.drop_index('idx_journal_round_trips_user_closed')
        batch_op.drop_index('idx_journal_round_trips_pair')

    op.drop_table('journal_round_trips')
    with op.batch_alter_table('journal_reconciliations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_reconciliations_user_id'))
        batch_op.drop_index('idx_journal_reconciliations_differs')

    op.drop_table('journal_reconciliations')
    with op.batch_alter_table('journal_positions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_positions_user_id'))
        batch_op.drop_index('idx_journal_positions_pair')

    op.drop_table('journal_positions')
    with op.batch_alter_table('journal_open_lots', schema=None) as batch_op:
        batch_op.drop_index('idx_journal_open_lots_pair')

    op.drop_table('journal_open_lots')
    op.drop_table('journal_dirty_pairs')
    with op.batch_alter_table('brokerage_positions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_brokerage_positions_user_id'))
        batch_op.drop_index('idx_brokerage_positions_account')

    op.drop_table('brokerage_positions')
