"""message_log: one compact row per group message, for points and group health

Who, where, when, what kind, how long, whom it quotes, whether it was taken back;
no content (the inbox keeps that, and retention blanks it there).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("msg_id", sa.String(length=128), nullable=True),
        sa.Column("replies_to", sa.String(length=128), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id"),
    )
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.create_index("ix_message_log_chat_time", ["chat_id", "sent_at"], unique=False)
        batch_op.create_index(
            "ix_message_log_member", ["chat_id", "member_id", "sent_at"], unique=False
        )
        batch_op.create_index("ix_message_log_msg", ["chat_id", "msg_id"], unique=False)
        batch_op.create_index("ix_message_log_sent", ["sent_at"], unique=False)


def downgrade() -> None:
    op.drop_table("message_log")
