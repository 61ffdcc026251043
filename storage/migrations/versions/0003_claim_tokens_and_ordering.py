"""claim tokens on inbox/outbox, per-chat inbox ordering, one active enrollment per member

- claimed_by: a row is only worked on, and only marked, by the claim that holds
  it; a replica whose lease ran out mid-batch can no longer send or process it
  a second time.
- ix_inbox_chat_order: the inbox takes a chat's events in order (a join before
  the leave that follows it).
- uq_enrollment_active: at most one active touch sequence per member per group.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_inbox_chat_order", ["chat_id", "status", "id"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=40), nullable=True))
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.create_index(
            "uq_enrollment_active",
            ["chat_id", "member_id"],
            unique=True,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_enrollment_active",
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_chat_order")
        batch_op.drop_column("claimed_by")
