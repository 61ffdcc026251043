"""A member asks 「我的积分」 in the group: one short reply with their points and level.

Only the whole message counts (after any @mentions), so talking *about* points does
not trigger it; replies are keyed per member and time slot, so asking again within
`query_interval_minutes` gets nothing (a reply with that key is already queued). Where the
channel cannot post at once (customer groups) the bot stays quiet: a member's own
question is not worth an operator's task.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta

from sqlalchemy import func, select

from handlers.channels.registry import group_channel
from handlers.core.actions import Action, QueueGroupText
from handlers.core.context import Context
from handlers.core.events import Event, Message
from handlers.features.points.ladder import level_of
from handlers.features.points.ledger import balance, local_day_bounds, points_group
from handlers.features.roles import assigned_roles
from handlers.features.rules.texts import member_name
from storage.members import get_membership
from storage.models import OutboxItem, PointsEntry

LEADING_MENTIONS = re.compile(r"^(@\S+\s*)+")


def is_query(text: str, words: tuple[str, ...]) -> bool:
    bare = LEADING_MENTIONS.sub("", unicodedata.normalize("NFKC", text).strip()).strip()
    return bare.rstrip("?？!！。.") in words


def query_reply(name: str, *, total: int, month: int, level: str, roles: list[str]) -> str:
    titles = "、".join([level, *roles]) if roles else level
    return f"@{name} 你在本群的积分是 {total} 分（本月 {month} 分），当前等级：{titles}。"


async def on_message(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, Message)
    if event.msgtype not in ("text", "mixed"):
        return []
    found = await points_group(event, ctx)
    if found is None or not is_query(event.text, found.points.query_words):
        return []
    assert event.chat_id
    group, playbook, points = found.group, found.playbook, found.points
    if not group_channel(group.channel_type).capabilities.immediate:
        return []
    chat, member = event.chat_id, event.sender
    interval = timedelta(minutes=points.query_interval_minutes)
    slot = int(event.occurred_at.timestamp() // interval.total_seconds())
    key = f"points_query:{chat}:{member}:{slot}"[:200]
    if await answered_already(ctx, key):
        return []
    month_start, _ = local_day_bounds(
        event.occurred_at.astimezone(ctx.tz).date().replace(day=1), ctx.tz
    )
    month = await ctx.session.scalar(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.chat_id == chat,
            PointsEntry.member_id == member,
            PointsEntry.created_at >= month_start,
        )
    )
    membership = await get_membership(ctx.session, chat, member)
    text = query_reply(
        member_name(membership, playbook),
        total=await balance(ctx.session, chat, member),
        month=int(month or 0),
        level=await level_of(ctx.session, chat, member),
        roles=await assigned_roles(ctx.session, chat, member),
    )
    return [QueueGroupText(chat, text, "points_query", key=key, member_id=member)]


async def answered_already(ctx: Context, key: str) -> bool:
    """A reply in this slot was queued before (or earlier in this batch)."""
    memo = ("points_query", key)
    if memo in ctx.memo.extra:
        return True
    ctx.memo.extra[memo] = True
    found = await ctx.session.scalar(select(OutboxItem.id).where(OutboxItem.dedup_key == key))
    return found is not None
