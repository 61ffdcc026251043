"""Where the 早报 reads yesterday's highlights: the most-discussed threads and the new
resources (handlers/features/highlights.py, branch `digest`, once merged)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks.render import HighlightVars, ResourceVars


async def read_highlights(
    session: AsyncSession,
    chat_id: str,
    start: datetime,
    end: datetime,
    *,
    threads: int,
    resources: int,
) -> tuple[list[HighlightVars], list[ResourceVars]]:
    """Yesterday's best threads and new resources in [start, end)."""
    return [], []
