"""member_roles and groups.admins: where rules read a member's roles from

`groups.admins`: the group's admins as groupchat/get lists them (admin_list).
`member_roles`: playbook roles (讲师, KOL, 核心 …) an admin set for a member in a
group. owner, admin and staff are derived (handlers/features/roles.py), never stored here.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("admins", sa.JSON(), nullable=True))
    op.create_table(
        "member_roles",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "member_id", "role", name="uq_member_role"),
    )


def downgrade() -> None:
    op.drop_table("member_roles")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("admins")
