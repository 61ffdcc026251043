"""demand_posts, demand_publications: demand posts (招聘 / 求职 / 供应商 / 活动) collected
during the day and published once per group in the 早报

Revision ID: 0024
Revises: 0026
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "demand_posts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("chat_id", sa.String(length=128), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("merged", sa.Integer(), nullable=False),
        sa.Column("merged_keys", sa.JSON(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_key", name="uq_demand_source"),
    )
    with op.batch_alter_table("demand_posts", schema=None) as batch_op:
        batch_op.create_index("ix_demand_status", ["status", "submitted_at"], unique=False)
        batch_op.create_index("ix_demand_dedup", ["dedup_key", "submitted_at"], unique=False)
        batch_op.create_index(
            "ix_demand_member", ["member_id", "kind", "submitted_at"], unique=False
        )
        batch_op.create_index("ix_demand_submitted", ["submitted_at"], unique=False)
    op.create_table(
        "demand_publications",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("demand_id", ID, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("report_date", sa.Date(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["demand_id"], ["demand_posts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("demand_id", "chat_id", name="uq_demand_publication"),
    )
    with op.batch_alter_table("demand_publications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_demand_publication_chat", ["chat_id", "report_date"], unique=False
        )


def downgrade() -> None:
    op.drop_table("demand_publications")
    op.drop_table("demand_posts")
