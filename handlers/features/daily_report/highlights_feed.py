"""Where the 早报 reads yesterday's highlights: the most-discussed threads (member-to-
member replies) and the new resources, from handlers/features/highlights.py (shared
with the weekly 群刊), in the shape the template reads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from bot.config.playbooks.render import HighlightVars, ResourceVars
from handlers.features.highlights import best_threads, new_resources


async def read_highlights(
    session: AsyncSession,
    chat_id: str,
    start: datetime,
    end: datetime,
    *,
    playbook: Playbook,
    threads: int,
    resources: int,
    leave_out_item: int | None = None,
) -> tuple[list[HighlightVars], list[ResourceVars]]:
    """The best threads started in [start, end) and what became available in it;
    `leave_out_item`: a library item the 早报 shows already (its knowledge point)."""
    found = await best_threads(session, chat_id, start, end, threads, playbook=playbook)
    added = await new_resources(session, chat_id, start, end, resources + 1, playbook=playbook)
    shown_threads: list[HighlightVars] = [
        {"text": t.text, "replies": t.replies, "starter": t.starter_name} for t in found
    ]
    shown_resources: list[ResourceVars] = [
        {"title": r.title, "url": r.url}
        for r in added
        if leave_out_item is None or r.item_id != leave_out_item
    ]
    return shown_threads, shown_resources[:resources]
