"""The message log: a compact row per group message, written by the inbox worker in
the batch's transaction, marked when the message is taken back, kept
RETENTION_LOG_DAYS. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.sources.archive import ArchiveRecord, normalize_archive
from bot.sources.normalized import Incoming, store_many
from handlers.core.events import Message, Quoted
from handlers.features.message_log import LogMessage, apply_entries, log_entry
from handlers.wiring import build_features
from storage.inbox_append import InboxAppender
from storage.models import MessageLog
from storage.retention import apply_retention, strip_event
from tests.helpers import inbox_processor

T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def _record(n: int, msgtype: str, body: Any, *, sender: str = "wmAlice", action: str = "send"):  # type: ignore[no-untyped-def]
    raw = {
        "msgid": f"m{n}",
        "action": action,
        "from": sender,
        "roomid": "wrGroup",
        "msgtime": int((T0 + timedelta(seconds=n)).timestamp() * 1000),
        "msgtype": msgtype,
        msgtype: body,
    }
    return normalize_archive(ArchiveRecord.model_validate(raw), raw)


async def _log(sessions: async_sessionmaker[AsyncSession]) -> list[MessageLog]:
    async with sessions() as session:
        return list((await session.execute(select(MessageLog).order_by(MessageLog.id))).scalars())


async def test_the_worker_logs_each_group_message_and_marks_a_revoke(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender, templates_dir: Path
) -> None:
    single = Incoming(
        "archive",
        "private-1",
        "{}",
        Message(source="archive", occurred_at=T0, sender="wmBob", text="私聊", chat_type="single"),
        "message",
        None,
    )
    await store_many(
        appender,
        [
            _record(1, "text", {"content": "大家好，我是新来的"}),
            _record(2, "link", {"title": "报名", "link_url": "https://x.example"}, sender="wmBob"),
            _record(3, "image", {"sdkfileid": "f"}),
            _record(4, "revoke", {"pre_msgid": "m2"}, sender="wmBob", action="recall"),
            _record(5, "redpacket", {}),  # stored, no event: not logged
            single,  # not a group message: not logged
        ],
        now=T0,
    )
    processor = inbox_processor(sessions, build_features().registry, templates_dir, [])
    assert await processor.run_once() == 5  # the red packet was stored as ignored
    rows = await _log(sessions)
    assert [(r.member_id, r.kind, r.length, r.msg_id) for r in rows] == [
        ("wmAlice", "text", len("大家好，我是新来的"), "m1"),
        ("wmBob", "link", len("报名"), "m2"),
        ("wmAlice", "image", 0, "m3"),
    ]
    assert [r.revoked_at for r in rows] == [None, T0 + timedelta(seconds=4), None]
    assert {r.chat_id for r in rows} == {"wrGroup"}
    assert rows[0].sent_at == T0 + timedelta(seconds=1)
    assert all(r.source_id.startswith("inbox:") for r in rows)


async def test_a_replayed_entry_adds_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    entry = LogMessage("wrGroup", "wmAlice", T0, "text", 5, "m1", source_id="inbox:1")
    for _ in range(2):
        async with sessions() as session, session.begin():
            await apply_entries([entry, entry], session)
    assert len(await _log(sessions)) == 1


def test_a_reply_names_the_member_it_quotes_but_not_oneself() -> None:
    def reply(quoted_sender: str | None) -> LogMessage | None:
        event = Message(
            source="aibot",
            chat_id="wrG",
            occurred_at=T0,
            sender="zhangsan",
            text="同意",
            quote=Quoted(text="周六活动", sender=quoted_sender),
        )
        return log_entry(event, "inbox:9")

    first, own, unknown = reply("lisi"), reply("zhangsan"), reply(None)
    assert first is not None and first.replies_to == "lisi"
    assert own is not None and own.replies_to is None
    assert unknown is not None and unknown.replies_to is None


async def test_retention_deletes_old_log_rows_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    entries = [
        LogMessage("wrG", "wmA", T0 - timedelta(days=days), "text", 1, source_id=f"inbox:{days}")
        for days in (500, 401, 399, 1)
    ]
    async with sessions() as session, session.begin():
        await apply_entries(entries, session)
    result = await apply_retention(
        sessions,
        raw_before=T0 - timedelta(days=30),
        sent_before=T0 - timedelta(days=90),
        log_before=T0 - timedelta(days=400),
        batch=1,
    )
    assert result.log_deleted == 2 and result.complete
    assert "2 message-log row(s) deleted" in result.note()
    async with sessions() as session:
        left = await session.scalar(select(func.count()).select_from(MessageLog))
    assert left == 2


def test_retention_strips_what_a_link_or_mini_program_said() -> None:
    event = Message(
        source="archive",
        chat_id="wrG",
        occurred_at=T0,
        sender="wmA",
        msgtype="weapp",
        text="拼团",
        title="一元抢",
        urls=["https://ads.example/p"],
        weapp="某商城",
        quote=Quoted(text="原话"),
    )
    stripped = strip_event(json.loads(event.model_dump_json()))
    assert "拼团" not in str(stripped) and "一元抢" not in str(stripped)
    assert "ads.example" not in str(stripped) and "某商城" not in str(stripped)
    assert "原话" not in str(stripped)
    assert Message.model_validate(stripped).sender == "wmA"  # still parses
