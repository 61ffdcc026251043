"""The inbox worker runs events in batches: one transaction per batch, each chat's
order kept, a failing event alone waiting for its retry. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.sources.normalized import Incoming, store_many
from bot.workers.inbox import BatchOutcome
from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.core.events import Event, Message
from handlers.core.registry import Registry
from handlers.wiring import build_features
from storage.inbox_append import InboxAppender
from storage.models import InboxItem, Membership
from tests.helpers import inbox_processor

T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def _message(n: int, chat: str, sender: str, text: str = "") -> Incoming:
    event = Message(
        source="archive",
        chat_id=chat,
        occurred_at=T0 + timedelta(seconds=n),
        sender=sender,
        text=text or f"第 {n} 条",
        msg_id=f"m{n}",
    )
    return Incoming("archive", f"m{n}", "{}", event, "message", chat)


async def _statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, tuple[str, int]]:
    async with sessions() as session:
        rows = await session.execute(
            select(InboxItem.dedup_key, InboxItem.status, InboxItem.attempts)
        )
        return {key: (status, attempts) for key, status, attempts in rows}


async def test_a_batch_counts_messages_in_one_transaction(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender, templates_dir: Path
) -> None:
    async with sessions() as session, session.begin():
        for chat, member in (("wrA", "alice"), ("wrA", "bob"), ("wrB", "alice")):
            session.add(Membership(chat_id=chat, member_id=member, joined_at=T0))
    senders = [("wrA", "alice")] * 5 + [("wrA", "bob")] * 2 + [("wrB", "alice")] * 3
    await store_many(
        appender,
        [_message(n, chat, member) for n, (chat, member) in enumerate(senders)],
        now=T0,
    )
    outcomes: list[BatchOutcome] = []
    processor = inbox_processor(sessions, build_features().registry, templates_dir, outcomes)
    assert await processor.run_once() == 10  # one busy chat's run and the other chat
    assert await processor.run_once() == 0
    assert outcomes == [BatchOutcome(10, 0, frozenset({"RecordMessage", "LogMessage"}))]
    async with sessions() as session:
        rows = await session.execute(
            select(
                Membership.chat_id,
                Membership.member_id,
                Membership.message_count,
                Membership.last_message_at,
            )
        )
        counted = {(chat, member): (count, last) for chat, member, count, last in rows}
    assert counted == {
        ("wrA", "alice"): (5, T0 + timedelta(seconds=4)),
        ("wrA", "bob"): (2, T0 + timedelta(seconds=6)),
        ("wrB", "alice"): (3, T0 + timedelta(seconds=9)),
    }
    assert {status for status, _ in (await _statuses(sessions)).values()} == {"done"}


class Recorder:
    """A handler that remembers the order it saw events in and fails on request."""

    def __init__(self, fail_on: set[str]) -> None:
        self.fail_on = fail_on
        self.seen: list[str] = []

    async def __call__(self, event: Event, ctx: Context) -> Sequence[Action]:
        assert isinstance(event, Message)
        if event.text in self.fail_on:
            raise RuntimeError(f"cannot handle {event.text}")
        self.seen.append(event.text)
        return []


async def test_a_failing_event_waits_alone_and_its_chat_waits_behind_it(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender, templates_dir: Path
) -> None:
    plan = [("wrA", "a1"), ("wrA", "a2"), ("wrB", "b1"), ("wrA", "a3"), ("wrB", "b2")]
    await store_many(
        appender,
        [_message(n, chat, "u", text) for n, (chat, text) in enumerate(plan)],
        now=T0,
    )
    recorder = Recorder(fail_on={"a2"})
    registry = Registry(build_features().executor)
    registry.add("message", recorder)
    outcomes: list[BatchOutcome] = []
    processor = inbox_processor(sessions, registry, templates_dir, outcomes)
    assert await processor.run_once() == 5
    # The batch was rolled back at a2 and ran again without it (a1's first run left
    # nothing behind); a3 never ran: it waits behind a2.
    assert recorder.seen == ["a1", "a1", "b1", "b2"]
    statuses = await _statuses(sessions)
    assert statuses["m0"] == ("done", 1)
    assert statuses["m1"][0] == "pending" and statuses["m1"][1] == 1  # retried later
    assert statuses["m3"] == ("pending", 0)  # given back untouched, not an attempt
    assert statuses["m2"][0] == statuses["m4"][0] == "done"
    # Its retry is not due yet: nothing overtakes it.
    assert await processor.run_once() == 0


async def test_when_every_event_fails_each_fails_alone(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender, templates_dir: Path
) -> None:
    plan = [("wrA", "x1"), ("wrB", "x2"), ("wrC", "x3"), ("wrD", "ok"), ("wrA", "x5")]
    await store_many(
        appender,
        [_message(n, chat, "u", text) for n, (chat, text) in enumerate(plan)],
        now=T0,
    )
    recorder = Recorder(fail_on={"x1", "x2", "x3", "x5"})
    registry = Registry(build_features().executor)
    registry.add("message", recorder)
    processor = inbox_processor(sessions, registry, templates_dir, [])
    assert await processor.run_once() == 5
    statuses = await _statuses(sessions)
    assert [statuses[f"m{n}"][0] for n in range(5)] == [
        "pending",
        "pending",
        "pending",
        "done",
        "pending",
    ]
    assert statuses["m4"] == ("pending", 0)  # behind wrA's failure, never tried
    assert recorder.seen == ["ok"]


async def test_a_quiet_groups_event_is_handled_in_the_first_round_behind_a_deep_backlog(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender, templates_dir: Path
) -> None:
    """3,000 archived messages wait in one busy group; the event another group sends
    after them is handled in the worker's very first round, not after the backlog."""
    await store_many(appender, [_message(n, "wrBusy", f"u{n % 50}") for n in range(3000)], now=T0)
    await store_many(appender, [_message(3000, "wrQuiet", "alice")], now=T0)
    processor = inbox_processor(sessions, build_features().registry, templates_dir, [])
    assert await processor.run_once() == 200
    statuses = await _statuses(sessions)
    assert statuses["m3000"][0] == "done"
    assert sum(status == "done" for status, _ in statuses.values()) == 200
