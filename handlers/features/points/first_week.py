"""Points for finishing the first week (playbook `points.touch_complete`).

When a member's touch sequence ends with every step gone through while they are
still in the group, they earn `touch_complete` points once per enrollment. A step
counts as gone through when it was sent, or skipped because its condition was false
(the member had already spoken: they did what the step asks) or because the group's
channel can never carry it (the playbook's shape, not the member's doing). A member
who left, opted out, or whose steps failed or came too late earns nothing.

touch.py calls `completion_actions` when a step completes an enrollment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import PlaybookSet
from handlers.core.actions import Action, Note
from handlers.core.playbooks import playbook_for
from handlers.features.points.ledger import AddPoints
from storage.members import get_membership
from storage.models import Enrollment, Group, TouchStep

TOUCH_COMPLETE = "touch_complete"
# Skips that are not the member's doing (touch.py's reasons).
GONE_THROUGH_SKIPS = ("condition false", "channel cannot carry it")


def gone_through(status: str, reason: str | None) -> bool:
    if status == "sent":
        return True
    return status == "skipped" and (reason or "").startswith(GONE_THROUGH_SKIPS)


@dataclass(frozen=True)
class Completion:
    enrollment_status: str
    still_member: bool  # in the group, not opted out
    steps: tuple[tuple[str, str | None], ...]  # (status, reason) of every step


def completion_points(completion: Completion, points: int) -> tuple[int, str]:
    """(points, why): 0 with the reason when the week does not earn."""
    if points <= 0:
        return 0, "touch_complete is off"
    if completion.enrollment_status != "completed":
        return 0, f"enrollment {completion.enrollment_status}"
    if not completion.still_member:
        return 0, "left the group or opted out"
    if not completion.steps:
        return 0, "no steps"
    missed = [
        reason or status for status, reason in completion.steps if not gone_through(status, reason)
    ]
    if missed:
        return 0, f"{len(missed)} step(s) not gone through: {missed[0]}"
    return points, TOUCH_COMPLETE


async def completion_actions(
    session: AsyncSession, enrollment: Enrollment, playbooks: PlaybookSet, *, now: datetime
) -> list[Action]:
    """The points for an enrollment that has just completed, if it earns any."""
    group = await session.get(Group, enrollment.chat_id)
    if group is None:
        return []
    section = playbook_for(playbooks, group).points
    if section is None or not section.enabled or section.touch_complete <= 0:
        return []
    membership = await get_membership(session, enrollment.chat_id, enrollment.member_id)
    rows = await session.execute(
        select(TouchStep.status, TouchStep.reason).where(TouchStep.enrollment_id == enrollment.id)
    )
    completion = Completion(
        enrollment_status=enrollment.status,
        still_member=membership is not None
        and membership.left_at is None
        and not membership.opted_out,
        steps=tuple((status, reason) for status, reason in rows.all()),
    )
    points, why = completion_points(completion, section.touch_complete)
    if not points:
        return [Note(f"no touch_complete points for {enrollment.member_id}: {why}")]
    return [
        AddPoints(
            enrollment.chat_id,
            enrollment.member_id,
            points,
            TOUCH_COMPLETE,
            f"enrollment:{enrollment.id}",
            now,
        )
    ]
