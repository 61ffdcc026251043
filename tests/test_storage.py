"""Inbox and outbox storage: dedup, claims with leases, ordering, shared rate windows.

Runs on SQLite and on PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import db, inbox, outbox
from storage.models import InboxItem, OutboxItem

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _msg(
    target: str = "k1", order: str = "group:g1", dedup: str | None = None
) -> outbox.NewMessage:
    return outbox.NewMessage(
        channel="webhook",
        target=target,
        payload={"msgtype": "text", "text": {"content": "hi"}},
        rate_key=f"webhook:{target}",
        order_key=order,
        dedup_key=dedup,
    )


async def test_migrations_create_schema_and_downgrade(engine: AsyncEngine) -> None:
    await db.downgrade(engine, "base")
    await db.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxItem)) == 0


async def test_inbox_insert_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        first = await inbox.insert_once(
            session,
            source="callback",
            dedup_key="msg:1",
            raw="<xml/>",
            event_type="message",
            event=None,
            chat_id=None,
            status="pending",
            now=T0,
        )
        again = await inbox.insert_once(
            session,
            source="callback",
            dedup_key="msg:1",
            raw="<xml/>",
            event_type="message",
            event=None,
            chat_id=None,
            status="pending",
            now=T0,
        )
    assert first and not again
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxItem)) == 1


async def test_inbox_claim_lease_and_reclaim(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for n in range(3):
            await inbox.insert_once(
                session,
                source="callback",
                dedup_key=f"k{n}",
                raw="",
                event_type="message",
                event={},
                chat_id=None,
                status="pending",
                now=T0,
            )
    lease = timedelta(seconds=60)
    async with sessions() as session, session.begin():
        first = await inbox.claim(session, now=T0, lease=lease, limit=2, token="t")
    async with sessions() as session, session.begin():
        second = await inbox.claim(session, now=T0, lease=lease, limit=10, token="t")
    assert len(first) == 2 and len(second) == 1 and not set(first) & set(second)
    # A worker that died holding a lease: the rows come back once it expires.
    async with sessions() as session, session.begin():
        assert (
            await inbox.claim(
                session, now=T0 + timedelta(seconds=30), lease=lease, limit=10, token="t"
            )
            == []
        )
    async with sessions() as session, session.begin():
        again = await inbox.claim(
            session, now=T0 + timedelta(seconds=61), lease=lease, limit=10, token="t"
        )
    assert sorted(again) == sorted(first + second)


async def test_outbox_claim_is_exclusive_under_concurrency(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        for n in range(40):
            await outbox.enqueue(session, _msg(order=f"o{n}"), now=T0)

    async def claimer() -> list[int]:
        got: list[int] = []
        while True:
            async with sessions() as session, session.begin():
                ids = await outbox.claim(
                    session, now=T0, lease=timedelta(seconds=60), limit=3, token="t"
                )
            if not ids:
                return got
            got.extend(ids)

    results = await asyncio.gather(*(claimer() for _ in range(4)))
    claimed = [i for r in results for i in r]
    assert len(claimed) == 40 and len(set(claimed)) == 40


async def test_outbox_keeps_order_per_destination(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        a = (await outbox.enqueue(session, _msg(order="group:g1"), now=T0)).id
        b = (await outbox.enqueue(session, _msg(order="group:g1"), now=T0)).id
        c = (await outbox.enqueue(session, _msg(order="group:g2"), now=T0)).id
    async with sessions() as session, session.begin():
        ids = await outbox.claim(session, now=T0, lease=timedelta(seconds=60), limit=10, token="t")
    assert ids == [a, c]  # b waits behind a
    async with sessions() as session, session.begin():
        await outbox.mark_sent(session, c, now=T0, result=None)
    async with sessions() as session, session.begin():
        await outbox.mark_retry(
            session,
            a,
            retry_at=T0 + timedelta(minutes=5),
            error="-1: busy",
            error_kind="retry",
            count_attempt=True,
        )
    async with sessions() as session, session.begin():
        # a is back off; b must still wait for it rather than overtake.
        assert (
            await outbox.claim(session, now=T0, lease=timedelta(seconds=60), limit=10, token="t")
            == []
        )
    async with sessions() as session, session.begin():
        later = await outbox.claim(
            session, now=T0 + timedelta(minutes=6), lease=timedelta(seconds=60), limit=10, token="t"
        )
    assert later == [a]
    async with sessions() as session, session.begin():
        await outbox.mark_sent(session, a, now=T0, result=None)
    async with sessions() as session, session.begin():
        assert await outbox.claim(
            session, now=T0, lease=timedelta(seconds=60), limit=10, token="t"
        ) == [b]


async def test_outbox_dedup_key_is_unique(sessions: async_sessionmaker[AsyncSession]) -> None:
    import sqlalchemy.exc

    async with sessions() as session, session.begin():
        await outbox.enqueue(session, _msg(dedup="touch:1"), now=T0)
    try:
        async with sessions() as session, session.begin():
            await outbox.enqueue(session, _msg(dedup="touch:1"), now=T0)
    except sqlalchemy.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a second row with the same idempotency key was accepted")


async def test_failed_rows_retry_and_wake_after_restart(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        item = await outbox.enqueue(session, _msg(), now=T0)
        other = await outbox.enqueue(session, _msg(order="o2"), now=T0)
    async with sessions() as session, session.begin():
        await outbox.mark_failed(session, item.id, error="93000: invalid", error_kind="permanent")
        await outbox.mark_retry(
            session,
            other.id,
            retry_at=T0 + timedelta(hours=1),
            error="-2: refused",
            error_kind="retry",
            count_attempt=True,
        )
    async with sessions() as session, session.begin():
        assert await outbox.wake_network_failures(session, now=T0) == 1
        assert await outbox.retry_failed(session, item.id, now=T0)
        assert not await outbox.retry_failed(session, item.id, now=T0)  # already pending
    async with sessions() as session:
        rows = {r.id: r for r in (await session.execute(select(OutboxItem))).scalars()}
    assert rows[item.id].status == "pending" and rows[item.id].attempts == 0
    assert rows[other.id].next_attempt_at == T0


async def test_rate_window_and_pause(sessions: async_sessionmaker[AsyncSession]) -> None:
    window = timedelta(seconds=60)
    async with sessions() as session, session.begin():
        ids = [
            await outbox.record_rate_event(session, "webhook:k", at=T0 + timedelta(seconds=n))
            for n in range(3)
        ]
        await outbox.record_rate_event(session, "webhook:other", at=T0 + timedelta(hours=1))
        assert await outbox.nth_latest_rate_event(session, "webhook:k", 1) == T0 + timedelta(
            seconds=2
        )
        assert await outbox.nth_latest_rate_event(session, "webhook:k", 3) == T0
        assert await outbox.nth_latest_rate_event(session, "webhook:k", 4) is None
        # An answered send counts from its answer: here later than the in-flight bound.
        await outbox.settle_rate_event(session, ids[0], answered_at=T0 + timedelta(seconds=5))
        assert await outbox.nth_latest_rate_event(session, "webhook:k", 1) == T0 + timedelta(
            seconds=5
        )
        await outbox.pause(session, "webhook:k", until=T0 + window, reason="45009")
        assert await outbox.paused_until(session, "webhook:k", now=T0) == T0 + window
        assert await outbox.paused_until(session, "webhook:k", now=T0 + window) is None
        await outbox.prune_rate_events(session, before=T0 + timedelta(seconds=2))
        assert await outbox.nth_latest_rate_event(session, "webhook:k", 2) == T0 + timedelta(
            seconds=2
        )
        assert await outbox.nth_latest_rate_event(session, "webhook:k", 3) is None


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    """Alembic owns the schema; the models must describe exactly what it builds."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.models import Base

    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection)  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_a_stale_claim_cannot_work_or_mark_a_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = timedelta(seconds=30)
    async with sessions() as session, session.begin():
        item = await outbox.enqueue(session, _msg(), now=T0)
    async with sessions() as session, session.begin():
        assert await outbox.claim(session, now=T0, lease=lease, limit=5, token="slow") == [item.id]
    later = T0 + timedelta(seconds=31)  # the slow worker's lease ran out mid-batch
    async with sessions() as session, session.begin():
        assert await outbox.claim(session, now=later, lease=lease, limit=5, token="fast") == [
            item.id
        ]
    async with sessions() as session, session.begin():
        assert not await outbox.renew(session, item.id, token="slow", now=later, lease=lease)
        assert await outbox.renew(session, item.id, token="fast", now=later, lease=lease)
        await outbox.mark_sent(session, item.id, now=later, result=None, token="slow")
    async with sessions() as session:
        assert (await session.get(OutboxItem, item.id)).status == "sending"  # type: ignore[union-attr]
    async with sessions() as session, session.begin():
        await outbox.mark_sent(session, item.id, now=later, result=None, token="fast")
    async with sessions() as session:
        assert (await session.get(OutboxItem, item.id)).status == "sent"  # type: ignore[union-attr]

    async with sessions() as session, session.begin():
        await inbox.insert_once(
            session,
            source="callback",
            dedup_key="x",
            raw="",
            event_type="message",
            event={},
            chat_id=None,
            status="pending",
            now=T0,
        )
    async with sessions() as session, session.begin():
        (inbox_id,) = await inbox.claim(session, now=T0, lease=lease, limit=1, token="slow")
    async with sessions() as session, session.begin():
        await inbox.claim(session, now=later, lease=lease, limit=1, token="fast")
    async with sessions() as session, session.begin():
        assert not await inbox.renew(session, inbox_id, token="slow", now=later, lease=lease)
        assert not await inbox.mark(session, inbox_id, status="done", now=later, token="slow")
        assert await inbox.mark(session, inbox_id, status="done", now=later, token="fast")


