"""Retention (SPEC §3 RETENTION_RAW_DAYS / RETENTION_SENT_DAYS, and
RETENTION_LOG_DAYS): bounded tables.

- Inbox: a processed row (done, failed, ignored) older than the raw window keeps
  its id, dedup key, type, chat, status and times, so dedup still works and the
  counts stay, but loses the decrypted payload: `raw` becomes '' and the event's
  chat content (message text, names, response URLs) is dropped. Age is counted
  from `processed_at` (from `received_at` for rows ignored on arrival).
- Outbox: a finished row (sent, cancelled, failed) older than the sent window is
  deleted. Failed rows go too: a retry of a message that old is never wanted, and
  keeping them would let the table grow with every dead webhook.

- Message log: rows sent longer ago than the log window are deleted (they hold
  no content; the window bounds the table and what health and points look back on).

Work is done in batches of `batch` rows, each in its own short transaction, so the
job never holds locks for long and the inbox and outbox loops keep running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import InboxItem, MessageLog, OutboxItem, OwnerDigest, OwnerTask, Violation

PROCESSED_INBOX = ("done", "failed", "ignored")
FINISHED_OUTBOX = ("sent", "cancelled", "failed")
BATCH = 1000

# Event fields that carry what people wrote or who they are (beyond ids), with the
# value they are replaced by; the stripped event still parses as the same type.
_CONTENT_FIELDS: dict[str, Any] = {
    "text": "",
    "title": None,
    "urls": [],
    "weapp": None,
    "response_url": None,
    "name": None,
    "invitor_name": None,
    "notice": None,
}

_INBOX = cast(Table, InboxItem.__table__)


def strip_event(event: Any) -> Any:
    """The event without chat content: ids, type, chat, scenes and times are kept."""
    if isinstance(event, dict):
        return {
            key: _CONTENT_FIELDS[key] if key in _CONTENT_FIELDS else strip_event(value)
            for key, value in event.items()
        }
    if isinstance(event, list):
        return [strip_event(value) for value in event]
    return event


async def prune_inbox_batch(
    session: AsyncSession, *, before: datetime, after_id: int = 0, limit: int = BATCH
) -> tuple[int, int | None]:
    """Blank the processed rows older than `before` among the next `limit` unpruned
    rows after `after_id`. Returns (rows pruned, id to continue after, or None when
    the walk is done).

    The walk reads only rows not pruned yet (ix_inbox_unpruned: every source stores
    a non-empty raw payload, so `raw != ''` tells them), in id order, and stops at
    the first row received after `before`: ids grow with arrival, so all later rows
    are younger. A run therefore costs the rows it prunes, not the table.
    """
    rows = (
        await session.execute(
            select(
                InboxItem.id,
                InboxItem.status,
                InboxItem.processed_at,
                InboxItem.received_at,
                InboxItem.event,
            )
            .where(InboxItem.raw != "", InboxItem.id > after_id)
            .order_by(InboxItem.id)
            .limit(limit)
        )
    ).all()
    done = len(rows) < limit
    last_id: int | None = None
    prune: list[tuple[int, Any]] = []
    for row_id, status, processed_at, received_at, event in rows:
        if received_at >= before:
            done = True
            break
        last_id = int(row_id)
        if status in PROCESSED_INBOX and (processed_at or received_at) < before:
            prune.append((row_id, event))
    if prune:
        # One executemany; the status guard is re-checked per row in case the row was
        # requeued since the select.
        await session.execute(
            update(_INBOX)
            .where(
                _INBOX.c.id == bindparam("row_id"),
                # or_ rather than IN: an expanding IN cannot be used with executemany.
                or_(*(_INBOX.c.status == status for status in PROCESSED_INBOX)),
            )
            .values(raw="", event=bindparam("stripped", type_=_INBOX.c.event.type)),
            [{"row_id": row_id, "stripped": strip_event(event)} for row_id, event in prune],
        )
    return len(prune), None if done else last_id


async def delete_outbox_batch(
    session: AsyncSession, *, before: datetime, limit: int = BATCH
) -> int:
    """Delete up to `limit` finished rows older than `before`; returns how many."""
    age = func.coalesce(OutboxItem.sent_at, OutboxItem.created_at)
    finished_and_old = (OutboxItem.status.in_(FINISHED_OUTBOX)) & (age < before)
    ids = (
        select(OutboxItem.id).where(finished_and_old).order_by(OutboxItem.id).limit(limit)
    ).scalar_subquery()
    # The conditions again on the outer statement: PostgreSQL re-checks them on a row
    # changed meanwhile (an operator's retry makes a failed row pending again).
    result = await session.execute(
        delete(OutboxItem).where(OutboxItem.id.in_(ids), finished_and_old).returning(OutboxItem.id)
    )
    return len(result.all())


async def _delete_older(
    session: AsyncSession, model: Any, column: Any, *, before: datetime, limit: int
) -> int:
    """Delete up to `limit` rows whose `column` is before `before`, oldest first (along
    the column's index, so a run costs the rows it deletes); returns how many."""
    ids = (select(model.id).where(column < before).order_by(column).limit(limit)).scalar_subquery()
    result = await session.execute(delete(model).where(model.id.in_(ids)).returning(model.id))
    return len(result.all())


async def delete_log_batch(session: AsyncSession, *, before: datetime, limit: int = BATCH) -> int:
    """Message-log rows sent before `before`."""
    return await _delete_older(session, MessageLog, MessageLog.sent_at, before=before, limit=limit)


FINISHED_DIGEST = ("sent", "skipped", "failed")


async def delete_owner_task_batch(
    session: AsyncSession, *, before: datetime, limit: int = BATCH
) -> int:
    """Owner tasks (they quote members' words) created before `before` whose digest went
    out, then the emptied digests: kept as long as sent messages."""
    finished = select(OwnerDigest.id).where(OwnerDigest.status.in_(FINISHED_DIGEST))
    old = (OwnerTask.created_at < before) & (
        OwnerTask.digest_id.is_(None) | OwnerTask.digest_id.in_(finished)
    )
    ids = select(OwnerTask.id).where(old).order_by(OwnerTask.id).limit(limit).scalar_subquery()
    result = await session.execute(
        delete(OwnerTask).where(OwnerTask.id.in_(ids)).returning(OwnerTask.id)
    )
    deleted = len(result.all())
    if deleted < limit:
        emptied = (
            OwnerDigest.status.in_(FINISHED_DIGEST)
            & (OwnerDigest.flushed_at < before)
            & ~select(OwnerTask.id).where(OwnerTask.digest_id == OwnerDigest.id).exists()
        )
        await session.execute(delete(OwnerDigest).where(emptied))
    return deleted


async def delete_violation_batch(
    session: AsyncSession, *, before: datetime, limit: int = BATCH
) -> int:
    """Rule hits older than `before` (kept as long as the message log)."""
    return await _delete_older(session, Violation, Violation.created_at, before=before, limit=limit)


class DeleteBatch(Protocol):
    async def __call__(self, session: AsyncSession, *, before: datetime, limit: int) -> int: ...


@dataclass
class RetentionResult:
    inbox_pruned: int = 0
    outbox_deleted: int = 0
    log_deleted: int = 0
    tasks_deleted: int = 0
    violations_deleted: int = 0
    complete: bool = True  # False: the time budget ran out, the next run goes on

    def note(self) -> str:
        parts = []
        if self.inbox_pruned:
            parts.append(f"{self.inbox_pruned} inbox payload(s) pruned")
        if self.outbox_deleted:
            parts.append(f"{self.outbox_deleted} outbox row(s) deleted")
        if self.log_deleted:
            parts.append(f"{self.log_deleted} message-log row(s) deleted")
        if self.tasks_deleted:
            parts.append(f"{self.tasks_deleted} owner task(s) deleted")
        if self.violations_deleted:
            parts.append(f"{self.violations_deleted} violation(s) deleted")
        if not self.complete:
            parts.append("more remain")
        return ", ".join(parts)


async def apply_retention(
    sessions: async_sessionmaker[AsyncSession],
    *,
    raw_before: datetime,
    sent_before: datetime,
    log_before: datetime | None = None,
    batch: int = BATCH,
    budget_seconds: float = 300.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> RetentionResult:
    """Prune in batches until nothing is left or the time budget (kept below the
    periodic job's lease) is spent; one transaction per batch."""
    result = RetentionResult()
    deadline = monotonic() + budget_seconds
    after_id = 0
    while True:
        if monotonic() >= deadline:
            result.complete = False
            return result
        async with sessions() as session, session.begin():
            count, last_id = await prune_inbox_batch(
                session, before=raw_before, after_id=after_id, limit=batch
            )
        result.inbox_pruned += count
        if last_id is None:
            break
        after_id = last_id

    async def delete_all(delete_batch: DeleteBatch, before: datetime) -> int:
        """Rows deleted until none is left or the budget is spent (then incomplete)."""
        deleted = 0
        while True:
            if monotonic() >= deadline:
                result.complete = False
                return deleted
            async with sessions() as session, session.begin():
                count = await delete_batch(session, before=before, limit=batch)
            deleted += count
            if count < batch:
                return deleted

    result.outbox_deleted = await delete_all(delete_outbox_batch, sent_before)
    if result.complete:
        result.tasks_deleted = await delete_all(delete_owner_task_batch, sent_before)
    if result.complete and log_before is not None:
        result.log_deleted = await delete_all(delete_log_batch, log_before)
    if result.complete and log_before is not None:
        result.violations_deleted = await delete_all(delete_violation_batch, log_before)
    return result
