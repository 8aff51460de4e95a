"""staff console: audit trail, portal attempts, connection state history, run request log

- `staff_actions`: who did what to which connection, when, with what outcome (unique idempotency key).
- `portal_attempts`: each pass through SnapTrade's portal (link, CONNECTION_ATTEMPTED, callback).
- `connection_state_changes`: a connection's status history, kept by triggers on brokerage_connections
  so every writer (webhooks, reconcile, a sync, a disconnect) is recorded without knowing about it.
  Existing connections get one "recorded" row at their created_at.
- `sync_run_requests`: path, status, timing and SnapTrade request id of a run's requests (no bodies).
- `sync_issues.resolution_note`, a partial index over pending webhook events, and runs by connection and
  status (a failed run is "superseded by #N" when its connection later completes a run).

On SQLite, Alembic's batch mode rebuilds a table by copying it, which drops its triggers: a later
migration that batch-alters brokerage_connections must create these triggers again
(tests/core/storage/test_migrations.py checks they exist at head).

Self-contained: only creates and adds, so it can sit after any revision that keeps these tables' parents.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-05 13:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TIME = sqlmodel.sql.sqltypes.UTCDateTime
TEXT = sqlmodel.sql.sqltypes.AutoString
PENDING = "status = 'pending'"
STATE_TRIGGERS = ('trg_brokerage_connections_state_insert', 'trg_brokerage_connections_state_update')
# The format SQLAlchemy writes datetimes in on SQLite (microseconds), so trigger rows sort with the app's.
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"

SQLITE = [
    f"""CREATE TRIGGER trg_brokerage_connections_state_insert AFTER INSERT ON brokerage_connections
    BEGIN
      INSERT INTO connection_state_changes (connection_id, from_status, to_status, reason, changed_at)
      VALUES (NEW.id, NULL, NEW.status, NEW.status_reason, {SQLITE_NOW});
    END""",
    f"""CREATE TRIGGER trg_brokerage_connections_state_update AFTER UPDATE OF status ON brokerage_connections
    WHEN OLD.status IS NOT NEW.status
    BEGIN
      INSERT INTO connection_state_changes (connection_id, from_status, to_status, reason, changed_at)
      VALUES (NEW.id, OLD.status, NEW.status, NEW.status_reason, {SQLITE_NOW});
    END""",
]

POSTGRESQL = [
    # clock_timestamp(): changes within one transaction keep their order (now() is the transaction's start).
    """CREATE FUNCTION brokerage_connections_state_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO connection_state_changes (connection_id, from_status, to_status, reason, changed_at)
      VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status, NEW.status_reason, clock_timestamp());
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER trg_brokerage_connections_state_insert AFTER INSERT ON brokerage_connections
    FOR EACH ROW EXECUTE FUNCTION brokerage_connections_state_change()""",
    """CREATE TRIGGER trg_brokerage_connections_state_update AFTER UPDATE OF status ON brokerage_connections
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION brokerage_connections_state_change()""",
]


def upgrade() -> None:
    op.create_table('staff_actions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', TIME(), nullable=False),
        sa.Column('actor_user_id', sa.Integer(), nullable=True),
        sa.Column('actor_username', TEXT(length=64), nullable=False),
        sa.Column('action', TEXT(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('connection_id', sa.Integer(), nullable=True),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('issue_id', sa.Integer(), nullable=True),
        sa.Column('note', TEXT(), nullable=True),
        sa.Column('outcome', TEXT(length=16), nullable=False),
        sa.Column('message', TEXT(), nullable=True),
        sa.Column('details', JSON, nullable=True),
        sa.Column('idempotency_key', TEXT(length=64), nullable=True),
        sa.Column('finished_at', TIME(), nullable=True),
        sa.CheckConstraint("action IN ('retry_sync', 'full_resync', 'reconcile', 'resolve_issue', 'reprocess_webhooks', "
                           "'reconnect_link', 'disable_auto_sync', 'support_bundle')", name='ck_staff_actions_action'),
        sa.CheckConstraint("outcome IN ('started', 'done', 'no_change', 'failed')", name='ck_staff_actions_outcome'),
        sa.ForeignKeyConstraint(['actor_user_id'], ['app_users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['connection_id'], ['brokerage_connections.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('idempotency_key'),
    )
    op.create_index('idx_staff_actions_connection', 'staff_actions', ['connection_id', 'created_at'])
    op.create_index('idx_staff_actions_user', 'staff_actions', ['user_id', 'created_at'])
    op.create_index('ix_staff_actions_created_at', 'staff_actions', ['created_at'])

    op.create_table('portal_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('connection_id', sa.Integer(), nullable=True),
        sa.Column('purpose', TEXT(length=16), nullable=False),
        sa.Column('broker', TEXT(length=64), nullable=True),
        sa.Column('requested_by', TEXT(length=64), nullable=True),
        sa.Column('link_created_at', TIME(), nullable=True),
        sa.Column('link_expires_at', TIME(), nullable=True),
        sa.Column('webhook_event_id', sa.Integer(), nullable=True),
        sa.Column('webhook_result', TEXT(length=64), nullable=True),
        sa.Column('callback_status', TEXT(length=16), nullable=True),
        sa.Column('callback_at', TIME(), nullable=True),
        sa.Column('error_code', TEXT(length=16), nullable=True),
        sa.Column('outcome', TEXT(length=16), nullable=False),
        sa.Column('message', TEXT(), nullable=True),
        sa.Column('created_at', TIME(), nullable=False),
        sa.Column('updated_at', TIME(), nullable=False),
        sa.CheckConstraint("outcome IN ('open', 'connected', 'failed', 'abandoned', 'unknown')",
                           name='ck_portal_attempts_outcome'),
        sa.ForeignKeyConstraint(['connection_id'], ['brokerage_connections.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['app_users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('idx_portal_attempts_user', 'portal_attempts', ['user_id', 'created_at'])
    op.create_index('idx_portal_attempts_connection', 'portal_attempts', ['connection_id', 'created_at'])

    op.create_table('connection_state_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('connection_id', sa.Integer(), nullable=False),
        sa.Column('from_status', TEXT(length=32), nullable=True),
        sa.Column('to_status', TEXT(length=32), nullable=False),
        sa.Column('reason', TEXT(), nullable=True),
        sa.Column('changed_at', TIME(), nullable=False),
        sa.ForeignKeyConstraint(['connection_id'], ['brokerage_connections.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('idx_connection_state_changes_connection', 'connection_state_changes',
                    ['connection_id', 'changed_at'])
    op.execute("INSERT INTO connection_state_changes (connection_id, from_status, to_status, reason, changed_at) "
               "SELECT id, NULL, status, status_reason, created_at FROM brokerage_connections ORDER BY id")
    for statement in POSTGRESQL if op.get_bind().dialect.name == 'postgresql' else SQLITE:
        op.execute(statement)

    op.create_table('sync_run_requests',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('at', TIME(), nullable=False),
        sa.Column('operation', TEXT(length=64), nullable=False),
        sa.Column('method', TEXT(length=8), nullable=True),
        sa.Column('path', TEXT(length=255), nullable=True),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('duration_ms', sa.Float(), nullable=True),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('request_id', TEXT(length=128), nullable=True),
        sa.Column('error', TEXT(length=255), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['transaction_sync_log.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('idx_sync_run_requests_run', 'sync_run_requests', ['run_id', 'seq'])

    op.add_column('sync_issues', sa.Column('resolution_note', TEXT(), nullable=True))
    op.create_index('idx_transaction_sync_log_connection', 'transaction_sync_log', ['connection_id', 'status', 'id'])
    op.create_index('idx_webhook_events_pending', 'webhook_events', ['user_id', 'received_at'],
                    postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    op.drop_index('idx_webhook_events_pending', table_name='webhook_events')
    op.drop_index('idx_transaction_sync_log_connection', table_name='transaction_sync_log')
    with op.batch_alter_table('sync_issues') as batch_op:
        batch_op.drop_column('resolution_note')
    op.drop_index('idx_sync_run_requests_run', table_name='sync_run_requests')
    op.drop_table('sync_run_requests')
    for name in STATE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON brokerage_connections" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS brokerage_connections_state_change()")
    op.drop_index('idx_connection_state_changes_connection', table_name='connection_state_changes')
    op.drop_table('connection_state_changes')
    op.drop_index('idx_portal_attempts_connection', table_name='portal_attempts')
    op.drop_index('idx_portal_attempts_user', table_name='portal_attempts')
    op.drop_table('portal_attempts')
    op.drop_index('ix_staff_actions_created_at', table_name='staff_actions')
    op.drop_index('idx_staff_actions_user', table_name='staff_actions')
    op.drop_index('idx_staff_actions_connection', table_name='staff_actions')
    op.drop_table('staff_actions')