async def test_inbox_takes_a_chats_events_in_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = timedelta(seconds=30)
    async with sessions() as session, session.begin():
        for key, chat in (("join", "wr1"), ("leave", "wr1"), ("other", "wr2"), ("dm", None)):
            await inbox.insert_once(
                session,
                source="callback",
                dedup_key=key,
                raw="",
                event_type="x",
                event={},
                chat_id=chat,
                status="pending",
                now=T0,
            )
    async with sessions() as session, session.begin():
        # Heads only (no runs): one row per chat.
        first = await inbox.claim(session, now=T0, lease=lease, limit=10, token="a", run_chats=0)
    assert len(first) == 3  # wr1's leave waits for wr1's join
    join_id = min(first)
    async with sessions() as session, session.begin():
        for done in first[1:]:
            await inbox.mark(session, done, status="done", now=T0, token="a")
        await inbox.mark(
            session,
            join_id,
            status="pending",
            now=T0,
            retry_at=T0 + timedelta(minutes=1),
            token="a",
        )
    async with sessions() as session, session.begin():
        # The join is waiting for a retry: the leave still may not overtake it.
        assert (
            await inbox.claim(session, now=T0, lease=lease, limit=10, token="b", run_chats=0) == []
        )
    async with sessions() as session, session.begin():
        retried = await inbox.claim(
            session, now=T0 + timedelta(minutes=2), lease=lease, limit=10, token="c", run_chats=0
        )
    assert retried == [join_id]
    async with sessions() as session, session.begin():
        await inbox.mark(session, join_id, status="done", now=T0, token="c")
    async with sessions() as session, session.begin():
        leave = await inbox.claim(session, now=T0, lease=lease, limit=10, token="d", run_chats=0)
    assert len(leave) == 1 and leave[0] > join_id


