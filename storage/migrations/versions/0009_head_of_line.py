"""head-of-line flags: claims cost the same whatever one chat's backlog

- inbox.is_head / outbox.is_head: the oldest unfinished row of each chat (inbox)
  or destination (outbox) is flagged (storage/heads.py keeps it so); claims read
  heads only, through ix_inbox_head / ix_outbox_head (ix_outbox_head_due: when
  the next head is due).
- Existing unfinished rows get their flags here.
- ix_inbox_unpruned: the rows whose payload retention has not blanked yet, so the
  hourly retention job does not walk every pruned row again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    ("inbox", "chat_id", ("pending", "processing")),
    ("outbox", "order_key", ("pending", "sending")),
)


def upgrade() -> None:
    for table, key, unfinished in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("is_head", sa.Boolean(), nullable=False, server_default=sa.false())
            )
            # Partial on PostgreSQL: only heads are in it, so the planner never prefers
            # a status index that holds a deep backlog (SQLite's planner picks this
            # full index by itself).
            batch_op.create_index(
                f"ix_{table}_head",
                ["is_head", "id"],
                unique=False,
                postgresql_where=sa.text("is_head"),
            )
            if table == "outbox":
                # "When is the next head due?" (the dispatcher's idle wait): one probe.
                batch_op.create_index(
                    "ix_outbox_head_due",
                    ["is_head", "status", "next_attempt_at"],
                    unique=False,
                    postgresql_where=sa.text("is_head"),
                )
        statuses = ", ".join(f"'{status}'" for status in unfinished)
        op.execute(
            f"UPDATE {table} SET is_head = TRUE WHERE status IN ({statuses}) AND "
            f"({key} IS NULL OR id = (SELECT min(e.id) FROM {table} e "
            f"WHERE e.{key} = {table}.{key} AND e.status IN ({statuses})))"
        )

    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_unpruned",
            ["id"],
            unique=False,
            postgresql_where=sa.text("raw <> ''"),
            sqlite_where=sa.text("raw <> ''"),
        )


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_unpruned")
    for table, _key, _unfinished in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == "outbox":
                batch_op.drop_index("ix_outbox_head_due")
            batch_op.drop_index(f"ix_{table}_head")
            batch_op.drop_column("is_head")
