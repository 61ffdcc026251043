"""THE ONE PLACE the 早报 reads the demands feed (branch `demands`,
handlers/features/demands/feed.py), so wiring it in is one edit here:

    entries = await demands_for_report(session, group, playbook, report_date, cutoff)
    return DemandsBlock(tuple(entries), tuple(e.id for e in entries), render_demands)

and `publish_actions` returns `[PublishDemands(chat_id, report_date, block.ids)]`.
Until the feed is merged the 早报 carries no demand posts (an empty block: the
default text leaves 【今日需求】 out).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from handlers.core.actions import Action
from handlers.features.daily_report.blocks import DemandsBlock
from storage.models import Group


async def read_demands(
    session: AsyncSession, group: Group, playbook: Playbook, report_date: date, cutoff: datetime
) -> DemandsBlock:
    """The demand posts collected for this 早报 (none until the feed is merged)."""
    return DemandsBlock()


def publish_actions(chat_id: str, report_date: date, block: DemandsBlock) -> list[Action]:
    """What marks the posts as published by this 早报, in its transaction: every post
    the day's block counted (`block.ids`), listed or summed up in 「另有 N 条」 when the
    text was trimmed to fit."""
    return []
