"""groups.label: the operator's own name for a group, apart from WeCom's

`groups.name` is the name members see in WeCom (groupchat/get, group change
events) and is what messages say; `groups.label` is what an admin called the
group in `PUT /admin/groups` and is never overwritten by WeCom. Rows an admin
registered keep their name as the label.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=200), nullable=True))
    # Until now an admin's name and WeCom's shared one column: for groups an admin
    # registered, what is there was (at least once) the admin's choice.
    op.execute("UPDATE groups SET label = name WHERE origin = 'admin' AND name <> ''")


def downgrade() -> None:
    # Back to one column: the operator's label wins, as the old PUT did.
    op.execute("UPDATE groups SET name = label WHERE label IS NOT NULL")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("label")
