"""The member ladder, discussion points and the points query (issue 9): pure decisions,
then through the service (archive records, the admin API) on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config.playbooks.points_section import RoleThreshold
from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.points.ladder import Rung, Standing, decide_level, moves
from handlers.features.points.ledger import discussion_award
from handlers.features.points.query import is_query, query_reply
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    adjust_points,
    archive_text,
    live_webhook_group,
    points_of,
    post_archive,
    sent_texts,
)

GROUP = "wrLadder"
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
RUNGS = (
    RoleThreshold(name="活跃", min_points=50),
    RoleThreshold(name="核心", min_points=200, active_weeks=4),
    RoleThreshold(name="KOL", min_points=500, answers=10),
)


def test_the_highest_rung_whose_every_condition_holds() -> None:
    assert decide_level(RUNGS, Standing(10, 0, 0), 8) == Rung("普通", "积分 10，活跃 需要 50")
    assert decide_level(RUNGS, Standing(60, 0, 0), 8).level == "活跃"
    # Points enough for 核心, but only two active weeks of the four it asks.
    assert decide_level(RUNGS, Standing(300, 2, 0), 8).level == "活跃"
    assert decide_level(RUNGS, Standing(300, 4, 0), 8) == Rung(
        "核心", "积分 300，近 8 周有 4 周发言"
    )
    assert decide_level(RUNGS, Standing(600, 4, 9), 8).level == "核心"
    assert decide_level(RUNGS, Standing(600, 0, 10), 8).level == "KOL"
    assert decide_level((), Standing(600, 9, 9), 8) == Rung("普通", "")


def test_moves_record_promotions_and_demotions_with_the_reason() -> None:
    decided = {
        "wmA": Rung("核心", "积分 300，近 8 周有 4 周发言"),
        "wmB": Rung("普通", "积分 40，活跃 需要 50"),
        "wmC": Rung("活跃", "积分 60"),
    }
    found = moves({"wmA": "活跃", "wmB": "活跃", "wmC": "活跃"}, decided, RUNGS)
    assert [(m.member_id, m.before, m.after, m.reason) for m in found] == [
        ("wmA", "活跃", "核心", "升为核心：积分 300，近 8 周有 4 周发言"),
        ("wmB", "活跃", "普通", "降为普通：积分 40，活跃 需要 50"),
    ]


def test_discussion_points_stop_at_the_day_cap() -> None:
    assert discussion_award(0, points=5, daily_cap=15) == 5
    assert discussion_award(12, points=5, daily_cap=15) == 3
    assert discussion_award(15, points=5, daily_cap=15) == 0


def test_only_the_whole_query_word_asks() -> None:
    words = ("我的积分", "查积分")
    for text in ("我的积分", " 我的积分？", "@小助手 我的积分", "查积分!"):
        assert is_query(text, words), text
    for text in ("我的积分怎么算", "聊聊积分", ""):
        assert not is_query(text, words), text
    assert query_reply("小安", total=120, month=35, level="活跃", roles=["讲师"]) == (
        "@小安 你在本群的积分是 120 分（本月 35 分），当前等级：活跃、讲师。"
    )


PLAYBOOK = """\
name: ladder_test
extends: default
applies_to: {chat_ids: [wrLadder]}
rules: {enabled: false}
touch_sequence: {enabled: false}
welcome: {enabled: false}
points:
  discussion: 5
  discussion_daily_cap: 10
  roles:
    - {name: 活跃, min_points: 20}
    - {name: 核心, min_points: 40, active_weeks: 2}
  query_interval_minutes: 60
