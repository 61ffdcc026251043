"""Keyword answers in groups (issue 10, immediate and wait modes): which messages ask, how a
reply reads, the playbook section, and the live service through /wecom/archive on
SQLite and PostgreSQL with a library of over a thousand items."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config.playbooks.keywords_section import DEFAULT_THRESHOLD, Expert, KeywordsSection
from bot.sandbox.emulator.server import RunningEmulator
from bot.sources.aibot import normalize_aibot
from bot.sources.normalized import store_many
from handlers.core.events import Message
from handlers.features.content import index
from handlers.features.content.answers import (
    Offered,
    addressed_to,
    asking,
    question_key,
    reply_text,
)
from handlers.features.content.experts import experts_for
from handlers.features.content.library import ContentIn, upsert_many
from storage.models import KeywordAnswer, KeywordWait, OwnerTask, UnansweredQuestion
from tests.helpers import (
    AUTH,
    MORNING,
    Clock,
    LiveApp,
    archive_text,
    live_webhook_group,
    post_archive,
    sent_texts,
    settle,
)
from tests.test_playbooks import issues, write

GROUP = "wrAsk"
MEMBERS = {"wmA": "小安", "wmB": "小白", "wmC": "小陈"}
T0 = MORNING
TRIGGERS = ("有没有", "求", "推荐", "?", "？")

# --- pure: who asks, how a reply reads ------------------------------------------------


def test_only_messages_that_ask_go_to_the_library() -> None:
    assert asking("有没有发票模板", TRIGGERS, mentioned_bot=False).asks
    assert asking("發票怎麼開？", TRIGGERS, mentioned_bot=False).question  # full-width ？
    assert asking("@小助手 发票", TRIGGERS, mentioned_bot=True).asks
    chatter = asking("今天天气不错，大家周末愉快", TRIGGERS, mentioned_bot=False)
    assert not chatter.asks
    # A trigger written in full width or traditional script still counts.
    assert asking("求個 PDF", ("求",), mentioned_bot=False).triggered
    assert not asking("好的收到", ("求",), mentioned_bot=False).asks


def test_one_question_in_other_spellings_has_one_key() -> None:
    assert question_key("有没有量子计算的资料？") == question_key("@小助手 有没有 量子計算的資料?")
    assert question_key("有没有量子计算的资料？") != question_key("有没有区块链的资料？")
    assert question_key("？？？") == ""


def test_a_reply_lists_items_in_order_with_link_or_summary() -> None:
    text = reply_text(
        "小安",
        [
            Offered("发票指南", "https://example.com/f", "不显示"),
            Offered("报销流程", None, "先填单，再找财务签字" * 10),
        ],
    )
    lines = text.split("\n")
    assert lines[0] == "@小安 群里的资料可能有帮助："
    assert lines[1] == "1. 发票指南 https://example.com/f"
    assert lines[2].startswith("2. 报销流程：先填单") and lines[2].endswith("…")
    assert len(lines[2]) <= len("2. 报销流程：") + 60


# --- the playbook section -----------------------------------------------------------


def test_the_spec_names_load_and_the_default_threshold_is_the_index_s() -> None:
    spec = KeywordsSection.model_validate(
        {
            "mode": "wait",
            "wait_minutes": 5,
            "triggers": list(TRIGGERS),
            "cooldown_seconds": 600,
            "max_items": 2,
        }
    )
    assert (spec.mode, spec.group_cooldown_seconds, spec.top_n) == ("wait", 600, 2)
    plain = KeywordsSection()
    assert (plain.top_n, plain.group_cooldown_seconds, plain.mode) == (3, 60, "immediate")
    assert DEFAULT_THRESHOLD == index.DEFAULT_THRESHOLD


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("keywords:\n  mode: later\n", "mode"),
        ("keywords:\n  top_n: 0\n", "top_n"),
        ("keywords:\n  triggers: ['有没有', ' ']\n", "triggers"),
        ("keywords:\n  wait_minutes: 0\n", "wait_minutes"),
        ("keywords:\n  threshold: -1\n", "threshold"),
        ("keywords:\n  cooldown: 5\n", "cooldown"),
        ("keywords:\n  experts:\n    - tags: []\n      members: [zhangsan]\n", "tags"),
        ("keywords:\n  experts:\n    - tags: [退税]\n      members: [' ']\n", "members"),
        ("keywords:\n  expert_cue: loud\n", "expert_cue"),
        ("keywords:\n  group_interval_seconds: -1\n", "group_interval_seconds"),
    ],
)
def test_a_bad_keywords_section_is_refused_at_its_field(
    tmp_path: Path, body: str, field: str
) -> None:
    write(tmp_path, "default.yaml", body)
    found = issues(tmp_path)
    assert any(field in str(issue) for issue in found), found


# --- live: a library of a thousand items and more -----------------------------------

INVOICE_OWN = ContentIn(
    title="增值税发票开具指南",
    url="https://example.com/fapiao",
    keywords=["发票", "增值税"],
    source="own",
)
INVOICE_EXTERNAL = ContentIn(
    title="发票报销流程（外部整理）",
    body="报销要先填单",
    summary="发票怎么报销：填单、贴票、财务签字",
    keywords=["发票", "报销"],
    source="external",
)
SOCIAL = ContentIn(
    title="员工社保缴纳操作手册",
    url="https://example.com/shebao",
    summary="新员工入职后如何在线缴纳社保和公积金，每月截止日期",
    keywords=["社保手册"],
    source="own",
)
OTHER_GROUP = ContentIn(
    title="发票只给别的群",
    body="x",
    keywords=["发票"],
    scope=["wrElsewhere"],
    source="own",
)


def generated(count: int) -> list[ContentIn]:
    topics = ("市场", "运营", "招聘", "法务", "设计", "产品", "财税", "物流")
    return [
        ContentIn(
            title=f"{topics[i % len(topics)]}资料第{i}期",
            url=f"https://example.com/item/{i}",
            summary=f"{topics[i % len(topics)]}方向的第{i}份整理",
            keywords=[f"专题{i}号"],
            source="own" if i % 2 else "external",
        )
        for i in range(count)
    ]


@asynccontextmanager
async def library_service(
    database_url: str,
    templates_dir: Path,
    emulator: RunningEmulator,
    items: list[ContentIn],
    *,
    edits: dict[str, str] | None = None,
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    """The live service with one webhook group of MEMBERS and `items` in the library;
    `edits` replaces lines of the shipped default playbook first (each must be there)."""
    playbook = templates_dir / "default.yaml"
    text = playbook.read_text(encoding="utf-8")
    for old, new in (edits or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    playbook.write_text(text, encoding="utf-8")
    clock = Clock(T0)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="答疑群",
        members=MEMBERS,
        joined=True,
    ) as app:
        for start in range(0, len(items), 500):  # as `wecom-bot content import` stores them
            async with app.runtime.sessions() as session:
                await upsert_many(session, items[start : start + 500], now=T0)
                await session.commit()
        yield app, clock


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    items = [*generated(1200), INVOICE_EXTERNAL, INVOICE_OWN, SOCIAL, OTHER_GROUP]
    async with library_service(database_url, templates_dir, emulator, items) as service:
        yield service


def answers(emulator: RunningEmulator) -> list[str]:
    return [text for text in sent_texts(emulator) if "群里的资料可能有帮助" in text]


async def say(app: LiveApp, clock: Clock, msgid: str, sender: str, text: str, **extra: Any) -> None:
    await post_archive(app, [archive_text(msgid, sender, GROUP, clock.now, text, **extra)])


async def unanswered(app: LiveApp, **params: str) -> Any:
    got = await app.http.get("/admin/questions/unanswered", headers=AUTH, params=params)
    assert got.status_code == 200, got.text
    return got.json()


async def test_two_keywords_one_reply_own_first_then_the_cooldown(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await say(app, clock, "m1", "wmA", "有没有发票报销的资料？")
    [reply] = answers(emulator)
    lines = reply.split("\n")
    assert lines[0] == "@小安 群里的资料可能有帮助："
    assert lines[1] == "1. 增值税发票开具指南 https://example.com/fapiao"
    assert lines[2].startswith("2. 发票报销流程（外部整理）：")
    assert "别的群" not in reply  # scoped to another group
    # The same question 10 s later: both items were just offered here.
    clock.advance(10)
    await say(app, clock, "m2", "wmB", "有没有发票报销的资料？")
    assert len(answers(emulator)) == 1
    assert (await unanswered(app))["questions"] == []  # in cooldown is not unanswered
    # After the cooldown (60 s in the shipped playbook) it is offered again.
    clock.advance(61)
    await say(app, clock, "m3", "wmC", "有没有发票报销的资料？")
    assert len(answers(emulator)) == 2
    async with app.runtime.sessions() as session:
        rows = (await session.scalars(select(KeywordAnswer).order_by(KeywordAnswer.id))).all()
    assert [(r.member_id, r.source_key) for r in rows] == [("wmA", "msg:m1"), ("wmC", "msg:m3")]


async def test_a_fuzzy_question_finds_its_item_and_small_talk_gets_nothing(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await say(app, clock, "s1", "wmA", "今天天气不错，大家周末愉快")
    await say(app, clock, "s2", "wmB", "哈哈哈收到")
    assert answers(emulator) == []
    await say(app, clock, "f1", "wmA", "新员工的社保怎么缴纳呢？")
    [reply] = answers(emulator)
    assert reply.split("\n")[1] == "1. 员工社保缴纳操作手册 https://example.com/shebao"
    assert (await unanswered(app))["questions"] == []


async def test_a_missed_question_is_listed_for_the_week(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await say(app, clock, "q1", "wmA", "有没有人知道量子计算机的价格？")
    clock.advance(30)
    await say(app, clock, "q2", "wmB", "有没有人知道 量子計算機的價格?")
    await say(app, clock, "q3", "wmC", "随便聊聊")  # not a question: not recorded
    assert answers(emulator) == []
    listed = await unanswered(app, chat_id=GROUP, week="2026-W48")
    assert listed["week"] == "2026-W48"
    [top] = listed["questions"]
    assert (top["count"], top["askers"], top["chat_ids"]) == (2, 2, [GROUP])
    assert top["text"] == "有没有人知道 量子計算機的價格?"  # the latest wording
    assert top["last_asked_at"].endswith("+08:00")
    assert (await unanswered(app, week="2026-W47"))["questions"] == []
    # Replayed (the same archive record again) changes nothing.
    await say(app, clock, "q1", "wmA", "有没有人知道量子计算机的价格？")
    async with app.runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(UnansweredQuestion)) == 2


async def test_the_unanswered_list_refuses_bad_input(live: tuple[LiveApp, Clock]) -> None:
    app, _clock = live
    url = "/admin/questions/unanswered"
    bad_week = await app.http.get(url, headers=AUTH, params={"week": "2026-48"})
    assert bad_week.status_code == 422 and "2026-W48" in bad_week.text
    no_week = await app.http.get(url, headers=AUTH, params={"week": "2026-W60"})
    assert no_week.status_code == 422
    unknown = await app.http.get(url, headers=AUTH, params={"chat_id": "wrNobody"})
    assert unknown.status_code == 404
    too_many = await app.http.get(url, headers=AUTH, params={"limit": "0"})
    assert too_many.status_code == 422
    assert (await app.http.get(url)).status_code == 401


async def test_a_library_change_is_picked_up_by_the_next_message(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await say(app, clock, "c1", "wmA", "求直播回放")
    assert answers(emulator) == []
    created = await app.http.post(
        "/admin/content",
        headers=AUTH,
        json={
            "title": "上周直播回放",
            "url": "https://example.com/live",
            "keywords": ["直播回放"],
        },
    )
    assert created.status_code == 201, created.text
    clock.advance(5)
    await say(app, clock, "c2", "wmB", "求直播回放")
    [reply] = answers(emulator)
    assert "1. 上周直播回放 https://example.com/live" in reply


async def test_a_customer_group_gets_an_owner_task_not_a_post(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    put = await app.http.put(
        f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "customer_group"}}
    )
    assert put.status_code == 200, put.text
    await say(app, clock, "o1", "wmA", "有没有增值税的资料")
    assert answers(emulator) == []
    async with app.runtime.sessions() as session:
        tasks = list((await session.scalars(select(OwnerTask))).all())
        recorded = await session.scalar(select(func.count()).select_from(KeywordAnswer))
    assert tasks and {t.origin for t in tasks} == {"keyword_answer"}
    assert tasks[0].paste_text is not None
    assert "1. 增值税发票开具指南 https://example.com/fapiao" in tasks[0].paste_text
    assert "小安" in tasks[0].summary
    assert recorded == 1


async def test_without_a_keywords_section_the_bot_stays_quiet(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    text = (templates_dir / "default.yaml").read_text(encoding="utf-8")
    start = text.index("keywords:\n")
    end = text.index("\n\n", start)
    (templates_dir / "default.yaml").write_text(text[:start] + text[end + 2 :], encoding="utf-8")
    clock = Clock(T0)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="答疑群",
        members=MEMBERS,
        joined=True,
    ) as app:
        async with app.runtime.sessions() as session:
            await upsert_many(session, [INVOICE_OWN], now=T0)
            await session.commit()
        await say(app, clock, "n1", "wmA", "有没有发票？")
        assert answers(emulator) == []
        async with app.runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(UnansweredQuestion)) == 0


# --- the per-process index: rebuilt on a new version, never blocking the loop -----


async def test_the_index_is_rebuilt_once_per_version_and_stale_while_building(
    sessions: Any,
) -> None:
    import asyncio
    import threading
    from datetime import date

    from handlers.features.content.index_cache import IndexCache, build_library

    gate = threading.Event()
    gate.set()
    built: list[int] = []
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    def build(entries: Any, version: int, day: date) -> Any:
        loop.call_soon_threadsafe(started.set)
        assert gate.wait(timeout=30)  # the test opens it; a bound, not a timer
        built.append(version)
        return build_library(entries, version, day)

    cache = IndexCache(build)
    today = T0.date()
    async with sessions() as session:
        await upsert_many(session, [INVOICE_OWN], now=T0)
        await session.commit()
    async with sessions() as session:
        first = await cache.library(session, today=today)
        assert await cache.library(session, today=today) is first
    assert built == [first.version]
    async with sessions() as session:
        await upsert_many(session, [SOCIAL], now=T0)
        await session.commit()
    gate.clear()
    started.clear()
    async with sessions() as one, sessions() as two:
        building = asyncio.create_task(cache.library(one, today=today))
        await started.wait()  # the build runs in its thread, the loop is free
        assert cache.building
        # Meanwhile another batch answers from the previous index, at once.
        assert await cache.library(two, today=today) is first
        gate.set()
        second = await building
    assert second.version == first.version + 1 and len(second.index) == 2
    assert built == [first.version, second.version]
    # A new local day rebuilds too (validity dates start and end without a write).
    async with sessions() as session:
        third = await cache.library(session, today=today.replace(day=today.day + 1))
    assert third.version == second.version and len(built) == 3


# --- mode: wait (群友交流 > 群主回答) ------------------------------------------------

WAIT = timedelta(minutes=5)  # the shipped playbook's wait_minutes


@pytest.fixture
async def waiting(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    async with library_service(
        database_url,
        templates_dir,
        emulator,
        [INVOICE_OWN, SOCIAL],
        edits={"  mode: immediate\n": "  mode: wait\n"},
    ) as service:
        yield service


async def waits(app: LiveApp) -> list[tuple[str, str, str]]:
    async with app.runtime.sessions() as session:
        rows = (await session.scalars(select(KeywordWait).order_by(KeywordWait.id))).all()
    return [(row.source_key, row.status, row.note) for row in rows]


async def answer_rows(app: LiveApp) -> list[tuple[str, str]]:
    async with app.runtime.sessions() as session:
        rows = (await session.scalars(select(KeywordAnswer).order_by(KeywordAnswer.id))).all()
    return [(row.member_id, row.source_key) for row in rows]


async def test_wait_a_member_s_answer_within_the_window_keeps_the_bot_quiet(
    waiting: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = waiting
    await say(app, clock, "w1", "wmA", "有没有增值税发票的资料？")
    assert answers(emulator) == []
    clock.advance(90)
    await say(app, clock, "w2", "wmB", "群公告里有，财务那份文档写得很清楚")
    await settle(app, at=T0 + WAIT)
    assert answers(emulator) == []
    assert await waits(app) == [("msg:w1", "quiet", "answered by a member (wmB)")]
    assert await answer_rows(app) == []  # nothing offered: no cooldown starts
    await settle(app, at=T0 + 2 * WAIT)  # done once
    assert answers(emulator) == []


async def test_wait_an_unanswered_question_is_answered_at_the_due_time_not_before(
    waiting: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = waiting
    await say(app, clock, "w1", "wmA", "有没有增值税发票的资料？")
    clock.advance(30)
    await say(app, clock, "w2", "wmA", "在线等")  # the asker again is no answer
    # A member writing after the window is no answer either.
    clock.advance(int(WAIT.total_seconds()))
    await settle(app, at=T0 + WAIT - timedelta(seconds=1))
    assert answers(emulator) == []
    assert [status for _, status, _ in await waits(app)] == ["pending"]
    await say(app, clock, "w3", "wmB", "不知道呢")
    await settle(app, at=T0 + WAIT)
    [reply] = answers(emulator)
    assert reply.split("\n")[:2] == [
        "@小安 群里的资料可能有帮助：",
        "1. 增值税发票开具指南 https://example.com/fapiao",
    ]
    assert [status for _, status, _ in await waits(app)] == ["sent"]
    assert await answer_rows(app) == [("wmA", "msg:w1")]
    # Replayed question and a later tick: still one reply.
    await say(app, clock, "w1", "wmA", "有没有增值税发票的资料？")
    await settle(app, at=T0 + 2 * WAIT)
    assert len(answers(emulator)) == 1 and len(await waits(app)) == 1


async def test_wait_an_answer_by_staff_is_not_a_member_answer(
    waiting: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = waiting
    await say(app, clock, "w1", "wmA", "有没有增值税发票的资料？")
    clock.advance(60)
    await say(app, clock, "w2", "zhangsan", "我找一下，稍等")  # a colleague (staff)
    await settle(app, at=T0 + WAIT)
    assert len(answers(emulator)) == 1
    assert [status for _, status, _ in await waits(app)] == ["sent"]


async def test_wait_an_at_mention_of_the_bot_is_answered_at_once(
    waiting: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, _clock = waiting
    payload = {
        "msgid": "at-1",
        "chatid": GROUP,
        "chattype": "group",
        "from": {"userid": "wmA"},
        "msgtype": "text",
        "text": {"content": "@小助手 增值税发票"},
    }
    incoming = normalize_aibot(payload, json.dumps(payload, ensure_ascii=False))
    assert isinstance(incoming.event, Message) and incoming.event.mentioned_bot
    incoming = replace(incoming, event=incoming.event.model_copy(update={"occurred_at": T0}))
    await store_many(app.runtime.appender, [incoming], now=app.runtime.clock())
    await settle(app)
    [reply] = answers(emulator)
    assert "1. 增值税发票开具指南 https://example.com/fapiao" in reply
    assert await waits(app) == []
    assert await answer_rows(app) == [("wmA", "msg:at-1")]


async def test_wait_the_same_question_asked_again_joins_the_held_answer(
    waiting: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = waiting
    await say(app, clock, "w1", "wmA", "有没有增值税发票的资料？")
    clock.advance(60)
    # Asked again in other words by another member: no second held answer, and the
    # second asking is not a member answering the first.
    await say(app, clock, "w2", "wmB", "求一份增值税发票的资料")
    await say(app, clock, "w2", "wmB", "求一份增值税发票的资料")  # replayed
    assert [(key, status) for key, status, _ in await waits(app)] == [("msg:w1", "pending")]
    await settle(app, at=T0 + WAIT)
    [reply] = answers(emulator)
    assert reply.split("\n")[:2] == [
        "@小安 @小白 群里的资料可能有帮助：",
        "1. 增值税发票开具指南 https://example.com/fapiao",
    ]
    assert [status for _, status, _ in await waits(app)] == ["sent"]


async def test_wait_an_at_mention_meanwhile_makes_the_held_answer_unneeded(
    waiting: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = waiting
    await say(app, clock, "w1", "wmA", "有没有增值税发票的资料？")
    clock.advance(30)
    payload = {
        "msgid": "at-2",
        "chatid": GROUP,
        "chattype": "group",
        "from": {"userid": "wmA"},  # the asker, impatient: no member answer
        "msgtype": "text",
        "text": {"content": "@小助手 增值税发票"},
    }
    incoming = normalize_aibot(payload, json.dumps(payload, ensure_ascii=False))
    assert isinstance(incoming.event, Message)
    event = incoming.event.model_copy(update={"occurred_at": clock.now})
    await store_many(app.runtime.appender, [replace(incoming, event=event)], now=clock.now)
    await settle(app)
    await settle(app, at=T0 + WAIT)
    assert len(answers(emulator)) == 1  # the mention's, at once
    assert [(s, n) for _, s, n in await waits(app)] == [
        ("quiet", "its items were offered in the group meanwhile")
    ]


# --- experts: a question nobody could answer goes to the one who knows ------------

EXPERTS_YAML = """  experts:
    - tags: [退税, 出口]
      members: [{members}]
  expert_after_minutes: 10
