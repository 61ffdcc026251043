"""Claiming due rows so that replicas never take the same one.

Two statements in the caller's transaction: a SELECT of candidates (`FOR UPDATE
SKIP LOCKED` on PostgreSQL, so replicas take disjoint rows), then an UPDATE of
exactly those ids that re-checks the condition and RETURNs what it changed.
(A single UPDATE … WHERE id IN (SELECT … LIMIT n SKIP LOCKED) is not safe on
PostgreSQL: the planner may rescan the sub-select and claim more than n rows.)
SQLite has one writer at a time; the re-checked condition keeps it exact there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession


def columns(model: Any) -> Any:
    """The model's table columns. Statements over these are Core statements: they skip
    the ORM's per-row loading and bulk-update bookkeeping, which cost more than the
    SQL itself in the statements the inbox worker and the dispatcher run for every
    batch (measured). Callers build their extra conditions from these too: one ORM
    attribute anywhere makes the whole statement an ORM one again."""
    return model.__table__.c


def claimable(model: Any, *, held_status: str, now: datetime) -> ColumnElement[bool]:
    """Rows a claim may take: waiting and due, or held by a claim whose lease ran out."""
    c = columns(model)
    return or_(
        and_(c.status == "pending", c.next_attempt_at <= now),
        and_(c.status == held_status, c.locked_until < now),
    )


async def claim_ids(
    session: AsyncSession,
    model: Any,
    condition: ColumnElement[bool],
    order_by: Sequence[Any],
    limit: int,
    values: dict[str, Any],
) -> list[int]:
    c = columns(model)
    candidates = (
        select(c.id)
        .where(condition)
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(candidates)).scalars().all())
    if not ids:
        return []
    stmt = update(model.__table__).where(c.id.in_(ids), condition).values(**values).returning(c.id)
    result = await session.execute(stmt)
    return sorted(result.scalars().all())


async def renew_claim(
    session: AsyncSession,
    model: Any,
    item_id: int,
    *,
    held_status: str,
    token: str,
    now: datetime,
    lease: timedelta,
) -> bool:
    """Extend our lease right before working on a row; False when it is no longer ours
    (our lease ran out while earlier rows of the batch were worked on, and another
    worker claimed it)."""
    result = await session.execute(
        update(model)
        .where(model.id == item_id, model.status == held_status, model.claimed_by == token)
        .values(locked_until=now + lease)
        .returning(model.id)
    )
    return result.scalar_one_or_none() is not None


async def release_dead_claims(
    session: AsyncSession,
    model: Any,
    *,
    held_status: str,
    holder_is_gone: Callable[[str | None], bool],
) -> int:
    """Give back the claims whose holder process is gone (SQLite: one machine, so the
    check is exact). Claims of a live process, such as a running `tick`, stay."""
    held = await session.execute(
        select(model.claimed_by).where(model.status == held_status).distinct()
    )
    gone = [token for token in held.scalars() if holder_is_gone(token)]
    if not gone:
        return 0
    stale: ColumnElement[bool] = model.claimed_by.in_([t for t in gone if t is not None])
    if None in gone:
        stale = or_(stale, model.claimed_by.is_(None))
    result = await session.execute(
        update(model)
        .where(model.status == held_status, stale)
        .values(status="pending", locked_until=None, claimed_by=None)
        .returning(model.id)
    )
    return len(result.scalars().all())
