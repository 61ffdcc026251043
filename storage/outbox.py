"""The transactional outbox: every outbound message is a row before it is a request."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import heads
from storage.claim import claim_ids, claimable, columns, release_dead_claims, renew_claim
from storage.db import dialect_of, insert_for
from storage.models import OutboxItem, RateEvent, RatePause

ACTIVE = ("pending", "sending")


@dataclass(frozen=True)
class NewMessage:
    channel: str
    target: str
    payload: dict[str, Any]
    rate_key: str
    order_key: str
    origin: str = ""
    chat_id: str | None = None
    dedup_key: str | None = None
    member_id: str | None = None  # the member it is about: cancelled if they leave


async def enqueue(session: AsyncSession, message: NewMessage, *, now: datetime) -> OutboxItem:
    """Add a row in the caller's transaction, so it commits with the state change."""
    item = OutboxItem(
        channel=message.channel,
        target=message.target,
        payload=message.payload,
        rate_key=message.rate_key,
        order_key=message.order_key,
        origin=message.origin,
        chat_id=message.chat_id,
        dedup_key=message.dedup_key,
        member_id=message.member_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(item)
    await session.flush()
    await heads.settle(session, heads.OUTBOX, [item.order_key])
    return item


# Core columns for the statements the dispatcher runs on every batch (storage/claim.py).
COLS = columns(OutboxItem)


def _due(now: datetime, skip_channels: Collection[str] = ()) -> Any:
    # Messages to one destination go out in the order they were queued: only the
    # oldest unsent row of each order key (its head) may be claimed.
    due = and_(COLS.is_head, claimable(OutboxItem, held_status="sending", now=now))
    return and_(due, COLS.channel.not_in(list(skip_channels))) if skip_channels else due


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    token: str,
    skip_channels: Collection[str] = (),
) -> list[int]:
    """`skip_channels`: rows this claimer cannot send (a connection it does not hold)."""
    return await claim_ids(
        session,
        OutboxItem,
        _due(now, skip_channels),
        [COLS.id],
        limit,
        {"status": "sending", "locked_until": now + lease, "claimed_by": token},
    )


async def renew(
    session: AsyncSession, item_id: int, *, token: str, now: datetime, lease: timedelta
) -> bool:
    return await renew_claim(
        session, OutboxItem, item_id, held_status="sending", token=token, now=now, lease=lease
    )


async def statuses(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(OutboxItem.id, OutboxItem.status).where(OutboxItem.id.in_(ids))
    )
    return {item_id: status for item_id, status in rows}


async def next_due_at(
    session: AsyncSession, *, skip_channels: Collection[str] = ()
) -> datetime | None:
    """When the next row can be claimed: rows waiting behind an older unsent row of the
    same destination do not count (they go when that one does), nor rows of channels
    the caller cannot send."""
    conditions = [OutboxItem.is_head, OutboxItem.status == "pending"]
    if skip_channels:
        conditions.append(OutboxItem.channel.not_in(list(skip_channels)))
    result = await session.execute(select(func.min(OutboxItem.next_attempt_at)).where(*conditions))
    value: datetime | None = result.scalar_one_or_none()
    return value


async def mark_sent(
    session: AsyncSession,
    item_id: int,
    *,
    now: datetime,
    result: dict[str, Any] | None,
    token: str | None = None,
) -> None:
    changed = await session.execute(
        update(OutboxItem)
        .where(
            OutboxItem.id == item_id, *([] if token is None else [OutboxItem.claimed_by == token])
        )
        .values(
            status="sent",
            sent_at=now,
            locked_until=None,
            attempts=OutboxItem.attempts + 1,
            result=result,
            last_error=None,
            is_head=False,
        )
        .returning(OutboxItem.order_key)
    )
    await heads.settle(session, heads.OUTBOX, changed.scalars().all())


async def mark_retry(
    session: AsyncSession,
    item_id: int,
    *,
    retry_at: datetime,
    error: str | None,
    error_kind: str | None,
    count_attempt: bool,
    token: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": "pending",
        "locked_until": None,
        "claimed_by": None,
        "next_attempt_at": retry_at,
    }
    if error is not None:
        values["last_error"] = error
        values["last_error_kind"] = error_kind
    if count_attempt:
        values["attempts"] = OutboxItem.attempts + 1
    guard = [] if token is None else [OutboxItem.claimed_by == token]
    await session.execute(
        update(OutboxItem).where(OutboxItem.id == item_id, *guard).values(**values)
    )


async def mark_failed(
    session: AsyncSession, item_id: int, *, error: str, error_kind: str, token: str | None = None
) -> None:
    await _end_unsent(
        session,
        item_id,
        token,
        status="failed",
        attempts=OutboxItem.attempts + 1,
        last_error=error,
        last_error_kind=error_kind,
    )


async def _end_unsent(
    session: AsyncSession, item_id: int, token: str | None, **values: Any
) -> None:
    """Give up on a row (failed, cancelled); with `token`, only if that claim holds it."""
    guard = [] if token is None else [OutboxItem.claimed_by == token]
    changed = await session.execute(
        update(OutboxItem)
        .where(OutboxItem.id == item_id, *guard)
        .values(locked_until=None, claimed_by=None, is_head=False, **values)
        .returning(OutboxItem.order_key)
    )
    await heads.settle(session, heads.OUTBOX, changed.scalars().all())


