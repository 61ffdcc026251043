"""Is a queued message still wanted? Asked by the dispatcher right before a send.

A touch or a private welcome waits in the outbox (rate limits, retries); if the
member left or said 退订 meanwhile, sending it would be the spam the product
promises not to be. The answer is a reason to cancel, or None to send.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.members import get_membership
from storage.models import OutboxItem

# Origins that 退订 stops: the sequence. A private welcome answers the member's own join.
STOPPED_BY_OPT_OUT = frozenset({"touch"})


async def unwanted_reason(session: AsyncSession, item: OutboxItem) -> str | None:
    if item.member_id is None or item.chat_id is None:
        return None  # a message to the whole group, not about one member
    membership = await get_membership(session, item.chat_id, item.member_id)
    if membership is None:
        # Never seen joining (in the group before the bot watched, or an internal group
        # whose joins WeCom does not report) but seen speaking: present as far as we know.
        return None
    if membership.left_at is not None:
        return "member left the group"
    if membership.opted_out and item.origin in STOPPED_BY_OPT_OUT:
        return "member opted out"
    return None