def test_claim_tokens_name_their_process() -> None:
    import subprocess
    import sys

    from bot.workers.claims import holder_is_gone, new_token

    assert not holder_is_gone(new_token())  # this process
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert holder_is_gone(f"{finished.stdout.strip()}-abc")
    assert holder_is_gone(None) and holder_is_gone("garbage") and holder_is_gone("x-1")


async def test_restart_releases_only_claims_of_processes_that_are_gone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = timedelta(seconds=30)
    async with sessions() as session, session.begin():
        dead = await outbox.enqueue(session, _msg(order="a"), now=T0)
        alive = await outbox.enqueue(session, _msg(order="b"), now=T0)
    async with sessions() as session, session.begin():
        await outbox.claim(session, now=T0, lease=lease, limit=1, token="dead-1")
        await outbox.claim(session, now=T0, lease=lease, limit=1, token="alive-1")
    async with sessions() as session, session.begin():
        released = await outbox.release_leases(
            session, holder_is_gone=lambda token: token == "dead-1"
        )
    assert released == 1
    async with sessions() as session:
        assert (await session.get(OutboxItem, dead.id)).status == "pending"  # type: ignore[union-attr]
        assert (await session.get(OutboxItem, alive.id)).status == "sending"  # type: ignore[union-attr]


