"""Retention: old processed inbox payloads are blanked, old finished outbox rows deleted.

Runs on SQLite and on PostgreSQL (TEST_DATABASE_URL), with an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.runtime import Runtime, build_runtime
from bot.sandbox.emulator.server import RunningEmulator
from handlers.core.events import MemberInfo, MemberJoined, Message, event_from_json
from storage import inbox
from storage.models import InboxItem, OutboxItem, OwnerDigest, OwnerTask, ScheduledJob, Violation
from storage.retention import apply_retention, strip_event
from tests.helpers import Clock, configured_settings

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
RAW_BEFORE = NOW - timedelta(days=30)
SENT_BEFORE = NOW - timedelta(days=90)


def message_event(text: str = "我的手机号是 138") -> dict[str, Any]:
    return Message(
        source="archive",
        chat_id="wrG",
        occurred_at=NOW - timedelta(days=40),
        msg_id="m1",
        sender="wmA",
        text=text,
        response_url="https://example.invalid/reply?key=secret",
    ).model_dump(mode="json")


async def add_inbox(
    sessions: async_sessionmaker[AsyncSession],
    key: str,
    *,
    status: str,
    received_days_ago: float,
    processed_days_ago: float | None,
    event: dict[str, Any] | None = None,
) -> int:
    received = NOW - timedelta(days=received_days_ago)
    async with sessions() as session, session.begin():
        item = InboxItem(
            source="archive",
            dedup_key=key,
            raw=f"<xml>secret {key}</xml>",
            event_type="message",
            event=event if event is not None else message_event(),
            chat_id="wrG",
            status=status,
            next_attempt_at=received,
            received_at=received,
            processed_at=(
                None if processed_days_ago is None else NOW - timedelta(days=processed_days_ago)
            ),
        )
        session.add(item)
        await session.flush()
        return item.id


async def add_outbox(
    sessions: async_sessionmaker[AsyncSession],
    *,
    status: str,
    created_days_ago: float,
    sent_days_ago: float | None = None,
) -> int:
    async with sessions() as session, session.begin():
        item = OutboxItem(
            channel="webhook",
            target="k",
            payload={"msgtype": "text", "text": {"content": "hi"}},
            rate_key="webhook:k",
            order_key="group:wrG",
            status=status,
            created_at=NOW - timedelta(days=created_days_ago),
            next_attempt_at=NOW - timedelta(days=created_days_ago),
            sent_at=None if sent_days_ago is None else NOW - timedelta(days=sent_days_ago),
        )
        session.add(item)
        await session.flush()
        return item.id


async def inbox_row(sessions: async_sessionmaker[AsyncSession], item_id: int) -> InboxItem:
    async with sessions() as session:
        item = await session.get(InboxItem, item_id)
    assert item is not None
    return item


def test_strip_event_drops_content_and_still_parses() -> None:
    stripped = strip_event(message_event())
    parsed = event_from_json(stripped)
    assert isinstance(parsed, Message)
    assert parsed.text == "" and parsed.response_url is None
    assert (parsed.msg_id, parsed.sender, parsed.chat_id) == ("m1", "wmA", "wrG")
    assert parsed.occurred_at == NOW - timedelta(days=40)

    joined = MemberJoined(
        source="change_external_chat",
        chat_id="wrG",
        occurred_at=NOW,
        members=[MemberInfo(id="wmA", name="王语嫣", invitor="jack", invitor_name="杰克")],
    ).model_dump(mode="json")
    parsed_join = event_from_json(strip_event(joined))
    assert isinstance(parsed_join, MemberJoined)
    member = parsed_join.members[0]
    assert (member.id, member.invitor, member.name, member.invitor_name) == (
        "wmA",
        "jack",
        None,
        None,
    )
    assert strip_event(None) is None


async def test_old_processed_inbox_payloads_are_pruned_and_the_rest_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old_done = await add_inbox(
        sessions, "a", status="done", received_days_ago=40, processed_days_ago=40
    )
    old_failed = await add_inbox(
        sessions, "b", status="failed", received_days_ago=35, processed_days_ago=31
    )
    # Ignored on arrival: never processed_at, aged by received_at.
    old_ignored = await add_inbox(
        sessions, "c", status="ignored", received_days_ago=31, processed_days_ago=None
    )
    recent_done = await add_inbox(
        sessions, "d", status="done", received_days_ago=29, processed_days_ago=29
    )
    # Received long ago but processed recently: the window counts from processing.
    late_done = await add_inbox(
        sessions, "e", status="done", received_days_ago=40, processed_days_ago=10
    )
    old_pending = await add_inbox(
        sessions, "f", status="pending", received_days_ago=40, processed_days_ago=None
    )
    old_processing = await add_inbox(
        sessions, "g", status="processing", received_days_ago=40, processed_days_ago=None
    )

    result = await apply_retention(
        sessions, raw_before=RAW_BEFORE, sent_before=SENT_BEFORE, batch=2
    )
    assert result.inbox_pruned == 3 and result.complete

    for item_id in (old_done, old_failed, old_ignored):
        item = await inbox_row(sessions, item_id)
        assert item.raw == ""
        assert item.event is not None and item.event["text"] == ""
        assert "138" not in str(item.event) and "secret" not in str(item.event)
        assert item.event["msg_id"] == "m1" and item.chat_id == "wrG"
        assert item.event_type == "message"
    assert (await inbox_row(sessions, old_done)).status == "done"
    assert (await inbox_row(sessions, old_failed)).status == "failed"
    for item_id in (recent_done, late_done, old_pending, old_processing):
        item = await inbox_row(sessions, item_id)
        assert item.raw.startswith("<xml>secret")
        assert item.event is not None and item.event["text"] == "我的手机号是 138"

    async with sessions() as session:
        counts = await inbox.counts_by_status(session)
    assert counts == {"done": 3, "failed": 1, "ignored": 1, "pending": 1, "processing": 1}

    again = await apply_retention(sessions, raw_before=RAW_BEFORE, sent_before=SENT_BEFORE)
    assert again.inbox_pruned == 0 and again.note() == ""


async def test_a_pruned_inbox_row_still_dedups(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_inbox(sessions, "msg:dup", status="done", received_days_ago=40, processed_days_ago=40)
    await apply_retention(sessions, raw_before=RAW_BEFORE, sent_before=SENT_BEFORE)
    async with sessions() as session, session.begin():
        stored = await inbox.insert_once(
            session,
            source="archive",
            dedup_key="msg:dup",
            raw="<xml>again</xml>",
            event_type="message",
            event=message_event(),
            chat_id="wrG",
            status="pending",
            now=NOW,
        )
    assert not stored
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxItem)) == 1


async def test_old_finished_outbox_rows_are_deleted_and_the_rest_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old_sent = await add_outbox(sessions, status="sent", created_days_ago=100, sent_days_ago=95)
    old_cancelled = await add_outbox(sessions, status="cancelled", created_days_ago=91)
    old_failed = await add_outbox(sessions, status="failed", created_days_ago=120)
    recent_sent = await add_outbox(sessions, status="sent", created_days_ago=100, sent_days_ago=80)
    recent_failed = await add_outbox(sessions, status="failed", created_days_ago=89)
    old_pending = await add_outbox(sessions, status="pending", created_days_ago=200)
    old_sending = await add_outbox(sessions, status="sending", created_days_ago=200)

    result = await apply_retention(
        sessions, raw_before=RAW_BEFORE, sent_before=SENT_BEFORE, batch=2
    )
    assert result.outbox_deleted == 3 and result.complete
    assert result.note() == "3 outbox row(s) deleted"
    async with sessions() as session:
        left = set((await session.execute(select(OutboxItem.id))).scalars())
    assert left == {recent_sent, recent_failed, old_pending, old_sending}
    assert not left & {old_sent, old_cancelled, old_failed}


async def test_a_spent_time_budget_stops_between_batches_and_the_next_run_goes_on(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    for n in range(5):
        await add_inbox(
            sessions, f"k{n}", status="done", received_days_ago=40, processed_days_ago=40
        )
    ticks = iter([0.0, 0.0, 0.0, 10.0])  # start, batch 1, batch 2, then over budget

    result = await apply_retention(
        sessions,
        raw_before=RAW_BEFORE,
        sent_before=SENT_BEFORE,
        batch=2,
        budget_seconds=5.0,
        monotonic=lambda: next(ticks),
    )
    assert (result.inbox_pruned, result.complete) == (4, False)
    assert result.note() == "4 inbox payload(s) pruned, more remain"
    rest = await apply_retention(sessions, raw_before=RAW_BEFORE, sent_before=SENT_BEFORE)
    assert (rest.inbox_pruned, rest.complete) == (1, True)


@pytest.fixture
async def runtime(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[Runtime]:
    settings = configured_settings(
        database_url=database_url,
        templates_dir=templates_dir,
        api_base=emulator.base_url,
        retention_raw_days=7,
        retention_sent_days=14,
    )
    rt = await build_runtime(settings, api_base=emulator.base_url, clock=Clock(NOW))
    yield rt
    await rt.aclose()


async def test_the_retention_job_runs_hourly_with_the_configured_windows(
    runtime: Runtime,
) -> None:
    pruned = await add_inbox(
        runtime.sessions, "a", status="done", received_days_ago=8, processed_days_ago=8
    )
    kept = await add_inbox(
        runtime.sessions, "b", status="done", received_days_ago=6, processed_days_ago=6
    )
    gone = await add_outbox(runtime.sessions, status="sent", created_days_ago=15, sent_days_ago=15)
    stays = await add_outbox(runtime.sessions, status="sent", created_days_ago=13, sent_days_ago=13)

    await runtime.tick()

    assert (await inbox_row(runtime.sessions, pruned)).raw == ""
    assert (await inbox_row(runtime.sessions, kept)).raw != ""
    async with runtime.sessions() as session:
        assert await session.get(OutboxItem, gone) is None
        assert await session.get(OutboxItem, stays) is not None
        job = (
            await session.execute(select(ScheduledJob).where(ScheduledJob.name == "retention"))
        ).scalar_one()
    assert job.status == "idle" and job.due_at == NOW + timedelta(hours=1)
    assert job.last_result == "1 inbox payload(s) pruned, 1 outbox row(s) deleted"


async def test_owner_tasks_go_with_sent_messages_and_violations_with_the_log(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old, recent = NOW - timedelta(days=100), NOW - timedelta(days=10)
    async with sessions() as session, session.begin():
        sent = OwnerDigest(recipient="owner1", status="sent", due_at=old, flushed_at=old)
        waiting = OwnerDigest(recipient="owner2", status="open", due_at=old, opened_at=old)
        session.add_all([sent, waiting])
        await session.flush()
        for n, (digest, created) in enumerate(
            [(sent, old), (sent, old), (waiting, old), (sent, recent)]
        ):
            session.add(
                OwnerTask(
                    recipient=digest.recipient,
                    chat_id="wrG",
                    origin="rule_report",
                    summary="小李的原话",
                    dedup_key=f"k{n}",
                    digest_id=digest.id,
                    created_at=created,
                )
            )
        for n, created in enumerate((NOW - timedelta(days=500), recent)):
            session.add(
                Violation(
                    chat_id="wrG",
                    member_id="wmA",
                    rule="ads",
                    family="ads",
                    step="remind",
                    status="taken",
                    matcher="link",
                    evidence="x.com",
                    source_id=f"inbox:{n}",
                    created_at=created,
                )
            )
    result = await apply_retention(
        sessions,
        raw_before=RAW_BEFORE,
        sent_before=SENT_BEFORE,
        log_before=NOW - timedelta(days=400),
        batch=1,
    )
    assert (result.tasks_deleted, result.violations_deleted) == (2, 1) and result.complete
    async with sessions() as session:
        tasks = list((await session.execute(select(OwnerTask))).scalars())
        digests = list((await session.execute(select(OwnerDigest.recipient))).scalars())
        violations = list((await session.execute(select(Violation.created_at))).scalars())
    # A task still waiting for its digest is kept, and so is its digest; the sent
    # digest stays while one recent task points at it.
    assert sorted((t.recipient, t.created_at) for t in tasks) == [
        ("owner1", recent),
        ("owner2", old),
    ]
    assert sorted(digests) == ["owner1", "owner2"]
    assert violations == [recent]
