"""Group commit of callbacks into the inbox: shared transactions, durable answers,
one bad event failing alone. Runs on SQLite and on PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.sources.group_commit import InboxWriter
from bot.sources.normalized import Incoming
from handlers.core.events import Message
from storage import inbox
from storage.inbox_append import InboxAppender
from storage.models import InboxItem

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _message(n: int, chat: str = "wr1") -> Incoming:
    event = Message(
        source="app",
        chat_id=chat,
        occurred_at=T0,
        sender=f"u{n}",
        text=f"第 {n} 条",
        chat_type="group",
        msg_id=f"m{n}",
    )
    return Incoming("callback", f"m{n}", f"<xml>{n}</xml>", event, "message", chat)


@dataclass(frozen=True)
class Broken(Incoming):
    """An event our normalization got wrong: turning it into a row fails."""

    def row(self) -> inbox.NewInboxRow:
        raise ValueError("cannot store this one")


async def _stored(sessions: async_sessionmaker[AsyncSession]) -> set[str]:
    async with sessions() as session:
        return set((await session.execute(select(InboxItem.dedup_key))).scalars())


async def test_concurrent_callbacks_share_commits_and_all_are_stored(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    writer = InboxWriter(appender, lambda: T0)
    results = await asyncio.gather(*(writer.store(_message(n)) for n in range(50)))
    assert results == [True] * 50
    assert await _stored(sessions) == {f"m{n}" for n in range(50)}
    # Fifty callbacks in flight at once did not take fifty transactions.
    assert writer.batches < 50
    async with sessions() as session:
        heads = await session.scalar(
            select(func.count()).select_from(InboxItem).where(InboxItem.is_head.is_(True))
        )
    assert heads == 1  # one chat: its oldest event heads it


async def test_a_duplicate_in_the_same_batch_is_stored_once(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    writer = InboxWriter(appender, lambda: T0)
    first, again, other = await asyncio.gather(
        writer.store(_message(1)), writer.store(_message(1)), writer.store(_message(2))
    )
    assert (first, again, other) == (True, False, True)
    assert await writer.store(_message(1)) is False  # WeCom's retry, later


async def test_one_bad_event_fails_alone_and_the_rest_of_its_batch_is_stored(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    writer = InboxWriter(appender, lambda: T0)
    good = _message(1)
    bad = Broken("callback", "bad", "<xml/>", None, "message", "wr1")
    results = await asyncio.gather(
        writer.store(good), writer.store(bad), writer.store(_message(2)), return_exceptions=True
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], ValueError)
    assert await _stored(sessions) == {"m1", "m2"}


class _RefusingAppender:
    """A database that is down: every transaction fails to open."""

    async def append(self, rows: object, *, now: datetime) -> set[str]:
        raise ConnectionError("database is down")

    async def aclose(self) -> None:
        return None


async def test_a_database_failure_is_the_answer_of_every_waiting_callback() -> None:
    """Nothing is acknowledged that is not stored: WeCom hears an error and retries."""
    writer = InboxWriter(_RefusingAppender(), lambda: T0)  # type: ignore[arg-type]
    results = await asyncio.gather(
        writer.store(_message(1)), writer.store(_message(2)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_a_lone_callback_is_written_at_once_in_its_own_commit(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    writer = InboxWriter(appender, lambda: T0)
    assert await writer.store(_message(7)) is True
    assert writer.batches == 1
    assert await _stored(sessions) == {"m7"}
