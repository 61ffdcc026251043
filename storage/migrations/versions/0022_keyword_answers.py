"""keyword_answers, unanswered_questions: what keyword lookup offered in each group
(its per-item cooldown) and the questions it had nothing for (the content team's list)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "keyword_answers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("item_ids", sa.JSON(), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_key", name="uq_keyword_answer_source"),
    )
    with op.batch_alter_table("keyword_answers", schema=None) as batch_op:
        batch_op.create_index("ix_keyword_answer_recent", ["chat_id", "answered_at"], unique=False)
    op.create_table(
        "unanswered_questions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.Column("normalized_key", sa.String(length=200), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("asked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_key", name="uq_unanswered_source"),
    )
    with op.batch_alter_table("unanswered_questions", schema=None) as batch_op:
        batch_op.create_index("ix_unanswered_chat_asked", ["chat_id", "asked_at"], unique=False)


def downgrade() -> None:
    op.drop_table("unanswered_questions")
    op.drop_table("keyword_answers")
