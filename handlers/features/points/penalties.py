"""Rule penalties in the points ledger, and their reversal when an admin overturns.

A step the rules take (remind, warn, report, remove) may cost points
(`points.penalties`); the line is keyed by the violation's id, so it is written
once however often the event is replayed. Overturning adds the opposite line
(`penalty_reversed`, the same key): the balance is restored, and both lines stay
in the ledger, which is the explanation a member or an operator can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks.points_section import PointsSection
from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.core.executor import Executor
from handlers.features.points.ledger import add_line
from storage.models import PointsEntry

PENALTY, PENALTY_REVERSED = "penalty", "penalty_reversed"


def penalty_points(points: PointsSection | None, step: str | None) -> int:
    """What a rule step costs (0 or negative): nothing without a step (dry run, held)
    or with points off in the playbook."""
    if points is None or not points.enabled or step is None:
        return 0
    return int(getattr(points.penalties, step, 0))


def violation_key(violation_id: int) -> str:
    return f"violation:{violation_id}"


async def record_penalty(
    session: AsyncSession,
    *,
    violation_id: int,
    chat_id: str,
    member_id: str,
    points: int,
    rule: str,
    step: str,
    at: datetime,
) -> None:
    """Called by the rules' applier right after it wrote a new violation row."""
    if points == 0:
        return
    await add_line(
        session,
        chat_id=chat_id,
        member_id=member_id,
        delta=points,
        reason=PENALTY,
        source_key=violation_key(violation_id),
        at=at,
        actor="rules",
        note=f"{rule}: {step}",
    )


@dataclass(frozen=True)
class ReversePenalty(Action):
    """Give back what a violation's penalty took (nothing when it took nothing)."""

    violation_id: int
    chat_id: str
    member_id: str
    reason: str = ""


async def apply_reverse(action: ReversePenalty, ctx: Context) -> None:
    key = violation_key(action.violation_id)
    taken = (
        await ctx.session.execute(
            select(PointsEntry.delta).where(
                PointsEntry.chat_id == action.chat_id,
                PointsEntry.member_id == action.member_id,
                PointsEntry.reason == PENALTY,
                PointsEntry.source_key == key,
            )
        )
    ).scalar_one_or_none()
    if not taken:
        return
    # The amount the line took, not today's playbook value: the balance comes back whole.
    if await add_line(
        ctx.session,
        chat_id=action.chat_id,
        member_id=action.member_id,
        delta=-taken,
        reason=PENALTY_REVERSED,
        source_key=key,
        at=ctx.now,
        actor="overturn",
        note=action.reason or None,
    ):
        ctx.note(f"penalty of violation {action.violation_id} given back ({-taken})")


def register(executor: Executor) -> None:
    executor.register(ReversePenalty, apply_reverse)
