"""Group health (issue 9): a seeded week of archive records and membership changes
through the real service, figures checked against values computed by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config.playbooks.health_section import HealthSection
from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.health.digest import shortfalls
from handlers.features.health.figures import Join, WeekFacts, figures
from handlers.features.health.signals import LoggedMessage, first_answers, member_rounds
from handlers.features.questions import looks_like_question
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    archive_text,
    join_callback,
    leave_callback,
    live_webhook_group,
    sent_texts,
    settle,
)

GROUP = "wrHealth"
SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW = timedelta(minutes=10)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# --- pure -----------------------------------------------------------------------


def test_questions_are_recognised_by_marks_openings_and_endings() -> None:
    for text in (
        "有没有私域运营的资料",
        "这个怎么弄",
        "大家周末有什么活动推荐吗",
        "在吗？",
        "why?",
    ):
        assert looks_like_question(text), text
    for text in ("好", "今天天气不错", "收到谢谢", "太好了谢谢你啊", "这是答案。"):
        assert not looks_like_question(text), text


def msg(
    member: str, minute: int, *, question: bool = False, quotes: str | None = None
) -> LoggedMessage:
    return LoggedMessage(member, local(24, 20, 0) + timedelta(minutes=minute), question, quotes)


def test_rounds_count_members_answering_members_without_the_host() -> None:
    messages = [
        msg("wmA", 0),
        msg("wmB", 1),  # B answers A: a round
        msg("wmB", 2),  # talking to oneself: none
        msg("staff", 3),  # the host: none
        msg("wmA", 4),  # answers the host: none
        msg("wmC", 30),  # too late after A: none
        msg("wmD", 31, quotes="wmA"),  # quotes A (out of the window is fine): a round
        msg("wmE", 32, quotes="staff"),  # quotes the host: none
    ]
    assert member_rounds(messages, {"staff"}, WINDOW) == 2


def test_a_question_is_answered_by_the_first_other_person_in_the_window() -> None:
    messages = [
        msg("wmA", 0, question=True),
        msg("wmA", 1),  # the asker again
        msg("wmB", 2, quotes="wmC"),  # answers someone else
        msg("staff", 3),  # the answer
        msg("wmC", 20, question=True),  # nobody within 10 minutes
        msg("wmD", 31),
    ]
    assert [(a.question.member_id, a.answerer) for a in first_answers(messages, WINDOW)] == [
        ("wmA", "staff"),
        ("wmC", None),
    ]


def test_figures_without_members_or_questions_judge_nothing() -> None:
    report = figures(
        WeekFacts(
            messages=[], hosts=frozenset(), present=frozenset(), tiers={}, joins=[], leaves=0
        ),
        HealthSection(),
    )
    assert report.active_rate.value is None and report.active_rate.meets is None
    assert report.questions.meets is None and report.growth.organic_share is None
    assert report.interaction_rounds.meets is False  # 0 rounds is below 5
    assert report.below_goal == ["interaction_rounds"]
    assert shortfalls(report) == ["群友互动 0 轮（目标 5 轮）"]


def test_organic_share_counts_member_invites_against_staff_invites() -> None:
    joins = [Join("wm1", "wmA", False), Join("wm2", "zs", True), Join("wm3", None, False)]
    report = figures(
        WeekFacts(
            messages=[],
            hosts=frozenset({"zs"}),
            present=frozenset(),
            tiers={},
            joins=joins,
            leaves=2,
        ),
        HealthSection(),
    )
    assert report.growth.model_dump() == {
        "joins": 3,
        "leaves": 2,
        "invited_by_members": 1,
        "invited_by_staff": 1,
        "not_invited": 1,
        "organic_share": 0.5,
    }


# --- through the service ----------------------------------------------------------

PLAYBOOK = """\
name: health_test
extends: default
applies_to: {chat_ids: [wrHealth]}
rules: {enabled: false}
touch_sequence: {enabled: false}
welcome: {enabled: false}
health: {size_alert: 14}
"""

EARLY = [f"wm{c}" for c in "ABCDEFGHIJ"]
NAMES = {m: f"成员{m[-1]}" for m in EARLY} | {"zhangsan": "张三"}


def record(n: int, sender: str, at: datetime, text: str) -> dict[str, Any]:
    return archive_text(f"h{n}", sender, GROUP, at, text)


# (sender, day, hour, minute, text): the seeded week, 2026-W48 (23–29 November).
WEEK = [
    ("wmA", 24, 20, 0, "请问有没有私域运营的资料？"),  # Q1
    ("wmB", 24, 20, 2, "我这里有一份，等下发你"),  # answers Q1 (member); round 1
    ("wmA", 24, 20, 3, "太好了谢谢你啊"),  # round 2
    ("wmC", 24, 20, 30, "社群怎么做拉新比较好？"),  # Q2, 27 min later: no round
    ("zhangsan", 24, 20, 31, "可以看看我们的拉新SOP"),  # answers Q2 (staff)
    ("wmC", 24, 20, 32, "收到谢谢"),  # answers the host: no round
    ("wmJ", 24, 20, 40, "我先退群了大家再见"),  # round 3 (wmJ leaves on Wednesday)
    ("wmD", 24, 21, 0, "大家周末有什么活动推荐吗"),  # Q3, nobody within 10 min
    ("wmE", 24, 21, 20, "今天天气不错"),
    ("wmF", 24, 21, 22, "是啊适合出去走走"),  # round 4
    ("wmE", 24, 21, 23, "一起去爬山吧大家"),  # round 5
    ("wmF", 24, 21, 24, "好主意我报名"),  # round 6
    ("wmG", 25, 9, 0, "早上好各位伙伴"),
    ("wmG", 25, 9, 1, "今天也要加油哦"),
    ("wmH", 25, 9, 5, "测试一下撤回的消息"),  # taken back below
    ("wmI", 25, 9, 7, "早上好呀小G"),  # answers wmG (the taken-back one is gone): round 7
]


@pytest.fixture
async def seeded(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[LiveApp]:
    (templates_dir / "health_test.yaml").write_text(PLAYBOOK, encoding="utf-8")
    clock = Clock(local(20, 10))  # the week before: the early members and the staff member
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="健康群",
        members=NAMES,
    ) as app:
        params, body = join_callback(GROUP, [*EARLY, "zhangsan"])
        assert (await app.post_callback(params, body)).status_code == 200
        await settle(app)
        # Tuesday 10:00: four join; two brought by members, one by staff, one by QR code.
        clock.now = local(24, 10)
        newcomers = {"wmK": "wmA", "wmL": "zhangsan", "wmM": None, "wmN": "wmB"}
        emulator.state.add_members(
            GROUP,
            [
                {"userid": m, "name": f"新人{m[-1]}"} | ({"invitor": i} if i else {})
                for m, i in newcomers.items()
            ],
        )
        params, body = join_callback(GROUP, list(newcomers))
        assert (await app.post_callback(params, body)).status_code == 200
        await settle(app)
        for member, role in (("wmA", "讲师"), ("wmB", "大咖"), ("wmC", "活跃")):
            put = await app.http.put(
                f"/admin/members/{member}/roles",
                headers=AUTH,
                json={"chat_id": GROUP, "roles": [role]},
            )
            assert put.status_code == 200, put.text
        records = [record(n, *row[:1], local(*row[1:4]), row[4]) for n, row in enumerate(WEEK)]
        revoke = {
            "msgid": "h-revoke",
            "action": "recall",
            "from": "wmH",
            "tolist": [],
            "roomid": GROUP,
            "msgtime": int(local(25, 9, 6).timestamp() * 1000),
            "msgtype": "revoke",
            "revoke": {"pre_msgid": "h14"},
        }
        # Messages of the week before and the week after are not counted.
        outside = [
            record(900, "wmK", local(22, 23, 59), "上周日的消息有没有人看？"),
            record(901, "wmL", local(30, 0, 1), "下周一的第一条消息"),
        ]
        posted = await app.http.post(
            "/wecom/archive", headers=AUTH, json=[*records, revoke, *outside]
        )
        assert posted.status_code == 200, posted.text
        await settle(app)
        for member, stage in (("wmK", "customer"), ("wmA", "lead")):
            marked = await app.http.put(
                f"/admin/members/{member}/lead",
                headers=AUTH,
                json={"chat_id": GROUP, "stage": stage, "owner": "zhangsan"},
            )
            assert marked.status_code in (200, 201), marked.text
        # Wednesday noon wmJ leaves.
        clock.now = local(25, 12)
        emulator.state.remove_member(GROUP, "wmJ")
        params, body = leave_callback(GROUP, ["wmJ"], create_time=int(clock.now.timestamp()))
        assert (await app.post_callback(params, body)).status_code == 200
        await settle(app)
        yield app


async def test_a_seeded_week_matches_the_hand_count(seeded: LiveApp) -> None:
    got = await seeded.http.get(
        f"/admin/groups/{GROUP}/health", headers=AUTH, params={"week": "2026-W48"}
    )
    assert got.status_code == 200, got.text
    health = got.json()
    assert (health["week"], health["start"][:10], health["end"][:10]) == (
        "2026-W48",
        "2026-11-23",
        "2026-11-30",
    )
    # 13 members at the week's end who are not hosts: A–I and the four newcomers
    # (wmJ left; zhangsan is staff). Active: A B C D E F G I (H only took a message back).
    assert health["members"] == 13
    assert health["active_rate"] == {
        "value": round(8 / 13, 4),
        "goal": 0.2,
        "meets": True,
        "active": 8,
        "members": 13,
    }
    assert health["interaction_rounds"] == {"value": 7, "goal": 5, "meets": True}
    assert health["questions"] == {
        "value": 0.5,
        "goal": 0.5,
        "meets": True,
        "asked": 3,
        "answered_by_members": 1,
        "answered_by_staff": 1,
        "unanswered": 1,
    }
    pyramid = {tier["tier"]: (tier["members"], tier["share"]) for tier in health["pyramid"]}
    assert pyramid == {
        "大咖": (1, round(1 / 13, 4)),
        "讲师": (1, round(1 / 13, 4)),
        "KOL": (0, 0.0),
        "核心": (0, 0.0),
        "活跃": (1, round(1 / 13, 4)),
        "普通": (10, round(10 / 13, 4)),
    }
    assert [tier["target"] for tier in health["pyramid"]] == [0.04, 0.06, 0.08, 0.02, 0.1, 0.7]
    assert health["size"] == {"members": 14, "cap": 500, "alert_at": 14, "alert": True}
    assert health["growth"] == {
        "joins": 4,
        "leaves": 1,
        "invited_by_members": 2,
        "invited_by_staff": 1,
        "not_invited": 1,
        "organic_share": round(2 / 3, 4),
    }
    assert health["leads"] == {
        "value": round(2 / 13, 4),
        "goal": 0.1,
        "meets": True,
        "by_stage": {"lead": 1, "MQL": 0, "SQL": 0, "customer": 1},
        "marked": 2,
    }
    assert health["below_goal"] == ["size"]


async def test_another_week_and_bad_weeks(seeded: LiveApp) -> None:
    before = await seeded.http.get(
        f"/admin/groups/{GROUP}/health", headers=AUTH, params={"week": "2026-W47"}
    )
    assert before.status_code == 200
    earlier = before.json()
    # Only the Sunday-night question; at that week's end the members were the ten who
    # joined on Friday with the staff member, none of them brought by anyone.
    assert earlier["questions"]["asked"] == 1 and earlier["members"] == 10
    assert (earlier["growth"]["joins"], earlier["growth"]["not_invited"]) == (11, 11)
    for bad in ("2026-48", "2026-W54", "2026-W00", "2021-W53x"):
        got = await seeded.http.get(
            f"/admin/groups/{GROUP}/health", headers=AUTH, params={"week": bad}
        )
        assert got.status_code == 422, bad
        assert "week" in got.json()["detail"]
    unknown = await seeded.http.get("/admin/groups/wrNope/health", headers=AUTH)
    assert unknown.status_code == 404
    overview = await seeded.http.get("/admin/health", headers=AUTH, params={"week": "2026-W48"})
    assert overview.status_code == 200
    [only] = overview.json()["groups"]
    assert only["chat_id"] == GROUP and only["below_goal"] == ["size"]


async def test_monday_digest_lists_groups_below_goal_once(
    seeded: LiveApp, emulator: RunningEmulator
) -> None:
    clock = seeded.runtime.clock
    assert isinstance(clock, Clock)
    before = len(sent_texts(emulator, "message/send"))
    clock.now = local(30, 9, 29)  # Monday, a minute before the playbook's 09:30
    assert await seeded.runtime.send_health_digests() == ""
    clock.now = local(30, 9, 31)
    assert await seeded.runtime.send_health_digests() == "1 health digest(s)"
    await seeded.runtime.dispatcher.drain()
    [digest] = sent_texts(emulator, "message/send")[before:]
    assert digest.startswith("【社群健康周报】2026-W48（11月23日—11月29日）")
    assert "1. 健康群：群人数 14，已到提醒线 14（上限 500）" in digest
    # Later in the week (a restart, another replica): nothing twice.
    clock.now = local(30, 18)
    assert await seeded.runtime.send_health_digests() == ""
    await seeded.runtime.dispatcher.drain()
    assert len(sent_texts(emulator, "message/send")) == before + 1


async def test_no_digest_for_a_week_the_bot_did_not_watch_whole(
    seeded: LiveApp, emulator: RunningEmulator
) -> None:
    # The group was registered on Friday 20 November: W47 was not watched whole.
    clock = seeded.runtime.clock
    assert isinstance(clock, Clock)
    clock.now = local(23, 10)  # Monday of W48: the digest would be W47's
    assert await seeded.runtime.send_health_digests() == ""
