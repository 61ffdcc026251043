"""daily_reports: who confirms a customer group's 早报 mass send, when it was checked
and when the owner sent it

Revision ID: 0029
Revises: 0025
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("daily_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mass_send_sender", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("mass_send_checked_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("mass_send_confirmed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("daily_reports", schema=None) as batch_op:
        batch_op.drop_column("mass_send_confirmed_at")
        batch_op.drop_column("mass_send_checked_at")
        batch_op.drop_column("mass_send_sender")
