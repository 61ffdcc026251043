"""The archive cursor and the pull lease (table archive_cursor), as plain functions.

Exactly one replica pulls at a time: `acquire` takes the lease when it is free,
already ours, or expired; every stored page `advance`s the cursor and renews the
lease under the holder's token. A wake-up that finds the lease taken calls
`request`, and `release` refuses to let go while requests came in after the
holder last looked, so the holder pulls once more instead of the wake-up being lost.
Every statement is an UPDATE … RETURNING on one row: on PostgreSQL a concurrent
taker waits for the row lock and re-checks the condition, so two cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import insert_for
from storage.models import ArchiveCursor

T = ArchiveCursor.__table__.c


@dataclass(frozen=True)
class Held:
    seq: int  # the cursor: the last seq stored
    requests: int  # wake-ups counted so far, for `release`


async def _ensure_row(session: AsyncSession, name: str, now: datetime) -> None:
    insert = insert_for(session)
    await session.execute(
        insert(ArchiveCursor)
        .values(name=name, seq=0, requests=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )


async def acquire(
    session: AsyncSession, name: str, *, token: str, now: datetime, lease: timedelta
) -> Held | None:
    """Take (or renew) the lease; None while another holder's lease runs."""
    await _ensure_row(session, name, now)
    row = (
        await session.execute(
            update(ArchiveCursor)
            .where(
                T.name == name,
                or_(T.holder.is_(None), T.holder == token, T.lease_until < now),
            )
            .values(holder=token, lease_until=now + lease, updated_at=now)
            .returning(T.seq, T.requests)
        )
    ).first()
    return Held(seq=int(row[0]), requests=int(row[1])) if row is not None else None


async def request(session: AsyncSession, name: str, *, now: datetime) -> None:
    """Ask the holder for one more pass (a wake-up that found the lease taken)."""
    await _ensure_row(session, name, now)
    await session.execute(
        update(ArchiveCursor).where(T.name == name).values(requests=T.requests + 1)
    )


async def advance(
    session: AsyncSession,
    name: str,
    *,
    token: str,
    seq: int,
    now: datetime,
    lease: timedelta,
) -> bool:
    """Move the cursor to `seq` (never back) and renew the lease; False when the
    lease is no longer ours (another replica took it over)."""
    row = (
        await session.execute(
            update(ArchiveCursor)
            .where(T.name == name, T.holder == token)
            .values(
                seq=case((T.seq < seq, seq), else_=T.seq),
                lease_until=now + lease,
                updated_at=now,
            )
            .returning(T.seq)
        )
    ).first()
    return row is not None


async def release(session: AsyncSession, name: str, *, token: str, seen: int) -> int | None:
    """Give the lease up, unless wake-ups were requested since `seen`: then keep it
    and return the new request count (the holder pulls again)."""
    released = (
        await session.execute(
            update(ArchiveCursor)
            .where(T.name == name, T.holder == token, T.requests == seen)
            .values(holder=None, lease_until=None)
            .returning(T.name)
        )
    ).first()
    if released is not None:
        return None
    row = (await session.execute(select(T.holder, T.requests).where(T.name == name))).first()
    if row is None or row[0] != token:
        return None  # not ours any more: the new holder serves the requests
    return int(row[1])


async def give_up(session: AsyncSession, name: str, *, token: str) -> None:
    """Release the lease whatever was requested (after a failure, at shutdown)."""
    await session.execute(
        update(ArchiveCursor)
        .where(T.name == name, T.holder == token)
        .values(holder=None, lease_until=None)
    )


async def release_dead_holder(
    session: AsyncSession, name: str, *, holder_is_gone: Callable[[str | None], bool]
) -> bool:
    """SQLite start-up: a lease held by a process that no longer runs is free now."""
    row = (await session.execute(select(T.holder).where(T.name == name))).first()
    if row is None or row[0] is None or not holder_is_gone(row[0]):
        return False
    await session.execute(
        update(ArchiveCursor)
        .where(T.name == name, T.holder == row[0])
        .values(holder=None, lease_until=None)
    )
    return True


async def cursor(session: AsyncSession, name: str) -> int:
    """The last seq stored (0 before the first pull)."""
    seq = await session.scalar(select(T.seq).where(T.name == name))
    return int(seq or 0)
