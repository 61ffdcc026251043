"""Read everything one group's 早报 of one day may say (reads only: a preview
consumes nothing)."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from bot.config.playbooks.daily_report_section import DailyReportSection
from bot.config.playbooks.render import LeaderVars
from handlers.features.daily_report import demands_feed, highlights_feed
from handlers.features.daily_report.blocks import (
    greeting_for,
    knowledge_vars,
    leaderboard_window,
    top_members,
    yesterday_window,
)
from handlers.features.daily_report.compose import Blocks
from handlers.features.daily_report.knowledge import knowledge_for
from handlers.features.points.standings import contributors
from handlers.features.welcome import group_vars
from storage.models import Group

# Standings read for the snippet: room for the hosts who may rank above the members.
HOST_ROOM = 50


async def read_blocks(
    session: AsyncSession,
    group: Group,
    playbook: Playbook,
    section: DailyReportSection,
    day: date,
    *,
    at: datetime,
    tz: tzinfo,
) -> Blocks:
    """The blocks of `day`'s 早报; `at` is the instant it is made (demand posts up to it)."""
    knowledge = await knowledge_for(session, group, section.knowledge_tag, day)
    demands = await demands_feed.read_demands(session, group, playbook, day, at)
    start, end = yesterday_window(day, tz)
    highlights, resources = await highlights_feed.read_highlights(
        session,
        group.chat_id,
        start,
        end,
        playbook=playbook,
        threads=section.threads_top,
        resources=section.resources_top,
        leave_out_item=knowledge.id if knowledge is not None else None,
    )
    leaderboard: list[LeaderVars] = []
    month_start, month_end, month = leaderboard_window(day, tz)
    if section.leaderboard_top:
        found = await contributors(
            session,
            group.chat_id,
            start=month_start,
            end=month_end,
            limit=section.leaderboard_top + HOST_ROOM,
        )
        leaderboard = top_members(
            found.standings,
            excluded=found.excluded,
            names=found.names,
            top=section.leaderboard_top,
            neutral_name=playbook.neutral_name,
        )
    return Blocks(
        day=day,
        greeting=greeting_for(day, section.at),
        group=group_vars(group),
        knowledge=knowledge_vars(knowledge) if knowledge is not None else None,
        knowledge_item_id=knowledge.id if knowledge is not None else None,
        demands=demands,
        highlights=tuple(highlights[: section.threads_top]),
        new_resources=tuple(resources[: section.resources_top]),
        leaderboard=tuple(leaderboard),
        leaderboard_month=month,
        sponsored=section.sponsored_on(day),
    )