"""


def with_experts(
    database_url: str,
    templates_dir: Path,
    emulator: RunningEmulator,
    *,
    cue: str,
    members: str = "zhangsan",
) -> AbstractAsyncContextManager[tuple[LiveApp, Clock]]:
    experts = EXPERTS_YAML.format(members=members)
    section = f"  group_cooldown_seconds: 60\n{experts}  expert_cue: {cue}\n"
    return library_service(
        database_url,
        templates_dir,
        emulator,
        [INVOICE_OWN, SOCIAL],
        edits={"  group_cooldown_seconds: 60\n": section},
    )


EXPERT_AFTER = timedelta(minutes=10)


async def test_an_unanswered_question_in_an_expert_s_field_cues_the_expert_privately(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    async with with_experts(database_url, templates_dir, emulator, cue="private") as (app, clock):
        await say(app, clock, "e1", "wmA", "有没有人知道出口退税要准备什么？")
        clock.advance(120)
        await say(app, clock, "e2", "wmB", "出口退税要准备什么呀？")  # the same question
        await settle(app, at=T0 + EXPERT_AFTER - timedelta(seconds=1))
        assert sent_texts(emulator, "message/send") == []
        await settle(app, at=T0 + EXPERT_AFTER)
        [cue] = sent_texts(emulator, "message/send")
        assert cue.startswith("「答疑群」里小安、小白问：「有没有人知道出口退税要准备什么?」")
        assert "过了 10 分钟还没人回答" in cue
        assert answers(emulator) == []  # the group saw nothing from the bot
        # A question outside every expert's field is only counted.
        await say(app, clock, "e4", "wmA", "有没有人知道量子计算机的价格？")
        await settle(app, at=clock.now + 2 * EXPERT_AFTER)
        assert len(sent_texts(emulator, "message/send")) == 1
        # Still counted for the content team either way.
        listed = await unanswered(app, chat_id=GROUP, week="2026-W48")
        assert sorted(q["count"] for q in listed["questions"]) == [1, 1, 1]


async def test_an_answer_by_anyone_keeps_the_expert_uncued(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    async with with_experts(database_url, templates_dir, emulator, cue="private") as (app, clock):
        await say(app, clock, "e1", "wmA", "有没有人知道出口退税要准备什么？")
        clock.advance(300)
        await say(app, clock, "e2", "wmB", "要报关单和发票，税务局网站上有清单")
        await settle(app, at=T0 + EXPERT_AFTER)
        assert sent_texts(emulator, "message/send") == []
        assert [(s, n) for _, s, n in await waits(app)] == [("quiet", "answered (wmB)")]
        # The expert asking in their own field is not cued to themselves.
        await say(app, clock, "e3", "zhangsan", "有人做过出口退税的申报吗？")
        await settle(app, at=clock.now + EXPERT_AFTER)
        assert sent_texts(emulator, "message/send") == []


async def test_a_group_cue_names_the_expert_in_the_group(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    # The expert here is a member (a 讲师, say), named in the group by their group name.
    async with with_experts(database_url, templates_dir, emulator, cue="group", members="wmC") as (
        app,
        clock,
    ):
        await say(app, clock, "e1", "wmA", "有没有人知道出口退税要准备什么？")
        await settle(app, at=T0 + EXPERT_AFTER)
        assert [t for t in sent_texts(emulator) if not t.startswith("欢迎")] == [
            "@小陈 小安刚才问：「有没有人知道出口退税要准备什么?」，群里还没人接上。"
            "这方面您最在行，方便时帮忙解答一下？"
        ]


async def test_group_interval_one_reply_per_interval_but_mentions_always(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    async with library_service(
        database_url,
        templates_dir,
        emulator,
        [INVOICE_OWN, SOCIAL],
        edits={
            "  group_cooldown_seconds: 60\n": (
                "  group_cooldown_seconds: 60\n  group_interval_seconds: 30\n"
            )
        },
    ) as (app, clock):
        await say(app, clock, "g1", "wmA", "有没有增值税发票的资料？")
        clock.advance(10)
        await say(app, clock, "g2", "wmB", "新员工的社保怎么缴纳呢？")
        assert len(answers(emulator)) == 1
        clock.advance(21)
        await say(app, clock, "g3", "wmC", "新员工的社保怎么缴纳呢？")
        assert len(answers(emulator)) == 2


def test_experts_are_found_by_the_field_the_question_names() -> None:
    experts = (
        Expert(tags=("退税", "出口"), members=("zhangsan", "lisi")),
        Expert(tags=("發票",), members=("wangwu", "zhangsan")),
    )
    assert experts_for("出口退税怎么办？", experts, "wmA") == ("zhangsan", "lisi")
    # Traditional and simplified, width: one field; each expert once, in order.
    assert experts_for("退稅和发票都不懂", experts, "wmA") == ("zhangsan", "lisi", "wangwu")
    assert experts_for("出口退税怎么办？", experts, "zhangsan") == ("lisi",)  # not the asker
    assert experts_for("今天天气如何？", experts, "wmA") == ()


def test_a_held_reply_is_addressed_to_everyone_who_asked() -> None:
    reply = reply_text("小安", [Offered("发票指南", "https://example.com/f", "")])
    assert addressed_to(reply, ["小安", "小白"]).split("\n") == [
        "@小安 @小白 群里的资料可能有帮助：",
        "1. 发票指南 https://example.com/f",
    ]
