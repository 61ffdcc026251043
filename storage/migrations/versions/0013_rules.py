"""violations, raid_guards, owner tasks and digests; message_log.text_hash

`violations`: every rule hit, the step taken (or why none), appeals and reviews;
a member's warning ladder is read from it. `raid_guards`: groups in strict mode
after many joins at once. `owner_tasks` / `owner_digests`: the operator copilot
(tasks for people where the bot cannot act itself, sent as one digest).
`message_log.text_hash`: a digest of the normalized text, for "repeated text".

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_hash", sa.String(length=16), nullable=True))
    op.create_table(
        "violations",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("family", sa.String(length=40), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("matcher", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("msg_id", sa.String(length=128), nullable=True),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("appealed_at", sa.DateTime(), nullable=True),
        sa.Column("appeal_text", sa.Text(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.Column("overturned_at", sa.DateTime(), nullable=True),
        sa.Column("overturn_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "rule", name="uq_violation_source_rule"),
    )
    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_violation_ladder", ["chat_id", "member_id", "family", "created_at"], unique=False
        )
        batch_op.create_index("ix_violation_created", ["created_at"], unique=False)
        batch_op.create_index("ix_violation_status", ["status", "created_at"], unique=False)
    op.create_table(
        "raid_guards",
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("joins", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id"),
    )
    op.create_table(
        "owner_digests",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("flushed_at", sa.DateTime(), nullable=True),
        sa.Column("outbox_id", ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("owner_digests", schema=None) as batch_op:
        batch_op.create_index("ix_owner_digest_due", ["status", "due_at"], unique=False)
        batch_op.create_index(
            "uq_owner_digest_open",
            ["recipient"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
    op.create_table(
        "owner_tasks",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=True),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("paste_text", sa.Text(), nullable=True),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("digest_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key", "recipient", name="uq_owner_task_key"),
    )
    with op.batch_alter_table("owner_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_owner_task_digest", ["digest_id"], unique=False)


def downgrade() -> None:
    op.drop_table("owner_tasks")
    op.drop_table("owner_digests")
    op.drop_table("raid_guards")
    op.drop_table("violations")
    with op.batch_alter_table("message_log", schema=None) as batch_op:
        batch_op.drop_column("text_hash")
