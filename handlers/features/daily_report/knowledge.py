"""The knowledge-point queue of a group: content-library items carrying the playbook's
`knowledge_tag` that apply to the group, offered one a day, never again in that group
until every one was used (blocks.next_knowledge_point). A use is recorded with the
早报 that carried it, in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.core.executor import Executor
from handlers.features.content.library import ContentEntry, applies_to, entry_of, load_enabled
from handlers.features.daily_report.blocks import next_knowledge_point
from storage.db import insert_for
from storage.models import ContentItem, Group, KnowledgePointUse


@dataclass(frozen=True)
class RecordKnowledgeUse(Action):
    chat_id: str
    item_id: int
    report_date: date
    at: datetime


async def apply_use(action: RecordKnowledgeUse, ctx: Context) -> None:
    table = cast(Table, KnowledgePointUse.__table__)
    await ctx.session.execute(
        insert_for(ctx.session)(table)
        .values(
            chat_id=action.chat_id,
            item_id=action.item_id,
            report_date=action.report_date,
            created_at=action.at,
        )
        .on_conflict_do_nothing(index_elements=["chat_id", "report_date"])
    )


async def recorded_use(session: AsyncSession, chat_id: str, day: date) -> int | None:
    item: int | None = await session.scalar(
        select(KnowledgePointUse.item_id).where(
            KnowledgePointUse.chat_id == chat_id, KnowledgePointUse.report_date == day
        )
    )
    return item


async def last_uses(session: AsyncSession, chat_id: str, before: date) -> dict[int, date]:
    rows = await session.execute(
        select(KnowledgePointUse.item_id, func.max(KnowledgePointUse.report_date))
        .where(KnowledgePointUse.chat_id == chat_id, KnowledgePointUse.report_date < before)
        .group_by(KnowledgePointUse.item_id)
    )
    return {int(item): used for item, used in rows.all()}


async def knowledge_for(
    session: AsyncSession, group: Group, tag: str, day: date
) -> ContentEntry | None:
    """The day's knowledge point: the one its 早报 already carried, else the queue's next.
    Reads only, so a preview consumes nothing."""
    candidates = [
        entry
        for entry in await load_enabled(session, today=day, tag=tag)
        if applies_to(entry.scope, group.chat_id, group.tags or [])
    ]
    recorded = await recorded_use(session, group.chat_id, day)
    if recorded is not None:
        found = next((entry for entry in candidates if entry.id == recorded), None)
        if found is None:  # disabled or re-tagged since: still what was sent that day
            item = await session.get(ContentItem, recorded)
            found = entry_of(item) if item is not None else None
        return found
    return next_knowledge_point(candidates, await last_uses(session, group.chat_id, day))


def register(executor: Executor) -> None:
    executor.register(RecordKnowledgeUse, apply_use)