async def _insert_events(
    sessions: async_sessionmaker[AsyncSession], chat: str | None, count: int, prefix: str
) -> list[int]:
    rows = [
        inbox.NewInboxRow("callback", f"{prefix}{n}", "", "message", {}, chat, "pending")
        for n in range(count)
    ]
    async with sessions() as session, session.begin():
        await inbox.insert_many(session, rows, now=T0)
    async with sessions() as session:
        found = await session.execute(
            select(InboxItem.id)
            .where(InboxItem.dedup_key.in_([row.dedup_key for row in rows]))
            .order_by(InboxItem.id)
        )
        return list(found.scalars())


async def _heads(sessions: async_sessionmaker[AsyncSession], model: type) -> list[int]:
    async with sessions() as session:
        found = await session.execute(
            select(model.id).where(model.is_head.is_(True)).order_by(model.id)  # type: ignore[attr-defined]
        )
        return list(found.scalars())


async def test_a_busy_chat_is_claimed_as_an_ordered_run_behind_its_head(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    busy = await _insert_events(sessions, "busy", 6, "b")
    other = await _insert_events(sessions, "other", 1, "o")
    assert await _heads(sessions, InboxItem) == [busy[0], other[0]]
    lease = timedelta(seconds=30)
    async with sessions() as session, session.begin():
        claimed = await inbox.claim(session, now=T0, lease=lease, limit=5, token="a")
    # Both heads, then the busy chat's rows in order while there is room.
    assert claimed == sorted([busy[0], busy[1], busy[2], busy[3], other[0]])
    async with sessions() as session, session.begin():
        # The third row fails: the head moves to it, the rows behind it go back untouched.
        await inbox.mark_many(session, busy[:2], status="done", now=T0, token="a")
        await inbox.mark(
            session,
            busy[2],
            status="pending",
            now=T0,
            retry_at=T0 + timedelta(minutes=1),
            token="a",
        )
        await inbox.release(session, [busy[3]], token="a")
        await inbox.mark(session, other[0], status="done", now=T0, token="a")
    assert await _heads(sessions, InboxItem) == [busy[2]]
    async with sessions() as session, session.begin():
        # The failed row waits for its retry, and nothing behind it overtakes it.
        assert await inbox.claim(session, now=T0, lease=lease, limit=10, token="b") == []
    async with sessions() as session, session.begin():
        later = await inbox.claim(
            session, now=T0 + timedelta(minutes=2), lease=lease, limit=10, token="c"
        )
    assert later == busy[2:]
    async with sessions() as session:
        released = await session.get(InboxItem, busy[3])
        assert released is not None and released.attempts == 1  # the release did not count


async def test_a_run_stops_at_a_row_another_worker_still_holds(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    rows = await _insert_events(sessions, "c1", 4, "r")
    lease = timedelta(seconds=30)
    async with sessions() as session, session.begin():
        assert await inbox.claim(session, now=T0, lease=lease, limit=2, token="a") == rows[:2]
    async with sessions() as session, session.begin():
        # Worker a finished the head, then stalled on rows[1] (still within its lease):
        await inbox.mark(session, rows[0], status="done", now=T0, token="a")
    async with sessions() as session, session.begin():
        assert await inbox.claim(session, now=T0, lease=lease, limit=10, token="b") == []
    async with sessions() as session, session.begin():
        # …its lease ran out: b takes over from rows[1], in order.
        taken = await inbox.claim(
            session, now=T0 + timedelta(seconds=31), lease=lease, limit=10, token="b"
        )
    assert taken == rows[1:]


async def test_claim_cost_does_not_grow_with_one_chats_backlog(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Another chat's event is claimed first in line even behind a deep backlog, and
    the claim reads the heads only: one per chat, however deep the backlog."""
    await _insert_events(sessions, "busy", 2000, "b")
    (quiet,) = await _insert_events(sessions, "quiet", 1, "q")
    assert len(await _heads(sessions, InboxItem)) == 2
    async with sessions() as session, session.begin():
        claimed = await inbox.claim(
            session, now=T0, lease=timedelta(seconds=30), limit=2, token="a", run_chats=0
        )
    assert quiet in claimed


async def test_concurrent_inserts_and_finishes_keep_exactly_one_head_per_chat(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Writers of one chat race (an insert while its head finishes): the chat must
    never end with no head (stuck) or two (out of order)."""
    lease = timedelta(seconds=30)
    await _insert_events(sessions, "c", 1, "seed")

    async def producer(n: int) -> None:
        for i in range(10):
            await _insert_events(sessions, "c", 1, f"p{n}-{i}-")

    async def consumer() -> int:
        done = 0
        for _ in range(60):
            async with sessions() as session, session.begin():
                ids = await inbox.claim(session, now=T0, lease=lease, limit=3, token="w")
                await inbox.mark_many(session, ids, status="done", now=T0, token="w")
            done += len(ids)
        return done

    results = await asyncio.gather(producer(1), producer(2), consumer())
    async with sessions() as session:
        unfinished = (
            (
                await session.execute(
                    select(InboxItem.id)
                    .where(InboxItem.status.in_(("pending", "processing")))
                    .order_by(InboxItem.id)
                )
            )
            .scalars()
            .all()
        )
    heads_now = await _heads(sessions, InboxItem)
    assert heads_now == list(unfinished[:1])
    # Whatever is left is claimable: nothing got stuck without a head.
    async with sessions() as session, session.begin():
        rest = await inbox.claim(session, now=T0, lease=lease, limit=100, token="z")
    assert rest == list(unfinished)
    assert results[2] + len(rest) == 21


async def test_an_admin_retry_of_an_older_message_puts_it_first_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = timedelta(seconds=30)
    async with sessions() as session, session.begin():
        first = (await outbox.enqueue(session, _msg(order="dest"), now=T0)).id
        second = (await outbox.enqueue(session, _msg(order="dest"), now=T0)).id
    async with sessions() as session, session.begin():
        assert await outbox.claim(session, now=T0, lease=lease, limit=5, token="a") == [first]
        await outbox.mark_failed(session, first, error="x", error_kind="permanent", token="a")
    assert await _heads(sessions, OutboxItem) == [second]
    async with sessions() as session, session.begin():
        assert await outbox.retry_failed(session, first, now=T0)
    assert await _heads(sessions, OutboxItem) == [first]
    async with sessions() as session, session.begin():
        assert await outbox.claim(session, now=T0, lease=lease, limit=5, token="b") == [first]
