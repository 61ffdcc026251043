"""The archive puller against the emulator's archive over real HTTP, on SQLite and
PostgreSQL: pages, the persisted cursor, dedup, the lease, msgaudit_notify, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config.settings import SANDBOX_ARCHIVE_SECRET
from bot.metrics import Metrics
from bot.sandbox.emulator import Fault
from bot.sandbox.emulator.server import RunningEmulator
from bot.sandbox.simulate import archive_text_record, msgaudit_notify_xml, sign_xml
from bot.sources.archive_pull.emulator import EmulatorArchiveSource
from bot.sources.archive_pull.puller import PULL_LOOP, UNDECRYPTABLE, ArchivePuller
from bot.sources.archive_pull.source import ArchiveFetchError
from bot.workers.health import LoopHealth
from storage import archive_cursor
from storage.inbox_append import InboxAppender
from storage.models import ArchiveCursor, InboxItem
from tests.conftest import TEST_CORP_ID
from tests.helpers import AUTH, Clock, configured_settings, crypto, live_app, wait_for

CHAT = "wrArchive"
LEASE = timedelta(seconds=30)


def _records(emulator: RunningEmulator, count: int, start: int = 0) -> list[int]:
    """Archive `count` group messages; their seqs."""
    added = emulator.state.append_archive(
        [
            archive_text_record(
                chat_id=CHAT, sender=f"wm{n % 7}", content=f"第 {n} 条消息", msg_id=f"msg-{n}"
            )
            for n in range(start, start + count)
        ]
    )
    return [entry.seq for entry in added]


def _source(emulator: RunningEmulator) -> EmulatorArchiveSource:
    return EmulatorArchiveSource(
        api_base=emulator.base_url, corp_id=TEST_CORP_ID, secret=SANDBOX_ARCHIVE_SECRET
    )


@pytest.fixture
async def pullers(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
) -> AsyncIterator[list[ArchivePuller]]:
    """Make pullers over the same database and archive (each as another replica)."""
    made: list[ArchivePuller] = []
    yield made
    for puller in made:
        await puller.aclose()


def _new(
    made: list[ArchivePuller],
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    clock: Clock,
    **options: Any,
) -> ArchivePuller:
    options.setdefault("interval", 60.0)
    options.setdefault("lease", LEASE)
    puller = ArchivePuller(
        _source(emulator), sessions, appender, metrics=Metrics(), clock=clock, **options
    )
    made.append(puller)
    return puller


async def _inbox(sessions: async_sessionmaker[AsyncSession]) -> list[InboxItem]:
    async with sessions() as session:
        return list((await session.execute(select(InboxItem).order_by(InboxItem.id))).scalars())


async def _cursor(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await archive_cursor.cursor(session, "archive")


async def test_pages_are_stored_in_seq_order_and_the_cursor_follows(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    pullers: list[ArchivePuller],
) -> None:
    clock = Clock()
    puller = _new(pullers, sessions, appender, emulator, clock, page_size=10)
    seqs = _records(emulator, 25)
    report = await puller.pull()
    assert (report.pages, report.accepted, report.duplicate) == (3, 25, 0)
    assert report.seq == seqs[-1] == await _cursor(sessions)
    rows = await _inbox(sessions)
    assert [r.dedup_key for r in rows] == [f"archive:msg-{n}" for n in range(25)]
    assert {r.event_type for r in rows} == {"message"} and {r.chat_id for r in rows} == {CHAT}

    # Nothing new: one empty page, nothing stored, the cursor stays.
    assert (await puller.pull()).pages == 0
    assert await _cursor(sessions) == seqs[-1]

    # New records, one of them a msgid already stored (a re-sent record): counted, not stored.
    more = emulator.state.append_archive(
        [
            archive_text_record(chat_id=CHAT, sender="wm1", content="又一条", msg_id="msg-3"),
            archive_text_record(chat_id=CHAT, sender="wm1", content="新的", msg_id="msg-new"),
        ]
    )
    report = await puller.pull()
    assert (report.accepted, report.duplicate) == (1, 1)
    assert await _cursor(sessions) == more[-1].seq
    assert len(await _inbox(sessions)) == 26
    assert puller.metrics.archive_records.labels("accepted")._value.get() == 26
    assert puller.metrics.archive_records.labels("duplicate")._value.get() == 1


async def test_a_new_puller_starts_from_the_persisted_cursor(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    pullers: list[ArchivePuller],
) -> None:
    clock = Clock()
    _records(emulator, 5)
    await _new(pullers, sessions, appender, emulator, clock).pull()
    _records(emulator, 3, start=5)
    calls = emulator.state.calls["finance/getchatdata"]
    report = await _new(pullers, sessions, appender, emulator, clock).pull()  # a restart
    assert (report.accepted, report.duplicate) == (3, 0)
    assert emulator.state.calls["finance/getchatdata"] == calls + 2  # the page, the empty one


async def test_an_unreadable_record_is_kept_with_its_reason_and_the_rest_go_on(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    pullers: list[ArchivePuller],
) -> None:
    puller = _new(pullers, sessions, appender, emulator, Clock())
    emulator.state.append_archive(
        [
            archive_text_record(chat_id=CHAT, sender="wm1", content="好的", msg_id="ok-1"),
            {"msgid": "broken-1", "msgtime": -5, "msgtype": "text"},
            archive_text_record(chat_id=CHAT, sender="wm1", content="好的", msg_id="ok-2"),
        ]
    )
    report = await puller.pull()
    assert (report.accepted, report.errors) == (2, 1)
    rows = await _inbox(sessions)
    assert [r.dedup_key for r in rows] == ["archive:ok-1", "archive-error:broken-1", "archive:ok-2"]
    broken = rows[1]
    assert broken.event_type == UNDECRYPTABLE and broken.status == "ignored"
    assert "msgtime" in broken.raw
    assert puller.metrics.archive_records.labels("error")._value.get() == 1


async def test_a_failing_fetch_leaves_the_cursor_and_is_retried(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    pullers: list[ArchivePuller],
) -> None:
    clock = Clock()
    puller = _new(pullers, sessions, appender, emulator, clock, page_size=10)
    first = _records(emulator, 15)
    await puller.pull()
    _records(emulator, 10, start=15)
    emulator.state.add_fault(Fault(api="finance/getchatdata", http_status=503))
    with pytest.raises(ArchiveFetchError, match="HTTP 503"):
        await puller.pull()
    assert await _cursor(sessions) == first[-1]
    async with sessions() as session:
        row = await session.get(ArchiveCursor, "archive")
        assert row is not None and row.holder is None  # the lease was given back

    emulator.state.add_fault(Fault(api="finance/getchatdata", errcode=-1))
    health = LoopHealth(clock)
    health.started(PULL_LOOP, rounds=False)
    puller.health = health
    stop = asyncio.Event()
    loop = asyncio.create_task(puller.run(stop))
    try:
        await wait_for(lambda: health.loops[PULL_LOOP].last_success is not None, within=15)
    finally:
        stop.set()
        await loop
    assert health.loops[PULL_LOOP].errors == 1
    assert "errcode -1" in (health.loops[PULL_LOOP].last_error or "")
    assert len(await _inbox(sessions)) == 25
    assert puller.metrics.archive_pulls.labels("error")._value.get() == 2


async def test_one_replica_pulls_at_a_time_and_a_busy_wake_is_not_lost(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    pullers: list[ArchivePuller],
) -> None:
    clock = Clock()
    one = _new(pullers, sessions, appender, emulator, clock)
    two = _new(pullers, sessions, appender, emulator, clock)
    _records(emulator, 3)
    emulator.state.add_fault(Fault(api="finance/getchatdata", delay=1.0))  # a slow page
    first = asyncio.create_task(one.pull())

    async def one_holds_the_lease() -> bool:
        async with sessions() as session:
            row = await session.get(ArchiveCursor, "archive")
            return row is not None and row.holder == one.token

    await wait_for(one_holds_the_lease)
    report = await two.pull()  # a msgaudit_notify on the other replica
    assert report.busy
    calls_before = emulator.state.calls["finance/getchatdata"]
    done = await first
    assert done.accepted == 3
    # The first replica saw the request and pulled once more before letting go.
    assert emulator.state.calls["finance/getchatdata"] - calls_before == 2
    assert len(await _inbox(sessions)) == 3
    assert (await two.pull()).pages == 0  # free again: the other one may pull now
    assert two.metrics.archive_pulls.labels("busy")._value.get() == 1


async def test_an_expired_lease_is_taken_over(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    pullers: list[ArchivePuller],
) -> None:
    clock = Clock()
    async with sessions() as session, session.begin():  # a replica that died mid-pull
        held = await archive_cursor.acquire(
            session, "archive", token="4242-deadreplica", now=clock(), lease=LEASE
        )
    assert held is not None and held.seq == 0
    _records(emulator, 4)
    survivor = _new(pullers, sessions, appender, emulator, clock)
    clock.advance(LEASE.total_seconds() - 1)
    assert (await survivor.pull()).busy
    clock.advance(2)
    report = await survivor.pull()
    assert report.accepted == 4 and not report.busy
    # The dead replica's token no longer moves the cursor.
    async with sessions() as session, session.begin():
        assert not await archive_cursor.advance(
            session, "archive", token="4242-deadreplica", seq=10**9, now=clock(), lease=LEASE
        )
    assert await _cursor(sessions) == report.seq


async def test_msgaudit_notify_wakes_the_puller_and_is_not_stored(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    settings = configured_settings(
        database_url=database_url,
        templates_dir=templates_dir,
        api_base=emulator.base_url,
        wecom_archive_secret=SANDBOX_ARCHIVE_SECRET,
        archive_source="emulator",
        archive_pull_seconds=3600,  # only the notify can bring the record in time
    )
    async with live_app(settings) as live:
        runtime = live.runtime
        assert runtime.puller is not None
        loops = runtime.health.loops
        await wait_for(lambda: PULL_LOOP in loops and loops[PULL_LOOP].last_success is not None)
        emulator.state.append_archive(
            [archive_text_record(chat_id=CHAT, sender="wm1", content="有资料吗", msg_id="n-1")]
        )
        xml = msgaudit_notify_xml(corp_id=TEST_CORP_ID, agent_id=2000004)
        signed = sign_xml(crypto(), xml)
        answer = await live.post_callback(signed.params, signed.body)
        assert answer.text == "success"

        async def pulled() -> bool:
            return any(r.dedup_key == "archive:n-1" for r in await _inbox(runtime.sessions))

        await wait_for(pulled, within=5)
        rows = await _inbox(runtime.sessions)
        assert [r.dedup_key for r in rows] == ["archive:n-1"]  # the notify itself is not kept
        metrics = (await live.http.get("/metrics")).text
        assert 'wecom_archive_records_total{result="accepted"} 1.0' in metrics
        assert (
            'wecom_callbacks_total{path="/wecom/callback",result="archive_notify"} 1.0' in metrics
        )
        ready = await live.http.get("/readyz")
        assert ready.status_code == 200
        assert runtime.health.loops[PULL_LOOP].running
        # The same record posted to /wecom/archive is a duplicate: one path into the inbox.
        posted = await live.http.post(
            "/wecom/archive",
            headers=AUTH,
            json=[
                archive_text_record(chat_id=CHAT, sender="wm1", content="有资料吗", msg_id="n-1")
            ],
        )
        assert posted.json()["duplicate"] == 1
