"""Admin: the member ladder (issue 9) — a member's level with what it rests on and
its history, and a review run now instead of at the next periodic one."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.timefmt import LocalTime
from handlers.core.playbooks import playbook_for
from handlers.features.points.ladder import history, level_of, review_all, shortfall, standings
from handlers.features.roles import assigned_roles

router = APIRouter(prefix="/admin", tags=["admin: ladder"], dependencies=[AdminDep])

MemberId = Annotated[str, Path(min_length=1, max_length=128)]


class ChangeOut(BaseModel):
    from_level: str
    to_level: str
    reason: str
    at: LocalTime


class StandingOut(BaseModel):
    points: int  # lifetime in the group
    active_weeks: int
    answers: int
    weeks: int  # over how many recent weeks


class LevelOut(BaseModel):
    chat_id: str
    member_id: str
    level: str  # as last reviewed: 普通, 活跃, 核心, KOL …
    roles: list[str]  # nominated by admins (讲师, 大咖 …)
    standing: StandingOut
    next_level: str | None
    lacking: str | None  # what the next rung still needs, in words
    history: list[ChangeOut]  # newest first


class MoveOut(BaseModel):
    member_id: str
    from_level: str
    to_level: str
    reason: str


@router.get("/members/{member_id}/level", response_model=LevelOut)
async def get_level(
    member_id: MemberId,
    runtime: RuntimeDep,
    session: SessionDep,
    chat_id: Annotated[str, Query(min_length=1, max_length=128)],
) -> LevelOut:
    group = await known_group(session, chat_id)
    playbook = playbook_for(runtime.playbook_set, group)
    rungs = playbook.points.roles if playbook.points is not None else ()
    weeks = playbook.points.ladder_weeks if playbook.points is not None else 8
    standing = (
        await standings(
            session,
            chat_id,
            [member_id],
            now=runtime.clock(),
            tz=runtime.settings.tz,
            weeks=weeks,
            window=timedelta(minutes=playbook.health.thread_minutes),
        )
    )[member_id]
    level = await level_of(session, chat_id, member_id)
    names = [rung.name for rung in rungs]
    upper = names[names.index(level) + 1 :] if level in names else names
    following = next((r for r in rungs if r.name in upper), None)
    return LevelOut(
        chat_id=chat_id,
        member_id=member_id,
        level=level,
        roles=await assigned_roles(session, chat_id, member_id),
        standing=StandingOut(
            points=standing.points,
            active_weeks=standing.active_weeks,
            answers=standing.answers,
            weeks=weeks,
        ),
        next_level=following.name if following else None,
        lacking=shortfall(following, standing, weeks) if following else None,
        history=[
            ChangeOut(from_level=c.from_level, to_level=c.to_level, reason=c.reason, at=c.at)
            for c in await history(session, chat_id, member_id)
        ],
    )


@router.post("/ladder/review", response_model=dict[str, list[MoveOut]])
async def review_now(runtime: RuntimeDep, session: SessionDep) -> dict[str, list[MoveOut]]:
    """Review every group's ladder now; returns the promotions and demotions made."""
    reviewed = await review_all(
        session, runtime.playbook_set, now=runtime.clock(), tz=runtime.settings.tz
    )
    await session.commit()
    return {
        chat: [
            MoveOut(member_id=m.member_id, from_level=m.before, to_level=m.after, reason=m.reason)
            for m in moves
        ]
        for chat, moves in reviewed.items()
    }
