"""Leases on services only one replica may run (table service_leases), as plain functions.

`acquire` takes the lease when it is free, already ours, or expired; `renew` extends
it under the holder's token and says when it is no longer ours; `release` lets go.
Every statement is an UPDATE … RETURNING on one row: on PostgreSQL a concurrent taker
waits for the row lock and re-checks the condition, so two replicas cannot both win.
(The archive puller keeps its lease beside its cursor, storage/archive_cursor.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert_for
from storage.models import ServiceLease

T = ServiceLease.__table__.c


async def acquire(
    session: AsyncSession, name: str, *, token: str, now: datetime, lease: timedelta
) -> bool:
    """Take (or renew) the lease; False while another holder's lease runs."""
    await session.execute(
        insert_for(session)(ServiceLease)
        .values(name=name, holder=None, lease_until=None, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    row = (
        await session.execute(
            update(ServiceLease)
            .where(
                T.name == name,
                or_(T.holder.is_(None), T.holder == token, T.lease_until < now),
            )
            .values(holder=token, lease_until=now + lease, updated_at=now)
            .returning(T.name)
        )
    ).first()
    return row is not None


async def renew(
    session: AsyncSession, name: str, *, token: str, now: datetime, lease: timedelta
) -> bool:
    """Extend our lease; False when it is not ours any more (it expired and another
    replica took it)."""
    row = (
        await session.execute(
            update(ServiceLease)
            .where(T.name == name, T.holder == token)
            .values(lease_until=now + lease, updated_at=now)
            .returning(T.name)
        )
    ).first()
    return row is not None


async def release(session: AsyncSession, name: str, *, token: str) -> None:
    await session.execute(
        update(ServiceLease)
        .where(T.name == name, T.holder == token)
        .values(holder=None, lease_until=None)
    )


async def holder(session: AsyncSession, name: str) -> str | None:
    value: str | None = await session.scalar(select(T.holder).where(T.name == name))
    return value


async def release_dead_holder(
    session: AsyncSession, name: str, *, holder_is_gone: Callable[[str | None], bool]
) -> bool:
    """SQLite start-up: a lease held by a process that no longer runs is free now."""
    current = await holder(session, name)
    if current is None or not holder_is_gone(current):
        return False
    await session.execute(
        update(ServiceLease)
        .where(T.name == name, T.holder == current)
        .values(holder=None, lease_until=None)
    )
    return True
