"""The one place the 早报 reads the demands feed (handlers/features/demands/feed.py):
the posts its day publishes, rendered by the feed's own `render_demands`, and the
`PublishDemands` that records them in the 早报's transaction.

Only the posts the 早报 lists are published: those left out (the feed's own overflow
past `demands.max_per_report`, or the last ones when the text had to be trimmed to
fit the channel) stay unpublished, so the next day's 早报 offers them again, as the
block's 「还有 N 条在排队」 says.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from handlers.core.actions import Action
from handlers.features.daily_report.blocks import DemandsBlock, DemandsRenderer
from handlers.features.demands.feed import PublishDemands, demands_for_report, render_demands
from storage.models import Group


def renderer(kinds: Sequence[str]) -> DemandsRenderer:
    """The feed's block, its kinds in the playbook's order."""

    def render(entries: Sequence[Any], overflow: int) -> str:
        return render_demands(entries, overflow, kinds=kinds)

    return render


async def read_demands(
    session: AsyncSession, group: Group, playbook: Playbook, report_date: date, cutoff: datetime
) -> DemandsBlock:
    """The demand posts for this 早报: approved before `cutoff` (the instant it is made)
    and not published in the group by another day's 早报."""
    feed = await demands_for_report(session, group, playbook, report_date, cutoff)
    return DemandsBlock(tuple(feed), feed.ids, feed.overflow, renderer(playbook.demands.kinds))


def publish_actions(
    chat_id: str, report_date: date, block: DemandsBlock, shown: int | None
) -> list[Action]:
    """Publish the posts the 早报 lists (`shown`: how many, None for all), in its
    transaction, so they never appear in the group again."""
    ids = block.published_ids(shown)
    return [PublishDemands(chat_id, report_date, ids)] if ids else []
