"""The outbox dispatcher against a fake WeCom on a real port: retries, failures, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.runtime import Runtime, build_runtime
from bot.sandbox.emulator import Fault
from bot.sandbox.emulator.server import RunningEmulator
from bot.workers.dispatch import backoff
from storage import outbox
from storage.models import OutboxItem
from tests.helpers import Clock, configured_settings, sent_texts


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))


@pytest.fixture
async def runtime(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, clock: Clock
) -> AsyncIterator[Runtime]:
    settings = configured_settings(
        database_url=database_url,
        templates_dir=templates_dir,
        api_base=emulator.base_url,
        outbox_max_attempts=4,
    )
    rt = await build_runtime(settings, api_base=emulator.base_url, clock=clock)
    yield rt
    await rt.aclose()


async def queue(runtime: Runtime, text: str, *, key: str = "k1", order: str = "group:g") -> int:
    async with runtime.sessions() as session, session.begin():
        item = await outbox.enqueue(
            session,
            outbox.NewMessage(
                channel="webhook",
                target=key,
                payload={"msgtype": "text", "text": {"content": text}},
                rate_key=f"webhook:{key}",
                order_key=order,
            ),
            now=runtime.clock(),
        )
    return item.id


async def row(runtime: Runtime, item_id: int) -> OutboxItem:
    async with runtime.sessions() as session:
        item = await session.get(OutboxItem, item_id)
    assert item is not None
    return item


async def test_sends_and_marks(runtime: Runtime, emulator: RunningEmulator) -> None:
    item_id = await queue(runtime, "早上好")
    assert await runtime.dispatcher.run_once() == 1
    assert sent_texts(emulator) == ["早上好"]
    assert (await row(runtime, item_id)).status == "sent"
    assert await runtime.dispatcher.run_once() == 0


@pytest.mark.parametrize("fault", [{"errcode": -1}, {"errcode": 45033}, {"http_status": 502}])
async def test_transient_errors_back_off_then_send(
    runtime: Runtime, emulator: RunningEmulator, clock: Clock, fault: dict[str, int]
) -> None:
    emulator.state.add_fault(Fault("webhook/send", **fault))
    item_id = await queue(runtime, "重试一下")
    await runtime.dispatcher.run_once()
    failed = await row(runtime, item_id)
    assert failed.status == "pending" and failed.attempts == 1 and failed.last_error_kind == "retry"
    assert failed.next_attempt_at > clock.now
    assert await runtime.dispatcher.run_once() == 0  # not before the backoff
    clock.advance(10)
    await runtime.dispatcher.run_once()
    assert (await row(runtime, item_id)).status == "sent"
    assert sent_texts(emulator) == ["重试一下"]


async def test_invalid_key_fails_for_good(runtime: Runtime, emulator: RunningEmulator) -> None:
    emulator.state.invalid_webhook_keys.add("gone")
    item_id = await queue(runtime, "x", key="gone")
    await runtime.dispatcher.run_once()
    item = await row(runtime, item_id)
    assert item.status == "failed" and item.last_error and item.last_error.startswith("93000")


async def test_retry_budget_ends_in_failed(
    runtime: Runtime, emulator: RunningEmulator, clock: Clock
) -> None:
    emulator.state.add_fault(Fault("webhook/send", errcode=-1, times=10))
    item_id = await queue(runtime, "x")
    for _ in range(6):
        await runtime.dispatcher.run_once()
        clock.advance(400)
    item = await row(runtime, item_id)
    assert item.status == "failed" and item.attempts == 4


async def test_45009_pauses_the_key_for_a_minute(
    runtime: Runtime, emulator: RunningEmulator, clock: Clock
) -> None:
    emulator.state.add_fault(Fault("webhook/send", errcode=45009))
    first = await queue(runtime, "a", order="o1")
    second = await queue(runtime, "b", order="o2")
    await runtime.dispatcher.run_once()
    assert (await row(runtime, first)).status == "pending"
    # The pause holds every message through that robot, not just the one refused.
    assert (await row(runtime, second)).next_attempt_at >= clock.now + timedelta(seconds=60)
    clock.advance(30)
    await runtime.dispatcher.run_once()
    assert sent_texts(emulator) == []
    clock.advance(40)
    await runtime.dispatcher.drain()
    assert sorted(sent_texts(emulator)) == ["a", "b"]


async def queue_appchat(runtime: Runtime, text: str, *, chat: str) -> int:
    async with runtime.sessions() as session, session.begin():
        item = await outbox.enqueue(
            session,
            outbox.NewMessage(
                channel="appchat",
                target=chat,
                payload={"chatid": chat, "msgtype": "text", "text": {"content": text}},
                rate_key=f"appchat:{chat}",
                order_key=f"group:{chat}",
            ),
            now=runtime.clock(),
        )
    return item.id


async def test_45009_from_one_robot_holds_neither_other_robots_nor_appchat(
    runtime: Runtime, emulator: RunningEmulator, clock: Clock
) -> None:
    # A robot's 20-a-minute limit is the robot key's own: WeCom limited that key alone.
    emulator.state.add_fault(Fault("webhook/send", errcode=45009))
    refused = await queue(runtime, "a", key="k1", order="o1")
    other_robot = await queue(runtime, "b", key="k2", order="o2")
    appchat = await queue_appchat(runtime, "c", chat="chatA")
    await runtime.dispatcher.drain()
    assert (await row(runtime, refused)).status == "pending"
    assert (await row(runtime, other_robot)).status == "sent"
    assert (await row(runtime, appchat)).status == "sent"
    assert sent_texts(emulator) == ["b"] and sent_texts(emulator, "appchat/send") == ["c"]
    async with runtime.sessions() as session:
        assert await outbox.paused_until(session, "webhook:k1", now=clock.now) is not None
        assert await outbox.paused_until(session, "api:appchat/send", now=clock.now) is None


async def test_45009_from_an_api_pauses_that_api_for_every_target(
    runtime: Runtime, emulator: RunningEmulator, clock: Clock
) -> None:
    # appchat/send answers 45009 when the corp's call frequency for the API is used up:
    # every group behind it must wait, while robots (no access token, own limits) go on.
    emulator.state.add_fault(Fault("appchat/send", errcode=45009))
    first = await queue_appchat(runtime, "A1", chat="chatA")
    await runtime.dispatcher.run_once()
    assert (await row(runtime, first)).status == "pending"
    other_group = await queue_appchat(runtime, "B1", chat="chatB")
    robot = await queue(runtime, "robot", key="k1")
    await runtime.dispatcher.drain()
    assert (await row(runtime, robot)).status == "sent"
    held = await row(runtime, other_group)
    assert held.status == "pending" and held.attempts == 0
    assert held.next_attempt_at >= clock.now + timedelta(seconds=60)
    assert sent_texts(emulator, "appchat/send") == []
    clock.advance(66)
    await runtime.dispatcher.drain()
    assert sorted(sent_texts(emulator, "appchat/send")) == ["A1", "B1"]


async def test_two_replicas_refused_at_once_share_one_pause(runtime: Runtime, clock: Clock) -> None:
    # Upserts: a second 45009 for the same scope extends the pause, never errors,
    # and never shortens a longer pause.
    later, sooner = clock.now + timedelta(seconds=65), clock.now + timedelta(seconds=10)
    async with runtime.sessions() as session, session.begin():
        await outbox.pause(session, "api:message/send", until=later, reason="45009")
    async with runtime.sessions() as session, session.begin():
        await outbox.pause(session, "api:message/send", until=sooner, reason="45009 again")
    async with runtime.sessions() as session:
        assert await outbox.paused_until(session, "api:message/send", now=clock.now) == later
        assert (
            await outbox.paused_until(session, "private:u1", "api:message/send", now=clock.now)
            == later
        )


async def test_twenty_a_minute_per_robot(
    runtime: Runtime, emulator: RunningEmulator, clock: Clock
) -> None:
    # The fake's own window runs on real time; ours on the test clock. Widen the
    # fake's so that what is measured here is our limiter alone.
    emulator.state.webhook_rate_limit = 1000
    ids = [await queue(runtime, f"m{n}", order=f"o{n}") for n in range(25)]
    await runtime.dispatcher.drain()
    assert len(sent_texts(emulator)) == 20
    waiting = [await row(runtime, i) for i in ids]
    assert sum(1 for item in waiting if item.status == "pending") == 5
    assert all(item.attempts == 0 for item in waiting if item.status == "pending")
    # The 21st waits until the 1st's answer is more than 60 s + RATE_MARGIN (2 s) old.
    clock.advance(61)
    await runtime.dispatcher.drain()
    assert len(sent_texts(emulator)) == 20
    clock.advance(1.1)
    await runtime.dispatcher.drain()
    assert len(sent_texts(emulator)) == 25
    # Another robot key was never held back by the first one's window.
    other = await queue(runtime, "other", key="k2", order="x")
    await runtime.dispatcher.run_once()
    assert (await row(runtime, other)).status == "sent"


async def test_fake_down_then_up(database_url: str, templates_dir: Path, clock: Clock) -> None:
    import socket

    from bot.sandbox.emulator import EmulatorState
    from bot.sandbox.emulator.server import start_emulator_in_thread
    from tests.conftest import TEST_CORP_ID, TEST_CORP_SECRET

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=base
    )
    rt = await build_runtime(settings, api_base=base, clock=clock)
    try:
        item_id = await queue(rt, "等你回来")
        await rt.dispatcher.run_once()
        item = await row(rt, item_id)
        assert item.status == "pending" and item.last_error_kind == "retry"
        fake = start_emulator_in_thread(
            EmulatorState(corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET), port=port
        )
        try:
            await rt.recover()  # what a restart does: transport failures retry at once
            await rt.dispatcher.run_once()
            assert (await row(rt, item_id)).status == "sent"
            assert sent_texts(fake) == ["等你回来"]
        finally:
            fake.stop()
    finally:
        await rt.aclose()


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff(n).total_seconds() for n in range(1, 12)]
    assert delays[0] <= 2.0 and delays[3] > delays[0]
    assert max(delays) <= 300.0


async def test_admin_lists_failed_and_retries(runtime: Runtime, emulator: RunningEmulator) -> None:
    emulator.state.invalid_webhook_keys.add("gone")
    item_id = await queue(runtime, "x", key="gone")
    await runtime.dispatcher.run_once()
    emulator.state.invalid_webhook_keys.clear()
    async with runtime.sessions() as session, session.begin():
        assert await outbox.retry_failed(session, item_id, now=runtime.clock())
    await runtime.dispatcher.run_once()
    assert (await row(runtime, item_id)).status == "sent"
    async with runtime.sessions() as session:
        statuses = (await session.execute(select(OutboxItem.status))).scalars().all()
    assert statuses == ["sent"]


async def test_an_unexpected_error_counts_as_an_attempt(
    runtime: Runtime, emulator: RunningEmulator, clock: Clock
) -> None:
    async with runtime.sessions() as session, session.begin():
        item = await outbox.enqueue(
            session,
            outbox.NewMessage(
                channel="appchat",
                target="x",
                payload={"msgtype": "text"},  # no chatid
                rate_key="appchat:x",
                order_key="group:x",
            ),
            now=clock.now,
        )
    await runtime.dispatcher.run_once()
    failed = await row(runtime, item.id)
    assert failed.status == "pending" and failed.attempts == 1
    assert failed.last_error and "ValueError" in failed.last_error
    for _ in range(6):
        clock.advance(400)
        await runtime.dispatcher.run_once()
    assert (await row(runtime, item.id)).status == "failed"  # the budget still ends it


async def test_idle_wait_ignores_rows_queued_behind_a_waiting_one(
    runtime: Runtime, clock: Clock
) -> None:
    first = await queue(runtime, "a", order="group:same")
    await queue(runtime, "b", order="group:same")
    async with runtime.sessions() as session, session.begin():
        await outbox.mark_retry(
            session,
            first,
            retry_at=clock.now + timedelta(minutes=5),
            error="-1",
            error_kind="retry",
            count_attempt=True,
        )
    # "b" is due now but cannot go before "a": the dispatcher should sleep, not spin.
    assert await runtime.dispatcher.idle_wait() == 5.0
    async with runtime.sessions() as session:
        assert await outbox.next_due_at(session) == clock.now + timedelta(minutes=5)


async def test_a_send_slower_than_the_lease_is_not_sent_twice(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    """Two dispatchers, a WeCom that takes longer than the lease to answer: the holder
    keeps its lease alive while the send is in flight, so the other never takes it."""
    from tests.helpers import RunningClock

    settings = configured_settings(
        database_url=database_url,
        templates_dir=templates_dir,
        api_base=emulator.base_url,
        outbox_lease_seconds=0.6,
    )
    clock = RunningClock()
    one = await build_runtime(settings, api_base=emulator.base_url, clock=clock)
    two = await build_runtime(settings, api_base=emulator.base_url, clock=clock, migrate=False)
    try:
        await one.client.access_token()  # the token fetch is not what is slow here
        emulator.state.add_fault(Fault("webhook/send", delay=2.0))
        item_id = await queue(one, "慢慢来")
        first = asyncio.create_task(one.dispatcher.run_once())
        rounds = 0
        while not first.done():  # the other replica keeps polling meanwhile
            rounds += await two.dispatcher.run_once()
            await asyncio.sleep(0.05)
        assert await first == 1
        assert rounds == 0
        assert sent_texts(emulator) == ["慢慢来"]
        assert (await row(one, item_id)).status == "sent"
    finally:
        await one.aclose()
        await two.aclose()


async def test_concurrent_dispatchers_keep_a_robots_window_at_the_receiver(
    database_url: str, templates_dir: Path
) -> None:
    """Four replicas' dispatchers drain one robot's queue. Requests take time in transit
    (the receiver stamps them later than they were started), unevenly: still never more
    than 20 within any 60 s as the receiver counts them, and each message once."""
    import itertools

    from bot.sandbox.emulator import EmulatorState
    from bot.sandbox.emulator.server import start_emulator_in_thread
    from tests.conftest import TEST_CORP_ID, TEST_CORP_SECRET

    clock = Clock(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    transits = itertools.cycle([1.5, 0.05, 0.9, 0.0, 0.3, 1.2, 0.1])

    def received_at() -> float:
        # Time passes while a request travels: the receiver's stamp is later than the
        # sender's start, and the sender sees the answer later still.
        clock.advance(next(transits))
        return clock.now.timestamp()

    state = EmulatorState(
        corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET, wall_clock=received_at
    )
    state.webhook_rate_limit = 10_000  # what is measured is our limiter, not the fake's
    fake = start_emulator_in_thread(state)
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=fake.base_url
    )
    replicas = [await build_runtime(settings, api_base=fake.base_url, clock=clock)]
    for _ in range(3):
        replicas.append(
            await build_runtime(settings, api_base=fake.base_url, clock=clock, migrate=False)
        )
    try:
        texts = [f"m{n}" for n in range(45)]
        for n, text in enumerate(texts):
            await queue(replicas[0], text, key="robot", order=f"o{n}")
        for _ in range(500):
            if len(sent_texts(fake)) == len(texts):
                break
            handled = await asyncio.gather(*(r.dispatcher.run_once() for r in replicas))
            if sum(handled) == 0:  # all wait for the window: on to the next due row
                async with replicas[0].sessions() as session:
                    due = await outbox.next_due_at(session)
                assert due is not None
                clock.now = max(due, clock.now + timedelta(milliseconds=10))
        assert sorted(sent_texts(fake)) == sorted(texts)
        stamps = sorted(r.at for r in fake.state.sent_since(0) if r.api == "webhook/send")
        closest = min(stamps[i + 20] - stamps[i] for i in range(len(stamps) - 20))
        assert closest >= 60, f"21 sends within {closest:.2f} s at the receiver"
        # ... and not held back much beyond the limit either: three windows for 45.
        assert stamps[-1] - stamps[0] < 3 * 65
    finally:
        for replica in replicas:
            await replica.aclose()
        fake.stop()
