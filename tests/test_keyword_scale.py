"""Issue 10, Done-when 1 at the stated scale: a 10,000-item library behind the live
service (archive → inbox → keyword answers → outbox → the emulator's robot), on SQLite
and PostgreSQL. The smaller-library tests in test_keyword_answers.py cover the details;
this one shows they hold with ten thousand items and keywords in the index."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.content.library import ContentIn
from storage.models import ContentItem
from tests.helpers import Clock, LiveApp, settle
from tests.test_keyword_answers import (
    INVOICE_EXTERNAL,
    INVOICE_OWN,
    OTHER_GROUP,
    SOCIAL,
    T0,
    answers,
    library_service,
    say,
    waits,
)

LIBRARY_SIZE = 10_000
TOPICS = ("市场", "运营", "招聘", "法务", "设计", "产品", "物流", "培训", "品牌", "渠道")
SUBJECTS = ("方案", "模板", "清单", "案例", "手册", "课件", "复盘", "指引")


def library(size: int) -> list[ContentIn]:
    """`size` items: the four the assertions name, and filler with ten thousand distinct
    keywords across topics, so the automaton and the BM25 index are full-sized."""
    named = [INVOICE_EXTERNAL, INVOICE_OWN, SOCIAL, OTHER_GROUP]
    filler = [
        ContentIn(
            title=f"{TOPICS[i % len(TOPICS)]}{SUBJECTS[i % len(SUBJECTS)]}第{i}号",
            url=f"https://example.com/lib/{i}",
            summary=f"{TOPICS[i % len(TOPICS)]}工作里常用的{SUBJECTS[i % len(SUBJECTS)]}，编号{i}",
            keywords=[f"{TOPICS[i % len(TOPICS)]}{i}号", f"资料{i}"],
            tags=[TOPICS[i % len(TOPICS)]],
            source="own" if i % 3 else "external",
        )
        for i in range(size - len(named))
    ]
    return [*filler, *named]


def scaled_service(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, *, mode: str
) -> AbstractAsyncContextManager[tuple[LiveApp, Clock]]:
    return library_service(
        database_url,
        templates_dir,
        emulator,
        library(LIBRARY_SIZE),
        edits={"  mode: immediate\n": f"  mode: {mode}\n"},
    )


async def test_a_ten_thousand_item_library_answers_the_way_a_small_one_does(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    async with scaled_service(database_url, templates_dir, emulator, mode="immediate") as (
        app,
        clock,
    ):
        async with app.runtime.sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(ContentItem))
        assert stored == LIBRARY_SIZE
        # Two keywords (发票, 报销): one reply, own item first, the other group's item not.
        await say(app, clock, "k1", "wmA", "有没有发票报销的资料？")
        [reply] = answers(emulator)
        lines = reply.split("\n")
        assert lines[0] == "@小安 群里的资料可能有帮助："
        assert lines[1] == "1. 增值税发票开具指南 https://example.com/fapiao"
        assert lines[2].startswith("2. 发票报销流程（外部整理）：")
        assert len(lines) == 3 and "别的群" not in reply
        # The same message 10 s later: no second reply.
        clock.advance(10)
        await say(app, clock, "k2", "wmB", "有没有发票报销的资料？")
        assert len(answers(emulator)) == 1
        # Small talk: nothing, though its words are all over ten thousand titles.
        clock.advance(5)
        await say(app, clock, "k3", "wmC", "今天市场部的方案做完了，大家辛苦")
        await say(app, clock, "k4", "wmA", "哈哈收到")
        assert len(answers(emulator)) == 1
        # A fuzzy question with no exact keyword finds its item.
        await say(app, clock, "k5", "wmC", "新员工的社保怎么缴纳呢？")
        assert len(answers(emulator)) == 2
        assert answers(emulator)[1].split("\n")[:2] == [
            "@小陈 群里的资料可能有帮助：",
            "1. 员工社保缴纳操作手册 https://example.com/shebao",
        ]


async def test_in_wait_mode_a_member_s_answer_keeps_the_bot_quiet_at_scale(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    async with scaled_service(database_url, templates_dir, emulator, mode="wait") as (app, clock):
        wait = timedelta(minutes=5)  # the shipped playbook's wait_minutes
        await say(app, clock, "w1", "wmA", "有没有增值税发票的资料？")
        clock.advance(60)
        await say(app, clock, "w2", "wmB", "群文件里有一份，财务整理的")
        await settle(app, at=T0 + wait)
        assert answers(emulator) == []
        assert await waits(app) == [("msg:w1", "quiet", "answered by a member (wmB)")]
        # The same question unanswered is answered when its wait ends.
        clock.advance(600)
        asked = clock.now
        await say(app, clock, "w3", "wmC", "有没有增值税发票的资料？")
        await settle(app, at=asked + wait)
        [reply] = answers(emulator)
        assert reply.split("\n")[:2] == [
            "@小陈 群里的资料可能有帮助：",
            "1. 增值税发票开具指南 https://example.com/fapiao",
        ]
