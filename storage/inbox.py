"""The durable inbox: callbacks are written here before WeCom gets `success`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.claim import claim_ids, release_dead_claims, renew_claim
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
    earlier = aliased(InboxItem)
    # A chat's events are handled in the order they arrived (a join before the
    # leave that follows it), even when an earlier one is waiting for a retry.
    no_older_unfinished = ~(
        select(earlier.id)
        .where(
            earlier.chat_id == InboxItem.chat_id,
            earlier.id < InboxItem.id,
            earlier.status.in_(("pending", "processing")),
        )
        .exists()
    )
    return and_(
        or_(
            and_(InboxItem.status == "pending", InboxItem.next_attempt_at <= now),
            and_(InboxItem.status == "processing", InboxItem.locked_until < now),
        ),
        or_(InboxItem.chat_id.is_(None), no_older_unfinished),
    )


async def claim(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int, token: str
) -> list[int]:
    return await claim_ids(
        session,
        InboxItem,
        _due(now),
        [InboxItem.id],
        limit,
        {
            "status": "processing",
            "locked_until": now + lease,
            "claimed_by": token,
            "attempts": InboxItem.attempts + 1,
        },
    )


async def renew(
    session: AsyncSession, item_id: int, *, token: str, now: datetime, lease: timedelta
) -> bool:
    return await renew_claim(
        session, InboxItem, item_id, held_status="processing", token=token, now=now, lease=lease
    )


async def mark(
    session: AsyncSession,
    item_id: int,
    *,
    status: str,
    now: datetime,
    error: str | None = None,
    retry_at: datetime | None = None,
    token: str | None = None,
) -> bool:
    """Set the outcome; with `token`, only if that claim still holds the row."""
    values: dict[str, Any] = {
        "status": status,
        "locked_until": None,
        "claimed_by": None,
        "last_error": error,
    }
    if status in ("done", "failed", "ignored"):
        values["processed_at"] = now
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    guard = [] if token is None else [InboxItem.claimed_by == token]
    result = await session.execute(
        update(InboxItem)
        .where(InboxItem.id == item_id, *guard)
        .values(**values)
        .returning(InboxItem.id)
    )
    return result.scalar_one_or_none() is not None


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(InboxItem.status, func.count()).group_by(InboxItem.status))
    return {status: count for status, count in rows}


async def release_leases(
    session: AsyncSession, *, holder_is_gone: Callable[[str | None], bool]
) -> int:
    return await release_dead_claims(
        session, InboxItem, held_status="processing", holder_is_gone=holder_is_gone
    )
