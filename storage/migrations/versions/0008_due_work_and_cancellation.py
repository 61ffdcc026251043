"""due-work engine jobs, per-member outbox cancellation, one touch a day

- scheduled_jobs: periodic jobs (retention, template sync, housekeeping) are due
  rows the engine claims, so one replica runs each at a time.
- outbox.member_id (+ ix_outbox_member): what is queued for a member who leaves
  or opts out is cancelled, not sent.
- touch_steps.sent_on: the local day a sent step counted against (at most one
  step per member per day).

Revision ID: 0008
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IdType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as models.IdType


def upgrade() -> None:
    op.create_table(
        "scheduled_jobs",
        sa.Column("id", IdType, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("last_started_at", sa.DateTime(), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(), nullable=True),
        sa.Column("last_result", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_id", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_outbox_member", ["member_id", "status"], unique=False)
    with op.batch_alter_table("touch_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("touch_steps", schema=None) as batch_op:
        batch_op.drop_column("sent_on")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_member")
        batch_op.drop_column("member_id")
    op.drop_table("scheduled_jobs")
