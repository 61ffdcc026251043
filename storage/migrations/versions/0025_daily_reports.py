"""daily_reports and knowledge_point_uses: the daily 早报, once per group and day

Revision ID: 0025
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "daily_reports",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("report_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("outbox_key", sa.String(length=200), nullable=True),
        sa.Column("delivery", sa.String(length=16), nullable=True),
        sa.Column("knowledge_item_id", ID, nullable=True),
        sa.Column("mass_send_state", sa.String(length=24), nullable=True),
        sa.Column("mass_send_msgid", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "report_date", name="uq_daily_report_day"),
    )
    with op.batch_alter_table("daily_reports", schema=None) as batch_op:
        batch_op.create_index("ix_daily_report_due", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_daily_report_mass_send", ["mass_send_state"], unique=False)
    op.create_table(
        "knowledge_point_uses",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("report_date", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "report_date", name="uq_knowledge_use_day"),
    )
    with op.batch_alter_table("knowledge_point_uses", schema=None) as batch_op:
        batch_op.create_index("ix_knowledge_use_item", ["chat_id", "item_id"], unique=False)


def downgrade() -> None:
    op.drop_table("knowledge_point_uses")
    op.drop_table("daily_reports")
