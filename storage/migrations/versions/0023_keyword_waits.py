"""keyword_waits: keyword answers held back in `mode: wait` until no member answered

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "keyword_waits",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("asked_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("item_ids", sa.JSON(), nullable=False),
        sa.Column("question", sa.String(length=200), nullable=False),
        sa.Column("reply_text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_key", name="uq_keyword_wait_source"),
    )
    with op.batch_alter_table("keyword_waits", schema=None) as batch_op:
        batch_op.create_index("ix_keyword_wait_due", ["status", "due_at"], unique=False)


def downgrade() -> None:
    op.drop_table("keyword_waits")
