"""member ladder (levels and their changes); questions marked in the message log

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_question", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "member_levels",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "member_id", name="uq_member_level"),
    )
    op.create_table(
        "level_changes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("from_level", sa.String(length=32), nullable=False),
        sa.Column("to_level", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("level_changes", schema=None) as batch_op:
        batch_op.create_index("ix_level_change_member", ["chat_id", "member_id", "at"])


def downgrade() -> None:
    op.drop_table("level_changes")
    op.drop_table("member_levels")
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.drop_column("is_question")
