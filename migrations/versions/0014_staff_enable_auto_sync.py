"""staff console: staff can turn a connection's auto-sync back on (action enable_auto_sync)

Staff could turn auto-sync off but not on again; only the trader's own card could. The staff_actions check
constraint lists every action, so it grows by one. On SQLite the constraint rebuilds staff_actions (batch
mode); no table references it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 23:10:00
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0014"
down_revision: Union[str, None] = "0013"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BEFORE = ("retry_sync", "full_resync", "reconcile", "resolve_issue", "reprocess_webhooks", "reconnect_link",
          "disable_auto_sync", "support_bundle")  # fmt: skip
AFTER = (*BEFORE, "enable_auto_sync")


def _allow(actions: tuple[str, ...]) -> None:
    with op.batch_alter_table("staff_actions", schema=None) as batch_op:
        batch_op.drop_constraint("ck_staff_actions_action", type_="check")
        batch_op.create_check_constraint("ck_staff_actions_action", f"action IN ({', '.join(map(repr, actions))})")


def upgrade() -> None:
    _allow(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM staff_actions WHERE action = 'enable_auto_sync'")
    _allow(BEFORE)
