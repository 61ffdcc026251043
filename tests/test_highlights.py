"""Highlights: the best threads of a period and what became available in it
(handlers/features/highlights.py) — the pure ranking, then the reads over a seeded
message log and inbox (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config.playbooks import Playbook
from handlers.core.events import Message
from handlers.features.health.signals import LoggedMessage
from handlers.features.highlights import (
    LogRow,
    became_available,
    best_threads,
    new_resources,
    opening_text,
    rank_threads,
    split_threads,
)
from handlers.features.points.good_content import GOOD_CONTENT
from storage.models import ContentItem, Group, InboxItem, Membership, MessageLog, PointsEntry

TZ = ZoneInfo("Asia/Shanghai")
WINDOW = timedelta(minutes=10)
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)  # a Monday
CHAT = "wrHighlights"
HOST = "owner1"  # internal ids are staff: a host
A, B, C = "wmAlice", "wmBob", "wmCarol"


def row(member: str, minutes: float, *, msg: str, question: bool = False) -> LogRow:
    at = T0 + timedelta(minutes=minutes)
    return LogRow(LoggedMessage(member, at, question), msg, f"inbox:{msg}", "text")


# --- pure ------------------------------------------------------------------------------


def test_threads_are_split_by_silences_longer_than_the_window() -> None:
    rows = [
        row(A, 0, msg="1"),
        row(B, 9, msg="2"),
        row(A, 19, msg="3"),  # 10 minutes after: still the same thread
        row(C, 30, msg="4"),  # 11 minutes: a new one
    ]
    assert [[r.msg_id for r in t] for t in split_threads(rows, WINDOW)] == [
        ["1", "2", "3"],
        ["4"],
    ]
    assert split_threads([], WINDOW) == []


def test_threads_rank_by_member_replies_then_essence_and_hosts_monologues_count_nothing() -> None:
    rows = [
        # Thread 1: a host talking, members answering the host only → no member rounds.
        row(HOST, 0, msg="h1"),
        row(HOST, 1, msg="h2"),
        row(A, 2, msg="h3"),
        # Thread 2: two member-to-member replies.
        row(A, 100, msg="t2", question=True),
        row(B, 101, msg="t2b"),
        row(A, 102, msg="t2c"),
        # Thread 3: one reply, marked 精华.
        row(C, 200, msg="t3"),
        row(B, 201, msg="t3b"),
        # Thread 4: one reply, no mark, earlier than thread 5 with the same score.
        row(B, 300, msg="t4"),
        row(C, 301, msg="t4b"),
        # Thread 5: a lone message marked 精华: kept, last.
        row(A, 400, msg="t5"),
    ]
    ranked = rank_threads(rows, {HOST}, WINDOW, {"msg:t3", "msg:t5"})
    assert [(s.opening.msg_id, s.replies, s.essence) for s in ranked] == [
        ("t2", 2, 0),
        ("t3", 1, 1),
        ("t4", 1, 0),
        ("t5", 0, 1),
    ]
    first = ranked[0]
    assert (first.participants, first.question, first.answered) == (2, True, True)


def test_a_question_answered_only_by_a_host_is_not_answered_by_a_member() -> None:
    rows = [
        row(A, 0, msg="q", question=True),
        row(HOST, 1, msg="answer"),
        row(B, 2, msg="thanks"),  # B answers the host: no member round either
        row(C, 3, msg="me too"),  # C answers B: one member round
    ]
    (only,) = rank_threads(rows, {HOST}, WINDOW, set())
    assert (only.replies, only.question, only.answered) == (1, True, False)


def test_opening_text_is_one_trimmed_line_and_kinds_without_text_get_a_label() -> None:
    def message(**fields: object) -> Message:
        return Message.model_validate(
            {"source": "archive", "chat_id": CHAT, "occurred_at": T0, "sender": A, **fields}
        )

    assert opening_text(message(text="有没有\n  私域运营的资料"), "text") == "有没有 私域运营的资料"
    long = opening_text(message(text="长" * 80), "text")
    assert long is not None and len(long) == 60 and long.endswith("…")
    assert opening_text(message(msgtype="image"), "image") == "[图片]"
    assert opening_text(message(msgtype="link", title="一篇好文章"), "link") == "一篇好文章"
    assert opening_text(message(msgtype="revoke", revokes="x"), "revoke") is None
    assert opening_text(message(msgtype="weapp"), "weapp") is None  # nothing to show
    assert opening_text("not a message", "text") is None


def test_an_item_becomes_available_when_created_or_on_its_first_valid_day() -> None:
    created = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert became_available(created, None, None, TZ) == created
    assert became_available(created, date(2026, 12, 1), None, TZ) == datetime(
        2026, 12, 1, tzinfo=TZ
    )
    assert became_available(created, date(2026, 11, 1), None, TZ) == created
    # Valid only until a day before it was added: never offered.
    assert became_available(created, None, date(2026, 11, 19), TZ) is None


# --- reads over a seeded log and inbox -------------------------------------------------


@dataclass
class Seeder:
    session: AsyncSession
    count: int = 0
    rows: dict[str, MessageLog] = field(default_factory=dict)

    async def say(
        self,
        member: str,
        minutes: float,
        text: str,
        *,
        msgtype: str = "text",
        question: bool = False,
        blanked: bool = False,
        revoked: bool = False,
        with_id: bool = True,
    ) -> MessageLog:
        self.count += 1
        msg_id = f"m{self.count}" if with_id else None
        at = T0 + timedelta(minutes=minutes)
        event = Message(
            source="archive",
            chat_id=CHAT,
            occurred_at=at,
            msg_id=msg_id,
            sender=member,
            msgtype=msgtype,
            text=text,
        ).model_dump(mode="json")
        if blanked:  # as retention leaves it
            event["text"] = ""
        inbox = InboxItem(
            source="archive",
            dedup_key=f"archive:{self.count}",
            raw="" if blanked else '{"raw": true}',
            event_type="message",
            event=event,
            chat_id=CHAT,
            status="done",
        )
        self.session.add(inbox)
        await self.session.flush()
        log = MessageLog(
            chat_id=CHAT,
            member_id=member,
            sent_at=at,
            kind=msgtype,
            length=len(text),
            msg_id=msg_id,
            source_id=f"inbox:{inbox.id}",
            is_question=question,
            revoked_at=at + timedelta(seconds=30) if revoked else None,
        )
        self.session.add(log)
        await self.session.flush()
        self.rows[text] = log
        return log

    async def mark(self, log: MessageLog, minutes: float) -> None:
        key = f"msg:{log.msg_id}" if log.msg_id else f"log:{log.source_id}"
        self.session.add(
            PointsEntry(
                chat_id=CHAT,
                member_id=log.member_id,
                delta=10,
                reason=GOOD_CONTENT,
                source_key=key,
                created_at=T0 + timedelta(minutes=minutes),
                actor=HOST,
            )
        )
        await self.session.flush()


async def seed_group(session: AsyncSession) -> None:
    session.add(Group(chat_id=CHAT, name="私域交流群", owner=HOST, tags=["新用户群"]))
    for member, name, kind in ((HOST, "群主", 1), (A, "爱丽丝", 2), (B, "鲍勃", 2), (C, None, 2)):
        session.add(Membership(chat_id=CHAT, member_id=member, name=name, member_type=kind))
    await session.flush()


WEEK = (T0, T0 + timedelta(days=7))


async def test_best_threads_read_openings_from_the_inbox_and_skip_what_cannot_be_shown(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await seed_group(session)
        seed = Seeder(session)
        # Before the week: a thread whose tail crosses its start is not this week's.
        await seed.say(A, -5, "上周末的话题")
        await seed.say(B, 1, "接着上周末的话题")
        # A: the best, three member replies; its opening has a newline and is long.
        await seed.say(
            A, 60, "有没有人做过私域社群的冷启动？\n求一份清单" + "。" * 70, question=True
        )
        await seed.say(B, 61, "我做过，先找种子用户")
        await seed.say(A, 62, "种子用户从哪里来？")
        await seed.say(C, 63, "老客户里挑")
        # B: one reply and a 精华 mark on the reply (an image).
        await seed.say(B, 200, "分享一个活动复盘")
        image = await seed.say(C, 201, "", msgtype="image")
        await seed.mark(image, 300)
        # One reply, no mark: ranks below B.
        await seed.say(C, 400, "周末有人去线下沙龙吗")
        await seed.say(A, 401, "我去")
        # Two replies, but its opening was blanked by retention: left out.
        await seed.say(B, 500, "被清理的开场", blanked=True)
        await seed.say(C, 501, "回复一")
        await seed.say(A, 502, "回复二")
        # The opening was taken back: the thread opens with the next message.
        await seed.say(A, 600, "撤回的开场", revoked=True)
        await seed.say(B, 601, "撤回之后的第一句")
        await seed.say(C, 602, "接话")
        # The host's monologue, answered by nobody but the host: not a thread worth a line.
        await seed.say(HOST, 700, "本周群公告")
        await seed.say(HOST, 701, "补充一下")
        # After the week.
        await seed.say(A, 7 * 24 * 60 + 1, "下周的话题")
        await seed.say(B, 7 * 24 * 60 + 2, "下周的回复")

    async with sessions() as session:
        threads = await best_threads(session, CHAT, *WEEK, 10)
    assert [(t.text[:8], t.replies, t.essence) for t in threads] == [
        ("有没有人做过私域", 3, 0),
        ("分享一个活动复盘", 1, 1),
        ("周末有人去线下沙", 1, 0),
        ("撤回之后的第一句", 1, 0),
    ]
    best = threads[0]
    assert best.text.startswith("有没有人做过私域社群的冷启动？ 求一份清单")
    assert len(best.text) == 60 and best.text.endswith("…")
    assert (best.starter_id, best.starter_name) == (A, "爱丽丝")
    assert (best.participants, best.question, best.answered) == (3, True, True)
    assert best.msg_id is not None and best.started_at == T0 + timedelta(minutes=60)
    # A member without a nickname is named neutrally, never by the wm… id.
    assert threads[2].starter_name == "新朋友"
    assert all(not t.starter_name.startswith("wm") for t in threads)

    async with sessions() as session:
        top = await best_threads(session, CHAT, *WEEK, 2)
        named = await best_threads(session, CHAT, *WEEK, 5, playbook=Playbook(neutral_name="群友"))
        assert await best_threads(session, CHAT, *WEEK, 0) == []
        assert await best_threads(session, "wrNobody", *WEEK, 5) == []
    assert [t.msg_id for t in top] == [t.msg_id for t in threads[:2]]
    assert named[2].starter_name == "群友"


async def test_new_resources_list_library_items_for_the_group_then_essence_messages(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    start, end = WEEK
    async with sessions() as session, session.begin():
        await seed_group(session)

        def item(title: str, created: datetime, **fields: object) -> ContentItem:
            values: dict[str, object] = {
                "title": title,
                "url": "https://example.com/" + title,
                "summary": f"{title}的摘要",
                "source": "own",
                "scope": [],
                "created_at": created,
                "updated_at": created,
            }
            values.update(fields)
            return ContentItem(**values)

        session.add_all(
            [
                item("外部好文", start + timedelta(hours=1), source="external"),
                item("新手指南", start + timedelta(days=2)),
                item("本群专属", start + timedelta(days=1), scope=[CHAT]),
                item("按标签", start + timedelta(days=1, hours=1), scope=["新用户群"]),
                item("别的群", start + timedelta(days=1), scope=["wrOther", "老用户群"]),
                item("关掉的", start + timedelta(days=1), enabled=False),
                item("早就有了", start - timedelta(days=3)),
                # Added earlier, first valid this Wednesday: new this week.
                item("定时上线", start - timedelta(days=3), valid_from=date(2026, 12, 2)),
                # Added this week but valid only from next week: not yet.
                item("下周上线", start + timedelta(days=1), valid_from=date(2026, 12, 8)),
                item("下周才加", end + timedelta(hours=1)),
            ]
        )
        seed = Seeder(session)
        good = await seed.say(B, 30, "整理了一份私域 SOP 清单，欢迎补充")
        await seed.mark(good, 90)
        no_id = await seed.say(C, 40, "没有 msgid 的好消息", with_id=False)
        await seed.mark(no_id, 50)
        old = await seed.say(A, -60 * 24, "上周的精华")
        await seed.mark(old, -60 * 24 + 5)  # marked last week: not this week's
        gone = await seed.say(A, 45, "被撤回的精华", revoked=True)
        await seed.mark(gone, 46)
        blank = await seed.say(A, 47, "被清理的精华", blanked=True)
        await seed.mark(blank, 48)

    async with sessions() as session:
        found = await new_resources(session, CHAT, start, end, 20)
        assert [(r.kind, r.title) for r in found] == [
            ("library", "本群专属"),
            ("library", "按标签"),
            ("library", "定时上线"),
            ("library", "新手指南"),
            ("library", "外部好文"),
            ("essence", "没有 msgid 的好消息"),
            ("essence", "整理了一份私域 SOP 清单，欢迎补充"),
        ]
        library = found[0]
        assert (library.url, library.summary) == ("https://example.com/本群专属", "本群专属的摘要")
        essence = found[-1]
        assert (essence.author_id, essence.author_name, essence.msg_id) == (B, "鲍勃", good.msg_id)
        assert essence.at == T0 + timedelta(minutes=90)
        assert found[2].at == datetime(2026, 12, 2, tzinfo=TZ)

        assert [r.title for r in await new_resources(session, CHAT, start, end, 2)] == [
            "本群专属",
            "按标签",
        ]
        assert await new_resources(session, CHAT, start, end, 0) == []
        # A group the library does not know by tag gets the unscoped items only.
        other = await new_resources(session, "wrElsewhere", start, end, 20)
        assert [r.title for r in other] == ["定时上线", "新手指南", "外部好文"]


@pytest.mark.parametrize("limit", [1, 3])
async def test_threads_whose_openings_cannot_be_read_do_not_use_up_the_limit(
    sessions: async_sessionmaker[AsyncSession], limit: int
) -> None:
    async with sessions() as session, session.begin():
        await seed_group(session)
        seed = Seeder(session)
        for n in range(6):  # the best ones first, all blanked
            base = n * 100
            await seed.say(A, base, f"清理{n}", blanked=n < 4)
            for reply in range(6 - n):
                await seed.say((B, C)[reply % 2], base + 1 + reply, f"回复{n}-{reply}")
    async with sessions() as session:
        threads = await best_threads(session, CHAT, *WEEK, limit)
    assert [t.text for t in threads] == ["清理4", "清理5"][:limit]
