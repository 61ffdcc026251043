"""keyword_waits: askers who asked the same during a wait, and expert cues

Revision ID: 0028
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("keyword_waits", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="answer")
        )
        batch_op.add_column(
            sa.Column("question_key", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("askers", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("experts", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.create_index(
            "ix_keyword_wait_chat_pending", ["chat_id", "status", "due_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("keyword_waits", schema=None) as batch_op:
        batch_op.drop_index("ix_keyword_wait_chat_pending")
        batch_op.drop_column("experts")
        batch_op.drop_column("askers")
        batch_op.drop_column("question_key")
        batch_op.drop_column("kind")
