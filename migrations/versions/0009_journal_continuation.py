"""journal: continue a pair from its stored state, daily aggregates for the Journal page

- `journal_dirty_pairs.rebuild` and `.since`: the triggers now say how a pair became dirty. Only inserts
  (a sync's new rows) leave `rebuild` false and keep in `since` the earliest trade date among the inserted
  rows that the engine reads; an update or delete (a changed row, a re-key merge, a disconnect) sets it true.
  core.journal.store continues a pair from its stored state when `rebuild` is false and every new row comes
  after the last activity it processed; otherwise it rebuilds the pair from its rows.
- `journal_pair_states`: per (account, pair) the engine's resumable state (lots with their exact unit value,
  the open round trip's running sums, the last activity processed), as JSON.
- `journal_daily`: per account, currency and day, the round trips and the metric sums of the closed,
  unflagged ones, so the summary tiles read a few hundred rows instead of every round trip.
- `journal_round_trips.on_date` (close date, else open date) and `.outcome`, indexed with the user and
  currency, so the round-trip table pages in SQL.
- The dirty-pair reads of brokerage_transactions by (account, symbol) and (account, option ticker) now end
  in trade_date, so a continuation reads only a pair's rows from its last processed date; a partial index
  finds the rows that name no instrument (the "" pair) without reading the account.

Existing journals: every pair with journal rows is marked for a rebuild, so the next sync of each connection
fills the new tables (or run `python -m core journal rebuild` once after upgrading).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:30:00
"""

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import core.storage.types