"""


def record(n: int, sender: str, at: datetime, text: str) -> dict[str, Any]:
    return archive_text(f"l{n}", sender, GROUP, at, text)


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    (templates_dir / "ladder_test.yaml").write_text(PLAYBOOK, encoding="utf-8")
    clock = Clock(T0)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="阶梯群",
        members={"wmA": "小安", "wmB": "小白", "wmC": "小陈", "zhangsan": "张三"},
        joined=True,
    ) as app:
        yield app, clock


post = post_archive


async def ledger(app: LiveApp, member: str) -> list[tuple[str, int]]:
    return sorted(
        (e["reason"], e["delta"]) for e in (await points_of(app, GROUP, member))["entries"]
    )


async def test_members_answering_members_earn_discussion_points(
    live: tuple[LiveApp, Clock],
) -> None:
    app, _ = live
    at = T0 + timedelta(minutes=1)
    await post(
        app,
        [
            record(1, "wmA", at, "大家平时用什么工具做社群？"),
            record(2, "wmB", at + timedelta(minutes=2), "我一般用表格管理成员"),  # answers A
            record(3, "zhangsan", at + timedelta(minutes=3), "我们有现成的模板可以分享"),
            record(4, "wmC", at + timedelta(minutes=4), "求模板链接谢谢你们"),  # answers staff
            record(5, "wmC", at + timedelta(minutes=30), "另外一个话题开始啦"),  # too late
            record(6, "wmB", at + timedelta(minutes=31), "好的"),  # too short
            record(7, "wmA", at + timedelta(minutes=33), "这个话题我也感兴趣"),  # answers "好的"
            record(8, "wmC", at + timedelta(minutes=34), "我也是这样想的呢"),  # answers A
        ],
    )
    assert await ledger(app, "wmB") == [("discussion", 5), ("message", 1)]
    # Answering the host is no member-to-member exchange; answering a real message is.
    assert await ledger(app, "wmC") == [
        ("discussion", 5),
        ("message", 1),
        ("message", 1),
        ("message", 1),
    ]
    # Answering a one-word "好的" is no discussion either.
    assert await ledger(app, "wmA") == [("message", 1), ("message", 1)]
    assert all(reason != "discussion" for reason, _ in await ledger(app, "zhangsan"))
    # Two members ping-ponging all day earn up to the cap (10) and no more.
    later = T0 + timedelta(hours=2)
    rally = [
        record(
            100 + n,
            "wmB" if n % 2 else "wmC",
            later + timedelta(minutes=2 * n),
            f"第{n}轮讨论的观点",
        )
        for n in range(10)
    ]
    await post(app, rally)
    discussion_b = sum(d for r, d in await ledger(app, "wmB") if r == "discussion")
    discussion_c = sum(d for r, d in await ledger(app, "wmC") if r == "discussion")
    assert (discussion_b, discussion_c) == (10, 10)
    await post(app, rally)  # a replay changes nothing
    assert sum(d for r, d in await ledger(app, "wmB") if r == "discussion") == 10


async def test_the_ladder_promotes_demotes_and_explains(live: tuple[LiveApp, Clock]) -> None:
    app, clock = live
    # wmA: 30 points and messages in two different weeks → 活跃, not yet 核心 (needs 40).
    # The staff member's 100 points put him on no rung: staff run the group.
    for member, delta in (("wmA", 30), ("zhangsan", 100)):
        await adjust_points(app, GROUP, member, delta, "好资源")
    await post(
        app,
        [
            record(200, "wmA", T0 - timedelta(days=7), "上周也来说一句话"),
            record(201, "wmA", T0 + timedelta(minutes=5), "本周继续来分享一下"),
        ],
    )
    clock.advance(600)
    reviewed = await app.http.post("/admin/ladder/review", headers=AUTH)
    assert reviewed.status_code == 200, reviewed.text
    assert [(m["member_id"], m["to_level"]) for m in reviewed.json()[GROUP]] == [("wmA", "活跃")]
    level = (
        await app.http.get("/admin/members/wmA/level", headers=AUTH, params={"chat_id": GROUP})
    ).json()
    assert level["level"] == "活跃" and level["next_level"] == "核心"
    assert level["standing"]["active_weeks"] == 2
    assert level["lacking"].startswith("积分 3")  # 30 + what the messages earned
    assert level["history"][0]["reason"].startswith("升为活跃：积分 3")
    # Another review with nothing new changes nothing.
    assert (await app.http.post("/admin/ladder/review", headers=AUTH)).json()[GROUP] == []
    # Points taken back: demoted, with the reason.
    await adjust_points(app, GROUP, "wmA", -25, "误加，收回")
    again = (await app.http.post("/admin/ladder/review", headers=AUTH)).json()[GROUP]
    assert [(m["from_level"], m["to_level"]) for m in again] == [("活跃", "普通")]
    assert again[0]["reason"].startswith("降为普通：积分 ")
    history = (
        await app.http.get("/admin/members/wmA/level", headers=AUTH, params={"chat_id": GROUP})
    ).json()["history"]
    assert [(h["from_level"], h["to_level"]) for h in history] == [
        ("活跃", "普通"),
        ("普通", "活跃"),
    ]
    unknown = await app.http.get(
        "/admin/members/wmA/level", headers=AUTH, params={"chat_id": "wrNo"}
    )
    assert unknown.status_code == 404


async def test_asking_for_points_gets_one_short_reply_an_hour(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, _ = live
    await adjust_points(app, GROUP, "wmB", 25, "活动奖励")
    await app.http.post("/admin/ladder/review", headers=AUTH)
    before = len(sent_texts(emulator))
    at = T0 + timedelta(minutes=10)
    await post(
        app,
        [
            record(300, "wmB", at, "我的积分"),
            record(301, "wmB", at + timedelta(minutes=5), "@小助手 我的积分"),  # same hour
            record(302, "wmB", at + timedelta(minutes=6), "我的积分怎么算的"),  # not a query
        ],
    )
    replies = sent_texts(emulator)[before:]
    assert replies == ["@小白 你在本群的积分是 25 分（本月 25 分），当前等级：活跃。"]
    await post(app, [record(303, "wmB", at + timedelta(minutes=70), "查积分？")])
    assert len(sent_texts(emulator)[before:]) == 2
    # 「查积分？」 is the points query's, no question for the content library; asking
    # how points work is one.
    unanswered = await app.http.get(
        "/admin/questions/unanswered", headers=AUTH, params={"chat_id": GROUP, "week": "2026-W48"}
    )
    assert unanswered.status_code == 200, unanswered.text
    assert [q["text"] for q in unanswered.json()["questions"]] == ["我的积分怎么算的"]
