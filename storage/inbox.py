"""The durable inbox: callbacks are written here before WeCom gets `success`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import heads
from storage.claim import claim_ids, claimable, columns, release_dead_claims, renew_claim
from storage.db import insert_for
from storage.models import InboxItem

TABLE = cast(Table, InboxItem.__table__)
# Core columns for the statements the worker runs on every batch (storage/claim.py).
COLS = columns(InboxItem)


@dataclass(frozen=True)
class NewInboxRow:
    source: str
    dedup_key: str
    raw: str
    event_type: str
    event: dict[str, Any] | None
    chat_id: str | None
    status: str  # "pending", or "ignored" for what nothing handles


def row_values(row: NewInboxRow, now: datetime) -> dict[str, Any]:
    """The column values of a new inbox row: every way of appending rows uses these
    (this module's `insert_many`, storage/inbox_append.py)."""
    return {
        "source": row.source,
        "dedup_key": row.dedup_key,
        "raw": row.raw,
        "event_type": row.event_type,
        "event": row.event,
        "chat_id": row.chat_id,
        "status": row.status,
        "attempts": 0,
        "next_attempt_at": now,
        "received_at": now,
        # An event outside any chat has no order to keep: it is its own head.
        "is_head": row.status == "pending" and row.chat_id is None,
    }


async def insert_many(
    session: AsyncSession, rows: Sequence[NewInboxRow], *, now: datetime
) -> set[str]:
    """INSERT … ON CONFLICT DO NOTHING on the dedup keys, in one statement; returns the
    dedup keys this call stored (the others were already there)."""
    if not rows:
        return set()
    values = [row_values(row, now) for row in rows]
    # One constant statement run with many parameter sets: compiled once and cached,
    # sent as multi-row INSERTs ("insertmanyvalues"); a VALUES list built per batch
    # would be compiled again for every batch size.
    stmt = (
        insert_for(session)(TABLE)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(COLS.dedup_key, COLS.chat_id)
    )
    connection = await session.connection()
    result = await connection.execute(stmt, values)
    stored = result.all()
    await heads.settle(session, heads.INBOX, {chat for _key, chat in stored})
    return {key for key, _chat in stored}


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
    """One row, once per dedup key; True when this call stored it."""
    row = NewInboxRow(source, dedup_key, raw, event_type, event, chat_id, status)
    return bool(await insert_many(session, [row], now=now))


def _claimable(now: datetime) -> Any:
    return claimable(InboxItem, held_status="processing", now=now)


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    token: str,
    run_chats: int = 8,
) -> list[int]:
    """Claim due heads (one per chat), then, while the batch has room, the run of
    rows waiting behind the first `run_chats` of them, so a busy chat drains in
    batches too. Returned in id order, which is each chat's order."""
    values = {
        "status": "processing",
        "locked_until": now + lease,
        "claimed_by": token,
        "attempts": COLS.attempts + 1,
    }
    head_ids = await claim_ids(
        session,
        InboxItem,
        and_(COLS.is_head, _claimable(now)),
        [COLS.id],
        limit,
        values,
    )
    claimed = list(head_ids)
    if not head_ids or len(claimed) >= limit:
        return claimed
    chats = await session.execute(
        select(COLS.id, COLS.chat_id)
        .where(COLS.id.in_(head_ids), COLS.chat_id.is_not(None))
        .order_by(COLS.id)
        .limit(run_chats)
    )
    for head_id, chat_id in chats.all():
        room = limit - len(claimed)
        if room <= 0 or chat_id is None:
            break
        run = await _run_behind(session, head_id, chat_id, now=now, limit=room)
        if not run:
            continue
        got = set(
            await claim_ids(
                session, InboxItem, and_(COLS.id.in_(run), _claimable(now)), [], room, values
            )
        )
        # Only an unbroken run behind the head keeps the chat's order.
        prefix: list[int] = []
        for item_id in run:
            if item_id not in got:
                break
            prefix.append(item_id)
        await release(session, sorted(got - set(prefix)), token=token)
        claimed.extend(prefix)
    return sorted(claimed)


async def _run_behind(
    session: AsyncSession, head_id: int, chat_id: str, *, now: datetime, limit: int
) -> list[int]:
    """The chat's rows right behind its head, up to the first one not claimable (a
    retry waiting, or a row another worker still holds): order is never skipped."""
    # One ordered index range per status ((chat_id, status, id)): an IN over both
    # statuses would make the database read and sort the whole backlog.
    found: list[Any] = []
    for status in heads.INBOX.unfinished:
        rows = await session.execute(
            select(COLS.id, COLS.status, COLS.next_attempt_at, COLS.locked_until)
            .where(COLS.chat_id == chat_id, COLS.status == status, COLS.id > head_id)
            .order_by(COLS.id)
            .limit(limit)
        )
        found.extend(rows.all())
    found.sort()
    run: list[int] = []
    for item_id, status, next_attempt_at, locked_until in found[:limit]:
        free = (status == "pending" and next_attempt_at <= now) or (
            status == "processing" and locked_until is not None and locked_until < now
        )
        if not free:
            break
        run.append(item_id)
    return run


async def renew(
    session: AsyncSession, item_id: int, *, token: str, now: datetime, lease: timedelta
) -> bool:
    return await renew_claim(
        session, InboxItem, item_id, held_status="processing", token=token, now=now, lease=lease
    )


FINISHED = ("done", "failed", "ignored")


async def mark_many(
    session: AsyncSession,
    item_ids: Sequence[int],
    *,
    status: str,
    now: datetime,
    error: str | None = None,
    retry_at: datetime | None = None,
    token: str | None = None,
) -> list[int]:
    """Set the outcome of rows; with `token`, only those that claim still holds.
    Returns the ids changed; the chats' heads move on in the same transaction."""
    if not item_ids:
        return []
    values: dict[str, Any] = {
        "status": status,
        "locked_until": None,
        "claimed_by": None,
        "last_error": error,
    }
    if status in FINISHED:
        values["processed_at"] = now
        values["is_head"] = False
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    guard = [] if token is None else [COLS.claimed_by == token]
    result = await session.execute(
        update(TABLE)
        .where(COLS.id.in_(list(item_ids)), *guard)
        .values(**values)
        .returning(COLS.id, COLS.chat_id)
    )
    changed = result.all()
    if status in FINISHED:
        await heads.settle(session, heads.INBOX, {chat for _id, chat in changed})
    return [item_id for item_id, _chat in changed]


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
    """Set one row's outcome; with `token`, only if that claim still holds the row."""
    changed = await mark_many(
        session, [item_id], status=status, now=now, error=error, retry_at=retry_at, token=token
    )
    return bool(changed)


async def release(session: AsyncSession, item_ids: Sequence[int], *, token: str) -> None:
    """Give back claimed rows untouched (they wait behind a row that failed): the
    claim did not count as an attempt."""
    if not item_ids:
        return
    await session.execute(
        update(TABLE)
        .where(COLS.id.in_(list(item_ids)), COLS.claimed_by == token)
        .values(status="pending", locked_until=None, claimed_by=None, attempts=COLS.attempts - 1)
    )


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(InboxItem.status, func.count()).group_by(InboxItem.status))
    return {status: count for status, count in rows}


async def release_leases(
    session: AsyncSession, *, holder_is_gone: Callable[[str | None], bool]
) -> int:
    return await release_dead_claims(
        session, InboxItem, held_status="processing", holder_is_gone=holder_is_gone
    )
