"""Claiming due rows so that replicas never take the same one.

Two statements in the caller's transaction: a SELECT of candidates (`FOR UPDATE
SKIP LOCKED` on PostgreSQL, so replicas take disjoint rows), then an UPDATE of
exactly those ids that re-checks the condition and RETURNs what it changed.
(A single UPDATE … WHERE id IN (SELECT … LIMIT n SKIP LOCKED) is not safe on
PostgreSQL: the planner may rescan the sub-select and claim more than n rows.)
SQLite has one writer at a time; the re-checked condition keeps it exact there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


async def claim_ids(
    session: AsyncSession,
    model: Any,
    condition: ColumnElement[bool],
    order_by: Sequence[InstrumentedAttribute[Any]],
    limit: int,
    values: dict[str, Any],
) -> list[int]:
    candidates = (
        select(model.id)
        .where(condition)
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(candidates)).scalars().all())
    if not ids:
        return []
    stmt = (
        update(model)
        .where(model.id.in_(ids), condition)
        .values(**values)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return sorted(result.scalars().all())
