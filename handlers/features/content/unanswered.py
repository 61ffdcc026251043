"""The week's top unanswered questions (SPEC §5.4): what members asked that the
library had nothing for, grouped by normalized question, most asked first — the
content team's to-do list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import UnansweredQuestion


@dataclass(frozen=True, slots=True)
class TopQuestion:
    normalized_key: str
    count: int  # times asked in the week (by anyone, in the groups read)
    askers: int  # distinct members who asked it
    text: str  # the latest wording, as a member wrote it
    chat_ids: tuple[str, ...]
    last_asked_at: datetime


async def top_unanswered(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    chat_id: str | None,
    limit: int,
) -> list[TopQuestion]:
    where = [UnansweredQuestion.asked_at >= start, UnansweredQuestion.asked_at < end]
    if chat_id is not None:
        where.append(UnansweredQuestion.chat_id == chat_id)
    counted = (
        select(
            UnansweredQuestion.normalized_key,
            func.count().label("asked"),
            func.count(func.distinct(UnansweredQuestion.member_id)).label("askers"),
            func.max(UnansweredQuestion.asked_at).label("last"),
        )
        .where(*where)
        .group_by(UnansweredQuestion.normalized_key)
        .order_by(func.count().desc(), func.max(UnansweredQuestion.asked_at).desc())
        .limit(limit)
    )
    top = list(await session.execute(counted))
    if not top:
        return []
    keys = [row.normalized_key for row in top]
    # The latest wording and the groups of each key: one read for the page.
    latest: dict[str, tuple[datetime, str]] = {}
    chats: dict[str, set[str]] = {}
    rows = await session.execute(
        select(
            UnansweredQuestion.normalized_key,
            UnansweredQuestion.text,
            UnansweredQuestion.chat_id,
            UnansweredQuestion.asked_at,
        ).where(*where, UnansweredQuestion.normalized_key.in_(keys))
    )
    for key, text, chat, at in rows:
        chats.setdefault(key, set()).add(chat)
        if key not in latest or latest[key][0] < at:
            latest[key] = (at, text)
    return [
        TopQuestion(
            normalized_key=row.normalized_key,
            count=int(row.asked),
            askers=int(row.askers),
            text=latest[row.normalized_key][1],
            chat_ids=tuple(sorted(chats[row.normalized_key])),
            last_asked_at=latest[row.normalized_key][0],
        )
        for row in top
    ]
