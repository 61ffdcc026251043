"""The durable inbox: callbacks are written here before WeCom gets `success`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.claim import claim_ids
from storage.models import InboxItem


async def insert_once(
    session: AsyncSession,
    *,
    source: str,
    dedup_key: str,
    raw: str,
    event_type: str,
    event: dict[str, Any] | None,
    chat_id: str | None,
    status: str,
    now: datetime,
) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on the dedup key; True when this call stored it."""
    values = {
        "source": source,
        "dedup_key": dedup_key,
        "raw": raw,
        "event_type": event_type,
        "event": event,
        "chat_id": chat_id,
        "status": status,
        "attempts": 0,
        "next_attempt_at": now,
        "received_at": now,
    }
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(InboxItem).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"])
    result = await session.execute(stmt.returning(InboxItem.id))
    return result.scalar_one_or_none() is not None


def _due(now: datetime) -> Any:
    return or_(
        and_(InboxItem.status == "pending", InboxItem.next_attempt_at <= now),
        and_(InboxItem.status == "processing", InboxItem.locked_until < now),
    )


async def claim(session: AsyncSession, *, now: datetime, lease: timedelta, limit: int) -> list[int]:
    return await claim_ids(
        session,
        InboxItem,
        _due(now),
        [InboxItem.id],
        limit,
        {
            "status": "processing",
            "locked_until": now + lease,
            "attempts": InboxItem.attempts + 1,
        },
    )


async def mark(
    session: AsyncSession,
    item_id: int,
    *,
    status: str,
    now: datetime,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "locked_until": None, "last_error": error}
    if status in ("done", "failed", "ignored"):
        values["processed_at"] = now
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    await session.execute(update(InboxItem).where(InboxItem.id == item_id).values(**values))


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(InboxItem.status, func.count()).group_by(InboxItem.status))
    return {status: count for status, count in rows}


async def release_leases(session: AsyncSession) -> int:
    """Give back every claim; only safe when no other process can hold one (SQLite)."""
    result = await session.execute(
        update(InboxItem)
        .where(InboxItem.status == "processing")
        .values(status="pending", locked_until=None)
        .returning(InboxItem.id)
    )
    return len(result.scalars().all())