async def retry_failed(session: AsyncSession, item_id: int, *, now: datetime) -> bool:
    result = await session.execute(
        update(OutboxItem)
        .where(OutboxItem.id == item_id, OutboxItem.status.in_(("failed", "cancelled")))
        .values(status="pending", attempts=0, next_attempt_at=now, last_error=None)
        .returning(OutboxItem.order_key)
    )
    order_keys = result.scalars().all()
    # The row is older than what now heads its destination: it goes first again.
    await heads.settle(session, heads.OUTBOX, order_keys, may_have_moved_back=True)
    return bool(order_keys)


async def mark_cancelled(
    session: AsyncSession, item_id: int, *, reason: str, token: str | None = None
) -> None:
    """Not sent, on purpose: the reason is shown in the admin API (last_error)."""
    await _end_unsent(
        session,
        item_id,
        token,
        status="cancelled",
        last_error=reason,
        last_error_kind="cancelled",
    )


async def cancel_for_member(
    session: AsyncSession, *, member_id: str, chat_id: str | None, reason: str, now: datetime
) -> int:
    """Cancel what waits in the outbox about a member (rows being sent right now are
    checked again by the dispatcher before their send)."""
    conditions = [OutboxItem.member_id == member_id, OutboxItem.status == "pending"]
    if chat_id is not None:
        conditions.append(OutboxItem.chat_id == chat_id)
    result = await session.execute(
        update(OutboxItem)
        .where(*conditions)
        .values(status="cancelled", last_error=reason, last_error_kind="cancelled", is_head=False)
        .returning(OutboxItem.order_key)
    )
    order_keys = result.scalars().all()
    await heads.settle(session, heads.OUTBOX, order_keys)
    return len(order_keys)


async def wake_network_failures(session: AsyncSession, *, now: datetime) -> int:
    """On start-up, retry at once what only failed on transport: the cause is often gone."""
    result = await session.execute(
        update(OutboxItem)
        .where(
            OutboxItem.status == "pending",
            OutboxItem.next_attempt_at > now,
            OutboxItem.last_error_kind == "retry",
        )
        .values(next_attempt_at=now)
        .returning(OutboxItem.id)
    )
    return len(result.scalars().all())


# --- shared rate limiting -----------------------------------------------------------


# A rate event's `at` is the latest instant the receiver may have got that send: while
# the request is in flight, its start plus the longest a send may take; once answered,
# the answer's time (WeCom had the message before it answered).


async def nth_latest_rate_event(session: AsyncSession, rate_key: str, n: int) -> datetime | None:
    """`at` of the n-th latest send through the key (n=1: the latest); None if fewer."""
    return await session.scalar(
        select(RateEvent.at)
        .where(RateEvent.rate_key == rate_key)
        .order_by(RateEvent.at.desc())
        .offset(n - 1)
        .limit(1)
    )


async def record_rate_event(session: AsyncSession, rate_key: str, *, at: datetime) -> int:
    event = RateEvent(rate_key=rate_key, at=at)
    session.add(event)
    await session.flush()
    return event.id


async def settle_rate_event(session: AsyncSession, event_id: int, *, answered_at: datetime) -> None:
    """The send was answered: from now on it counts from the answer, not its worst case."""
    await session.execute(update(RateEvent).where(RateEvent.id == event_id).values(at=answered_at))


async def prune_rate_events(session: AsyncSession, *, before: datetime) -> None:
    await session.execute(delete(RateEvent).where(RateEvent.at < before))


async def paused_until(session: AsyncSession, *rate_keys: str, now: datetime) -> datetime | None:
    """When the latest pause over any of the keys (a target's, its API's) ends; None if none."""
    until = await session.scalar(
        select(func.max(RatePause.until)).where(
            RatePause.rate_key.in_(rate_keys), RatePause.until > now
        )
    )
    return until


async def pause(session: AsyncSession, rate_key: str, *, until: datetime, reason: str) -> None:
    """Hold the key until `until` (never shortening a longer pause). An upsert: two
    replicas refused at once must not fail on each other's row."""
    dialect = dialect_of(session)
    stmt = insert_for(session)(RatePause).values(rate_key=rate_key, until=until, reason=reason)
    stmt = stmt.on_conflict_do_update(
        index_elements=["rate_key"],
        set_={
            "until": func.max(RatePause.until, stmt.excluded.until)
            if dialect == "sqlite"
            else func.greatest(RatePause.until, stmt.excluded.until),
            "reason": stmt.excluded.reason,
        },
    )
    await session.execute(stmt)


async def depth_and_age(session: AsyncSession, *, now: datetime) -> tuple[int, float]:
    result = await session.execute(
        select(func.count(), func.min(OutboxItem.created_at)).where(OutboxItem.status.in_(ACTIVE))
    )
    count, oldest = result.one()
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return int(count), age


async def release_leases(
    session: AsyncSession, *, holder_is_gone: Callable[[str | None], bool]
) -> int:
    return await release_dead_claims(
        session, OutboxItem, held_status="sending", holder_is_gone=holder_is_gone
    )
