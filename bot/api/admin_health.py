"""Admin: group health (SPEC §5.8 `GET /admin/groups/{chat_id}/health?week=`), per group
and across groups, each figure beside the playbook's goal line."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.runtime import Runtime
from bot.timefmt import LocalTime
from handlers.core.playbooks import playbook_for
from handlers.features.health.figures import Report, figures
from handlers.features.health.read import BadWeek, Week, parse_week, week_facts, week_of
from storage.models import Group

router = APIRouter(prefix="/admin", tags=["admin: health"], dependencies=[AdminDep])

WeekQuery = Annotated[
    str | None,
    Query(description="ISO week YYYY-Www (BOT_TIMEZONE, Monday to Sunday); default this week"),
]


class HealthOut(Report):
    chat_id: str
    name: str | None
    week: str
    start: LocalTime
    end: LocalTime


class HealthOverview(BaseModel):
    week: str
    groups: list[HealthOut]  # groups with the most figures below goal first


def chosen_week(runtime: Runtime, label: str | None, default: Week | None = None) -> Week:
    """The `week=YYYY-Www` parameter; absent: `default`, else this week (BOT_TIMEZONE)."""
    tz = runtime.settings.tz
    if label is None:
        return default or week_of(runtime.clock().astimezone(tz).date(), tz)
    try:
        return parse_week(label, tz)
    except BadWeek as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


async def group_health(
    session: AsyncSession, runtime: Runtime, group: Group, week: Week
) -> HealthOut:
    goals = playbook_for(runtime.playbook_set, group).health
    report = figures(await week_facts(session, group.chat_id, week, goals), goals)
    return HealthOut(
        **report.model_dump(),
        chat_id=group.chat_id,
        name=group.name or group.label,
        week=week.label,
        start=week.start,
        end=week.end,
    )


@router.get("/groups/{chat_id}/health", response_model=HealthOut)
async def get_group_health(
    chat_id: str, runtime: RuntimeDep, session: SessionDep, week: WeekQuery = None
) -> HealthOut:
    """Active rate, member-to-member rounds, who answers questions, the role pyramid,
    size against the cap, growth and leads for one ISO week, with their goal lines."""
    chosen = chosen_week(runtime, week)
    return await group_health(session, runtime, await known_group(session, chat_id), chosen)


@router.get("/health", response_model=HealthOverview)
async def get_health_overview(
    runtime: RuntimeDep, session: SessionDep, week: WeekQuery = None
) -> HealthOverview:
    """The same figures for every group the bot knows, weakest first."""
    chosen = chosen_week(runtime, week)
    groups = (await session.execute(select(Group).order_by(Group.chat_id))).scalars().all()
    reports = [await group_health(session, runtime, group, chosen) for group in groups]
    reports.sort(key=lambda r: (-len(r.below_goal), r.chat_id))
    return HealthOverview(week=chosen.label, groups=reports)
