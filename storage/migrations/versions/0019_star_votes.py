"""star_votes, star_ballots: the monthly 贡献之星 vote and the replies cast in it

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "star_votes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("closes_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("winners", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "month", name="uq_star_vote_month"),
    )
    with op.batch_alter_table("star_votes", schema=None) as batch_op:
        batch_op.create_index("ix_star_vote_due", ["status", "due_at"], unique=False)
    op.create_table(
        "star_ballots",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("vote_id", ID, nullable=False),
        sa.Column("voter", sa.String(length=128), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("cast_at", sa.DateTime(), nullable=False),
        sa.Column("source_key", sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("vote_id", "source_key", name="uq_star_ballot_source"),
    )
    with op.batch_alter_table("star_ballots", schema=None) as batch_op:
        batch_op.create_index("ix_star_ballot_vote", ["vote_id", "cast_at"], unique=False)


def downgrade() -> None:
    op.drop_table("star_ballots")
    op.drop_table("star_votes")