revision: str = "0009"
down_revision: Union[str, None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

D = "journal_dirty_pairs"
TRIGGERS = ("trg_brokerage_transactions_journal_insert", "trg_brokerage_transactions_journal_update",
            "trg_brokerage_transactions_journal_delete")  # fmt: skip
# core.journal.fills.POSITION_TYPES (a test holds them equal); READ_TYPES adds the types the engine reads
# to list as unplaceable (core.journal.fills.UNMODELLED_TYPES): only these can change what a pair builds.
POSITION_TYPES = ("BUY", "REI", "STOCK_DIVIDEND", "EXTERNAL_ASSET_TRANSFER_IN", "INTERNAL_ASSET_TRANSFER_IN", "SELL",
                  "EXTERNAL_ASSET_TRANSFER_OUT", "INTERNAL_ASSET_TRANSFER_OUT", "SPLIT", "REVERSE_SPLIT",
                  "OPTIONEXPIRATION", "OPTIONASSIGNMENT", "OPTIONEXERCISE")  # fmt: skip
READ_TYPES = POSITION_TYPES + ("SPINOFF", "STOCK_MERGER", "ADJUSTMENT", "TRANSFER", "OTHER")
NAMELESS_WHERE = "option_ticker IS NULL AND (symbol IS NULL OR security_type = 'option')"
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _key(r: str) -> str:
    return (f"(CASE WHEN {r}.security_type = 'option' OR {r}.option_ticker IS NOT NULL THEN {r}.option_ticker "
            f"ELSE {r}.symbol END)")  # fmt: skip


def _relevant(r: str) -> str:
    types = ", ".join(f"'{t}'" for t in POSITION_TYPES)
    return f"({_key(r)} IS NOT NULL OR {r}.transaction_type IN ({types}))"


def _since(r: str) -> str:
    types = ", ".join(f"'{t}'" for t in READ_TYPES)
    return f"(CASE WHEN {r}.transaction_type IN ({types}) THEN {r}.trade_date END)"


def _sqlite_insert_mark() -> str:
    return f"""
      INSERT INTO {D} (account_id, pair_key, generation, rebuild, since)
        SELECT NEW.account_id, coalesce({_key("NEW")}, ''), 1, 0, {_since("NEW")} WHERE {_relevant("NEW")}
        ON CONFLICT (account_id, pair_key) DO UPDATE SET generation = generation + 1,
          since = CASE WHEN excluded.since IS NULL THEN since WHEN since IS NULL THEN excluded.since
                       ELSE min(since, excluded.since) END;"""


def _sqlite_rebuild_mark(r: str, guard: str = "") -> str:
    return f"""
      INSERT INTO {D} (account_id, pair_key, generation, rebuild, since)
        SELECT {r}.account_id, coalesce({_key(r)}, ''), 1, 1, NULL WHERE {_relevant(r)}{guard}
        ON CONFLICT (account_id, pair_key) DO UPDATE SET generation = generation + 1, rebuild = 1;"""


_ACCOUNT_EXISTS = " AND EXISTS (SELECT 1 FROM brokerage_accounts WHERE id = OLD.account_id)"
SQLITE = [
    f"""CREATE TRIGGER trg_brokerage_transactions_journal_insert AFTER INSERT ON brokerage_transactions
    BEGIN{_sqlite_insert_mark()}
    END""",
    f"""CREATE TRIGGER trg_brokerage_transactions_journal_update AFTER UPDATE ON brokerage_transactions
    BEGIN{_sqlite_rebuild_mark("OLD", _ACCOUNT_EXISTS)}{_sqlite_rebuild_mark("NEW")}
    END""",
    f"""CREATE TRIGGER trg_brokerage_transactions_journal_delete AFTER DELETE ON brokerage_transactions
    BEGIN{_sqlite_rebuild_mark("OLD", _ACCOUNT_EXISTS)}
    END""",
]


def _pg_mark(source: str, rebuild: bool) -> str:
    since = f"min({_since('r')})" if not rebuild else "NULL::date"
    on_conflict = ("rebuild = true" if rebuild else
                   f"since = CASE WHEN excluded.since IS NULL THEN {D}.since WHEN {D}.since IS NULL THEN excluded.since "
                   f"ELSE least({D}.since, excluded.since) END")  # fmt: skip
    return f"""INSERT INTO {D} (account_id, pair_key, generation, rebuild, since)
      SELECT account_id, coalesce({_key("r")}, ''), 1, {str(rebuild).lower()}, {since} FROM ({source}) r
        WHERE {_relevant("r")} AND account_id IN (SELECT id FROM brokerage_accounts) GROUP BY 1, 2
      ON CONFLICT (account_id, pair_key) DO UPDATE SET generation = {D}.generation + 1, {on_conflict};"""


def _pg_function(name: str, body: str) -> str:
    return f"""CREATE OR REPLACE FUNCTION brokerage_transactions_journal_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      {body}
      RETURN NULL;
    END $$"""


POSTGRESQL = [
    _pg_function("insert", _pg_mark("SELECT * FROM new_rows", rebuild=False)),
    _pg_function("update", _pg_mark("SELECT * FROM old_rows UNION ALL SELECT * FROM new_rows", rebuild=True)),
    _pg_function("delete", _pg_mark("SELECT * FROM old_rows", rebuild=True)),
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if not postgres:  # SQLite's batch mode copies a table: no trigger may name it meanwhile
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table(D, schema=None) as batch_op:
        batch_op.add_column(sa.Column("rebuild", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column("since", sa.Date(), nullable=True))
    with op.batch_alter_table("journal_round_trips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("on_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    sign = "net_pnl" if postgres else "CAST(net_pnl AS REAL)"
    op.execute(f"""UPDATE journal_round_trips SET on_date = coalesce(closed_on, opened_on), outcome = CASE
        WHEN status = 'open' THEN 'open' WHEN NOT counts_in_metrics OR net_pnl IS NULL THEN 'flagged'
        WHEN {sign} > 0 THEN 'win' WHEN {sign} < 0 THEN 'loss' ELSE 'scratch' END""")
    with op.batch_alter_table("journal_round_trips", schema=None) as batch_op:
        batch_op.alter_column("on_date", existing_type=sa.Date(), nullable=False)
        batch_op.alter_column("outcome", existing_type=sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False)
        batch_op.create_index("idx_journal_round_trips_user_on", ["user_id", "currency", "on_date"], unique=False)
    op.create_table(
        "journal_pair_states",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("pair_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["brokerage_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "pair_key"),
    )
    op.create_table(
        "journal_daily",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("trips", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("holding_days", sa.Integer(), nullable=False),
        sa.Column("net", core.storage.types.ExactNumber(), nullable=False),
        sa.Column("gross_profit", core.storage.types.ExactNumber(), nullable=False),
        sa.Column("gross_loss", core.storage.types.ExactNumber(), nullable=False),
        sa.Column("largest_win", core.storage.types.ExactNumber(), nullable=True),
        sa.Column("largest_loss", core.storage.types.ExactNumber(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["brokerage_accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("journal_daily", schema=None) as batch_op:
        batch_op.create_index("idx_journal_daily_user_day", ["user_id", "day"], unique=False)
        batch_op.create_index("idx_journal_daily_account_day", ["account_id", "day"], unique=False)
    op.drop_index("idx_brokerage_transactions_account_symbol", table_name="brokerage_transactions")
    op.drop_index("idx_brokerage_transactions_account_option", table_name="brokerage_transactions")
    _date_indexes()
    if postgres:
        for statement in POSTGRESQL:
            op.execute(statement)
    else:
        for statement in SQLITE:
            op.execute(statement)
    # Existing journals: rebuilt whole on their next upkeep (their states and daily rows do not exist yet).
    op.execute(f"INSERT INTO {D} (account_id, pair_key, generation, rebuild) "
               f"SELECT account_id, pair_key, 1, {'true' if postgres else '1'} FROM journal_round_trips GROUP BY 1, 2 "
               f"ON CONFLICT (account_id, pair_key) DO UPDATE SET rebuild = excluded.rebuild")  # fmt: skip


def _date_indexes() -> None:
    op.create_index("idx_brokerage_transactions_account_symbol_date", "brokerage_transactions",
                    ["account_id", "symbol", "trade_date"], postgresql_where=sa.text("option_ticker IS NULL"),
                    sqlite_where=sa.text("option_ticker IS NULL"))  # fmt: skip
    op.create_index("idx_brokerage_transactions_account_option_date", "brokerage_transactions",
                    ["account_id", "option_ticker", "trade_date"], postgresql_where=sa.text("option_ticker IS NOT NULL"),
                    sqlite_where=sa.text("option_ticker IS NOT NULL"))  # fmt: skip
    op.create_index("idx_brokerage_transactions_account_nameless", "brokerage_transactions", ["account_id", "trade_date"],
                    postgresql_where=sa.text(NAMELESS_WHERE), sqlite_where=sa.text(NAMELESS_WHERE))  # fmt: skip


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    migration = __import__("importlib").import_module("migrations.versions.0006_journal_tables")
    if postgres:
        for statement in migration.POSTGRESQL[:3]:
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    else:
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for name in ("account_nameless", "account_option_date", "account_symbol_date"):
        op.drop_index(f"idx_brokerage_transactions_{name}", table_name="brokerage_transactions")
    op.create_index("idx_brokerage_transactions_account_option", "brokerage_transactions", ["account_id", "option_ticker"],
                    postgresql_where=sa.text("option_ticker IS NOT NULL"), sqlite_where=sa.text("option_ticker IS NOT NULL"))  # fmt: skip
    op.create_index("idx_brokerage_transactions_account_symbol", "brokerage_transactions", ["account_id", "symbol"],
                    postgresql_where=sa.text("option_ticker IS NULL"), sqlite_where=sa.text("option_ticker IS NULL"))  # fmt: skip
    with op.batch_alter_table("journal_daily", schema=None) as batch_op:
        batch_op.drop_index("idx_journal_daily_account_day")
        batch_op.drop_index("idx_journal_daily_user_day")
    op.drop_table("journal_daily")
    op.drop_table("journal_pair_states")
    with op.batch_alter_table("journal_round_trips", schema=None) as batch_op:
        batch_op.drop_index("idx_journal_round_trips_user_on")
        batch_op.drop_column("outcome")
        batch_op.drop_column("on_date")
    with op.batch_alter_table(D, schema=None) as batch_op:
        batch_op.drop_column("since")
        batch_op.drop_column("rebuild")
    if not postgres:
        for statement in migration.SQLITE:
            op.execute(statement)
