"""touch_steps: one composite (enrollment_id, status) index instead of enrollment_id alone

Found by bench/tick_cost.py on PostgreSQL: with 400k pending steps the planner
answered "does this enrollment have a pending step?" with a BitmapAnd over the
whole (status, due_at) index, making the tick O(enrolled) per due step.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("touch_steps", schema=None) as batch_op:
        batch_op.create_index(
            "ix_touch_enrollment_status", ["enrollment_id", "status"], unique=False
        )
        batch_op.drop_index("ix_touch_steps_enrollment_id")


def downgrade() -> None:
    with op.batch_alter_table("touch_steps", schema=None) as batch_op:
        batch_op.create_index("ix_touch_steps_enrollment_id", ["enrollment_id"], unique=False)
        batch_op.drop_index("ix_touch_enrollment_status")
