"""Admin: the week's top unanswered questions (SPEC §5.4, §5.8), per group or for
every group, to feed the content team."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from bot.api.admin_health import WeekQuery, chosen_week
from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.timefmt import LocalTime
from handlers.features.content.unanswered import top_unanswered

router = APIRouter(prefix="/admin", tags=["admin: content"], dependencies=[AdminDep])


class QuestionOut(BaseModel):
    normalized_key: str
    count: int
    askers: int
    text: str
    chat_ids: list[str]
    last_asked_at: LocalTime


class UnansweredOut(BaseModel):
    week: str
    start: LocalTime
    end: LocalTime
    chat_id: str | None
    questions: list[QuestionOut]


@router.get("/questions/unanswered", response_model=UnansweredOut)
async def unanswered_questions(
    runtime: RuntimeDep,
    session: SessionDep,
    week: WeekQuery = None,
    chat_id: Annotated[
        str | None, Query(min_length=1, max_length=128, description="one group; default all")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> UnansweredOut:
    chosen = chosen_week(runtime, week)
    if chat_id is not None:
        await known_group(session, chat_id)  # 404 for a group the bot does not know
    top = await top_unanswered(
        session, start=chosen.start, end=chosen.end, chat_id=chat_id, limit=limit
    )
    return UnansweredOut(
        week=chosen.label,
        start=chosen.start,
        end=chosen.end,
        chat_id=chat_id,
        questions=[
            QuestionOut(
                normalized_key=q.normalized_key,
                count=q.count,
                askers=q.askers,
                text=q.text,
                chat_ids=list(q.chat_ids),
                last_asked_at=q.last_asked_at,
            )
            for q in top
        ],
    )
