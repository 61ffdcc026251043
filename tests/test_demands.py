"""Demand posts (issue 10, build item 5): collected during the day by a rule with
`action: collect` or the admin API, published once per group in the next 早报.

Pure: what makes two posts one, which messages are posts, the 早报's block, the collect
decision, the playbook's mistakes at their YAML line. Live (SQLite and PostgreSQL):
archive records through /wecom/archive with the shipped playbooks, the admin API, and
the feed contract the 早报 relies on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.config.playbooks import load_playbooks
from bot.config.playbooks.demands_section import DemandsSection
from bot.config.playbooks.rules_section import Rule, RulesSection
from bot.sandbox.emulator.server import RunningEmulator
from handlers.core.playbooks import playbook_for
from handlers.features.demands.feed import (
    DemandEntry,
    DemandFeed,
    PublishDemands,
    demands_for_report,
    render_demands,
)
from handlers.features.demands.posts import (
    Candidate,
    clip,
    dedup_key,
    duplicate_of,
    nearly_same,
    reads_as_question,
    tidy,
)
from handlers.features.rules.decide import MemberFacts, decide_collect
from storage.models import DemandPost, DemandPublication, Group, Violation
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    archive_text,
    live_webhook_group,
    post_archive,
    sent_texts,
)
from tests.test_playbooks import DEFAULT, issues, where, write

SHANGHAI = ZoneInfo("Asia/Shanghai")
GROUP = "wrDemand"
MEMBERS = {"lisi": "李四", "wmWang": "小王", "wmLi": "小李"}
JOB = "急招新媒体运营，坐标杭州，薪资 8-12k，有意向的加我微信 hr_lisi88 详聊"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in November 2026 in Shanghai (BOT_TIMEZONE), as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# --- pure: one post or two ----------------------------------------------------------


def test_the_same_text_in_other_spellings_has_one_key() -> None:
    plain = "急招新媒体运营，坐标杭州！"
    assert dedup_key(plain) == dedup_key("急招 新媒體運營 坐標杭州")  # spaces, traditional
    assert dedup_key("Python 开发 内推") == dedup_key("ＰＹＴＨＯＮ开发，内推。")  # width, case
    assert dedup_key(plain) != dedup_key("急招新媒体运营，坐标上海！")


def test_one_member_s_nearly_same_post_merges_but_another_member_s_does_not() -> None:
    monday = "急招新媒体运营，坐标杭州，薪资 8-12k，有意向的私聊我"
    tuesday = "急招新媒体运营，坐标杭州，薪资 9-13k，有意向的私聊我"
    assert nearly_same(monday, tuesday)
    assert not nearly_same(monday, "诚聘财务会计一名，坐标上海，要求三年经验")
    first = Candidate(1, "招聘", monday, "lisi", dedup_key(monday), local(24, 10))
    later = Candidate(2, "招聘", monday, "wmLi", dedup_key(monday), local(24, 11))
    assert duplicate_of(kind="招聘", text=tuesday, member_id="lisi", candidates=[later, first]) == 1
    # Someone else's nearly same text is their own post; the same text is not.
    assert duplicate_of(kind="招聘", text=tuesday, member_id="wmWang", candidates=[first]) is None
    assert duplicate_of(kind="招聘", text=monday, member_id="wmWang", candidates=[first]) == 1
    # The same member's other kind is another post.
    assert duplicate_of(kind="求职", text=tuesday, member_id="lisi", candidates=[first]) is None


def test_a_post_is_tidied_and_clipped_to_the_limit() -> None:
    assert tidy("@小助手  急招   运营\n\n\n  坐标杭州 ") == "急招 运营\n坐标杭州"
    assert clip("一二三四五六", 6) == "一二三四五六"
    assert clip("一二三四五六七", 6) == "一二三四五…"


def test_a_short_question_is_for_the_group_not_for_the_morning_report() -> None:
    assert reads_as_question("大家招聘都用什么渠道？")
    assert reads_as_question("有没有靠谱的源头工厂")
    assert not reads_as_question(JOB)
    # A post with details that ends by asking is still a post.
    assert not reads_as_question(
        "急招新媒体运营，坐标杭州，薪资 8-12k，五险一金，周末双休，有兴趣的朋友可以聊聊吗？"
    )


# --- pure: the 早报's block ----------------------------------------------------------


def test_the_block_groups_posts_by_kind_and_says_how_many_wait() -> None:
    entries = [
        DemandEntry(1, "招聘", "急招运营\n坐标杭州", "小王", None),
        DemandEntry(2, "活动", "周六沙龙报名", "", "活动群主"),
        DemandEntry(3, "招聘", "诚聘会计", "小李", "138 0000 0000"),
    ]
    text = render_demands(entries, 2, kinds=("招聘", "求职", "供应商", "活动"))
    assert text.split("\n") == [
        "【今日供需】",
        "招聘 · 小王：急招运营 坐标杭州",
        "招聘 · 小李：诚聘会计（联系：138 0000 0000）",
        "活动：周六沙龙报名（联系：活动群主）",
        "还有 2 条在排队，明天的早报接着发。",
    ]
    # Without an order, kinds come as they first appear; nothing waits, nothing said.
    assert render_demands(entries[1:]).split("\n")[1:] == [
        "活动：周六沙龙报名（联系：活动群主）",
        "招聘 · 小李：诚聘会计（联系：138 0000 0000）",
    ]
    assert render_demands([], 0) == ""
    feed = DemandFeed(entries[:1], overflow=3)
    assert feed.ids == (1,) and feed.overflow == 3 and isinstance(feed, list)


# --- pure: the collect decision ------------------------------------------------------

COLLECT = Rule.model_validate(
    {
        "name": "jobs",
        "action": "collect",
        "collect_kind": "招聘",
        "match": {"keywords": ["招聘"]},
        "exempt_roles": ["owner", "admin"],
        "allow_windows": [{"days": ["fri"], "start": "20:00", "end": "21:00"}],
    }
)


def member(*roles: str) -> MemberFacts:
    return MemberFacts(roles=frozenset(roles), member_id="wmWang", joined_at=None)


def test_a_collect_hit_collects_unless_something_lets_it_pass() -> None:
    rules = RulesSection(items=(COLLECT,))
    tuesday = local(24, 10)
    decision = decide_collect(rules, COLLECT, member(), question=False, at=tuesday, tz=SHANGHAI)
    assert decision.collect and not decision.dry_run
    # Staff are collected here (the rule's own exempt roles): an employee's 内推 is a post.
    assert decide_collect(
        rules, COLLECT, member("staff"), question=False, at=tuesday, tz=SHANGHAI
    ).collect
    owner = decide_collect(rules, COLLECT, member("owner"), question=False, at=tuesday, tz=SHANGHAI)
    assert not owner.collect and "exempt role" in owner.reason
    friday_evening = local(27, 20, 30)
    window = decide_collect(
        rules, COLLECT, member(), question=False, at=friday_evening, tz=SHANGHAI
    )
    assert not window.collect and "window" in window.reason
    asked = decide_collect(rules, COLLECT, member(), question=True, at=tuesday, tz=SHANGHAI)
    assert not asked.collect and "question" in asked.reason
    dry = decide_collect(
        RulesSection(dry_run=True, items=(COLLECT,)),
        COLLECT,
        member(),
        question=False,
        at=tuesday,
        tz=SHANGHAI,
    )
    assert dry.collect and dry.dry_run


# --- the playbook -------------------------------------------------------------------


def test_the_demands_section_defaults() -> None:
    section = DemandsSection()
    assert section.kinds == ("招聘", "求职", "供应商", "活动")
    assert (section.approval, section.max_per_report, section.dedup_days) == (False, 10, 7)
    assert (section.max_chars, section.note) == (300, "private")


def test_the_shipped_collect_rules_come_before_the_ads_rule() -> None:
    default = load_playbooks(Path(__file__).parent.parent / "sop_templates").playbooks["default"]
    assert default.rules is not None
    names = [rule.name for rule in default.rules.items]
    collecting = [rule.name for rule in default.rules.items if rule.collects]
    assert collecting and names.index("ads") > max(names.index(name) for name in collecting)
    kinds = {rule.collect_kind for rule in default.rules.items if rule.collects}
    assert kinds == set(default.demands.kinds)


@pytest.mark.parametrize(
    ("yaml", "line", "field", "words"),
    [
        (
            "rules:\n  items:\n    - name: jobs\n      action: collect\n"
            "      match: {keywords: [招聘]}\n",
            3,
            "rules.items.0.collect_kind",
            "needs collect_kind",
        ),
        (
            "rules:\n  items:\n    - name: jobs\n      action: collect\n"
            "      collect_kind: 兼职\n      match: {keywords: [招聘]}\n",
            5,
            "rules.items.0.collect_kind",
            "not one of demands.kinds",
        ),
        (
            "demands:\n  kinds: [招聘, 兼职]\nrules:\n  items:\n    - name: ads\n"
            "      match: {keywords: [代理]}\n    - name: jobs\n      action: collect\n"
            "      collect_kind: 求职\n      match: {keywords: [求职]}\n",
            9,
            "rules.items.1.collect_kind",
            "招聘、兼职",
        ),
        (
            "rules:\n  items:\n    - name: ads\n      collect_kind: 招聘\n"
            "      match: {keywords: [代理]}\n",
            4,
            "rules.items.0.collect_kind",
            "only applies to a rule with action: collect",
        ),
        (
            "rules:\n  items:\n    - name: jobs\n      action: collect\n      collect_kind: 招聘\n"
            "      match:\n        keywords: [招聘]\n        flood: {messages: 5, seconds: 10}\n",
            8,
            "rules.items.0.match.flood",
            "cannot collect",
        ),
        (
            "rules:\n  items:\n    - name: jobs\n      action: gather\n"
            "      match: {keywords: [招聘]}\n",
            4,
            "rules.items.0.action",
            "ladder",
        ),
        ("demands:\n  kinds: [招聘, 求职, 招聘]\n", 2, "demands.kinds.2", "listed twice"),
        ("demands:\n  kinds: []\n", 2, "demands.kinds", "at least 1"),
        ("demands:\n  note: wechat\n", 2, "demands.note", "private"),
        ("demands:\n  max_per_report: 0\n", 2, "demands.max_per_report", "greater than"),
        ("demands:\n  aproval: true\n", 2, "demands.aproval", "did you mean 'approval'"),
    ],
)
def test_a_collect_mistake_is_reported_at_its_line(
    tmp_path: Path, yaml: str, line: int, field: str, words: str
) -> None:
    write(tmp_path, "default.yaml", DEFAULT)
    write(tmp_path, "community.yaml", yaml)
    found = issues(tmp_path)
    assert ("community.yaml", line, field) in where(found), found
    assert any(words in issue.message for issue in found if issue.field == field), found


def test_a_child_playbook_may_collect_a_kind_its_parent_lists(tmp_path: Path) -> None:
    write(tmp_path, "default.yaml", DEFAULT + "demands:\n  kinds: [招聘, 兼职]\n")
    write(
        tmp_path,
        "community.yaml",
        "extends: default\nrules:\n  items:\n    - name: gigs\n      action: collect\n"
        "      collect_kind: 兼职\n      match: {keywords: [兼职]}\n",
    )
    community = load_playbooks(tmp_path).playbooks["community"]
    assert community.rules is not None and community.rules.items[0].collect_kind == "兼职"


# --- live: the service --------------------------------------------------------------


@asynccontextmanager
async def running(
    database_url: str,
    templates_dir: Path,
    emulator: RunningEmulator,
    clock: Clock,
    *,
    demands: dict[str, str] | None = None,
) -> AsyncIterator[LiveApp]:
    """The service with the shipped playbooks (demands settings changed as given) and
    one robot-webhook group whose members have joined."""
    if demands:
        default = templates_dir / "default.yaml"
        text = default.read_text(encoding="utf-8")
        for key, value in demands.items():
            start = text.index(f"\n  {key}: ", text.index("\ndemands:"))
            end = text.index("\n", start + 1)
            text = text[:start] + f"\n  {key}: {value}" + text[end:]
        default.write_text(text, encoding="utf-8")
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="运营交流群",
        members=MEMBERS,
        joined=True,
    ) as app:
        yield app


async def say(app: LiveApp, msgid: str, sender: str, at: datetime, text: str) -> None:
    await post_archive(app, [archive_text(msgid, sender, GROUP, at, text)])


async def demands(app: LiveApp, **params: str) -> list[dict[str, Any]]:
    got = await app.http.get("/admin/demands", headers=AUTH, params=params)
    assert got.status_code == 200, got.text
    return list(got.json())


async def submit(app: LiveApp, **body: Any) -> Any:
    return await app.http.post("/admin/demands", headers=AUTH, json=body)


def notes(emulator: RunningEmulator, api: str = "message/send") -> list[str]:
    return [text for text in sent_texts(emulator, api) if "信息已收录" in text]


async def violations(app: LiveApp) -> int:
    async with app.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Violation)) or 0)


async def test_a_collected_post_is_kept_once_with_one_note_and_no_violation(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    clock = Clock(local(24, 10))
    async with running(database_url, templates_dir, emulator, clock) as app:
        batch = [archive_text("m1", "lisi", GROUP, local(24, 10), JOB)]
        await post_archive(app, batch)
        [post] = await demands(app)
        assert (post["kind"], post["name"], post["member_id"]) == ("招聘", "李四", "lisi")
        assert (post["status"], post["decided_by"], post["chat_id"]) == ("approved", "auto", GROUP)
        assert post["scope"] == [GROUP] and post["text"] == JOB and post["merged_count"] == 0
        assert post["submitted_at"].startswith("2026-11-24T10:00:00") and post["publications"] == []
        # The ads rule (加我微信) would have warned: the collect rule comes first.
        assert await violations(app) == 0
        [note] = notes(emulator)
        assert note.startswith("你在「运营交流群」发的招聘信息已收录，会在下一期早报里统一发布")
        assert not notes(emulator, "webhook/send")
        # A collected post earns no message points: nothing else acted on it.
        got = await app.http.get(
            "/admin/members/lisi/points", headers=AUTH, params={"chat_id": GROUP}
        )
        assert got.json()["balance"] == 0

        # The same archive batch again (a puller that re-read a page) adds nothing.
        await post_archive(app, batch)
        [again] = await demands(app)
        assert again["id"] == post["id"] and again["merged_count"] == 0
        assert len(notes(emulator)) == 1

        # Another post the same day is kept, but the member is told once a day.
        await say(app, "m2", "lisi", local(24, 11), "求职：五年 Java 后端，求内推杭州的岗位")
        assert [p["kind"] for p in await demands(app)] == ["求职", "招聘"]
        assert len(notes(emulator)) == 1
        # The next day they are told again.
        await say(app, "m3", "lisi", local(25, 10), "【活动报名】周六下午线下沙龙，限 30 人")
        assert len(notes(emulator)) == 2

        # A customer's post is kept too; customers get no private message.
        await say(app, "m4", "wmWang", local(25, 11), "诚聘财务会计一名，坐标上海，三年以上经验")
        newest = (await demands(app))[0]
        assert newest["name"] == "小王" and newest["member_id"] == "wmWang"
        assert len(notes(emulator)) == 2 and await violations(app) == 0


async def test_what_a_collect_rule_leaves_alone(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    clock = Clock(local(24, 10))
    async with running(database_url, templates_dir, emulator, clock) as app:
        await say(app, "q1", "wmWang", local(24, 10), "大家招聘都用什么渠道？")
        await say(app, "o1", "owner1", local(24, 10, 5), "我们部门在招聘运营，欢迎推荐")
        assert await demands(app) == []
        assert not notes(emulator) and await violations(app) == 0


ADS_FIRST = """\
extends: default
applies_to: {chat_ids: [wrDemand]}
rules:
  items:
    - name: ads
      match: {keywords: [加我微信]}
    - name: jobs
      action: collect
      collect_kind: 招聘
      match: {keywords: [招聘, 急招]}
      exempt_roles: [owner, admin]
    - name: events
      action: collect
      collect_kind: 活动
      dry_run: true
      match: {keywords: [活动报名]}
      exempt_roles: [owner, admin]
"""


async def test_the_first_rule_that_acts_decides_and_a_dry_run_only_keeps_the_post(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    (templates_dir / "ads_first.yaml").write_text(ADS_FIRST, encoding="utf-8")
    clock = Clock(local(24, 10))
    async with running(database_url, templates_dir, emulator, clock) as app:
        # The ads rule comes first here: the ladder acts, nothing is collected.
        await say(app, "x1", "wmWang", local(24, 10), JOB)
        assert await demands(app) == [] and await violations(app) == 1
        await say(app, "x2", "wmLi", local(24, 11), "招聘会计一名，坐标上海，三年以上经验")
        [job] = await demands(app)
        assert job["status"] == "approved" and await violations(app) == 1
        # In dry run the post waits for approval, nobody is told, the message goes on to
        # the other features (it earns its message point).
        await say(app, "x3", "wmLi", local(24, 12), "活动报名：周六下午线下沙龙，限 30 人")
        dry = (await demands(app))[0]
        assert (dry["kind"], dry["status"], dry["decided_by"]) == ("活动", "pending", None)
        got = await app.http.get(
            "/admin/members/wmLi/points", headers=AUTH, params={"chat_id": GROUP}
        )
        assert got.json()["balance"] == 1
        assert not notes(emulator) and not notes(emulator, "webhook/send")


async def test_duplicates_merge_into_the_first_post(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    clock = Clock(local(24, 10))
    async with running(database_url, templates_dir, emulator, clock) as app:
        await say(app, "d1", "wmWang", local(24, 10), "急招新媒体运营，坐标杭州，薪资 8-12k")
        # Someone else copies it (other punctuation, full width): the same post.
        await say(app, "d2", "wmLi", local(24, 12), "急招 新媒体运营 坐标杭州 薪资８-１２ｋ！")
        # The first member posts it again the next day with the salary changed.
        await say(app, "d3", "wmWang", local(25, 9), "急招新媒体运营，坐标杭州，薪资 9-13k")
        [post] = await demands(app)
        assert post["merged_count"] == 2 and post["name"] == "小王"
        assert post["last_seen_at"].startswith("2026-11-25T09:00:00")
        # After dedup_days it is a new post.
        week_later = local(24, 10) + timedelta(days=8)
        await say(app, "d4", "wmLi", week_later, "急招新媒体运营，坐标杭州，薪资 8-12k")
        assert len(await demands(app)) == 2

        # An operator submitting the same text gets the recent post back.
        clock.now = week_later + timedelta(hours=1)
        same = await submit(app, kind="招聘", text="急招新媒体运营，坐标杭州，薪资 8-12k")
        assert same.status_code == 200, same.text
        assert same.json()["merged"] is True and same.json()["merged_count"] == 1
        assert same.json()["member_id"] == "wmLi"


async def test_the_admin_api_refuses_bad_posts_and_keeps_good_ones(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    clock = Clock(local(24, 10))
    async with running(database_url, templates_dir, emulator, clock) as app:
        for body, words in [
            ({"kind": "兼职", "text": "周末兼职"}, "unknown kind '兼职'"),
            ({"kind": "招聘", "text": "  \n "}, "must not be blank"),
            ({"kind": "招聘", "text": "岗" * 301}, "at most 300"),
            ({"kind": "招聘", "text": "诚聘", "chat_ids": ["wrNowhere"]}, "wrNowhere"),
        ]:
            refused = await submit(app, **body)
            assert refused.status_code == 422, refused.text
            assert words in refused.json()["detail"], refused.text
        missing = await submit(app, text="没有类别")
        assert missing.status_code == 422
        assert await demands(app) == []

        created = await submit(
            app,
            kind="活动",
            text="  周六下午线下沙龙，限 30 人  ",
            chat_ids=[GROUP],
            contact="活动助手",
            member_id="wmLi",
            source_key="form-1",
        )
        assert created.status_code == 201, created.text
        post = created.json()
        assert (post["text"], post["name"], post["contact"]) == (
            "周六下午线下沙龙，限 30 人",
            "小李",
            "活动助手",
        )
        assert (post["merged"], post["chat_id"], post["scope"]) == (False, None, [GROUP])
        assert post["source_key"] == "api:form-1" and post["status"] == "approved"
        # The client's retry with its key changes nothing.
        retried = await submit(
            app, kind="活动", text="周六下午线下沙龙，限 30 人", source_key="form-1"
        )
        assert retried.status_code == 200 and retried.json()["id"] == post["id"]
        assert retried.json()["merged"] is False and retried.json()["merged_count"] == 0

        for_tag = await submit(app, kind="招聘", text="诚聘会计", tags=["财务群"])
        assert for_tag.status_code == 201
        everywhere = await submit(app, kind="求职", text="找产品经理的工作")
        assert everywhere.status_code == 201 and everywhere.json()["scope"] == []
        # chat_id: what the group's 早报 may carry (its own, and every group's).
        listed = [p["id"] for p in await demands(app, chat_id=GROUP)]
        assert listed == [everywhere.json()["id"], post["id"]]
        assert [p["id"] for p in await demands(app, kind="招聘")] == [for_tag.json()["id"]]
        assert len(await demands(app, since="2026-11-24")) == 3
        assert await demands(app, since="2026-11-25") == []
        unknown = await app.http.get("/admin/demands", headers=AUTH, params={"chat_id": "wrNo"})
        assert unknown.status_code == 404
        bad = await app.http.get("/admin/demands", headers=AUTH, params={"status": "maybe"})
        assert bad.status_code == 422


async def test_approval_flow_and_its_errors(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    clock = Clock(local(24, 10))
    async with running(
        database_url, templates_dir, emulator, clock, demands={"approval": "true"}
    ) as app:
        await say(app, "a1", "lisi", local(24, 10), JOB)
        [collected] = await demands(app, status="pending")
        assert collected["decided_by"] is None
        [note] = notes(emulator)
        assert "运营看过后会在早报里统一发布" in note

        async def decide(post_id: int, verdict: str, **body: Any) -> Any:
            return await app.http.post(
                f"/admin/demands/{post_id}/{verdict}", headers=AUTH, json=body or None
            )

        clock.now = local(24, 11)
        approved = await decide(collected["id"], "approve", by="运营小张")
        assert approved.status_code == 200, approved.text
        assert (approved.json()["status"], approved.json()["decided_by"]) == (
            "approved",
            "运营小张",
        )
        assert approved.json()["decided_at"].startswith("2026-11-24T11:00:00")
        assert (await decide(collected["id"], "approve")).json()["decided_by"] == "运营小张"

        other = (await submit(app, kind="求职", text="找运营的工作")).json()
        assert other["status"] == "pending"
        rejected = await decide(other["id"], "reject", reason="重复发布")
        assert rejected.status_code == 200
        assert (rejected.json()["status"], rejected.json()["reason"]) == ("rejected", "重复发布")
        refused = await decide(other["id"], "approve")
        assert refused.status_code == 409 and "rejected" in refused.json()["detail"]
        assert (await decide(other["id"], "reject")).json()["reason"] == "重复发布"

        # Once a 早报 published it, it cannot be taken back.
        async with app.runtime.sessions() as session:
            await app.runtime.apply_actions(
                session,
                [PublishDemands(GROUP, date(2026, 11, 25), (collected["id"],))],
                source_id="daily_report:test",
            )
        late = await decide(collected["id"], "reject", reason="其实是广告")
        assert late.status_code == 409 and "published" in late.json()["detail"]
        [published] = (
            await app.http.get(f"/admin/demands/{collected['id']}", headers=AUTH)
        ).json()["publications"]
        assert (published["chat_id"], published["report_date"]) == (GROUP, "2026-11-25")

        for verdict in ("approve", "reject"):
            assert (await decide(999999, verdict)).status_code == 404


# --- live: the feed the 早报 takes --------------------------------------------------


async def feed_for(app: LiveApp, day: date) -> DemandFeed:
    """What the group's 早报 of `day` (at 08:30, BOT_TIMEZONE) publishes."""
    cutoff = datetime(day.year, day.month, day.day, 8, 30, tzinfo=SHANGHAI)
    async with app.runtime.sessions() as session:
        group = await session.get(Group, GROUP)
        assert group is not None
        playbook = playbook_for(app.runtime.playbook_set, group)
        return await demands_for_report(session, group, playbook, day, cutoff)


async def publish(app: LiveApp, day: date, feed: DemandFeed) -> None:
    async with app.runtime.sessions() as session:
        await app.runtime.apply_actions(
            session,
            [PublishDemands(GROUP, day, feed.ids)],
            source_id=f"daily_report:{GROUP}:{day}",
        )


async def test_a_post_appears_in_the_next_report_and_not_the_one_after(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    day1, day2, day3 = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)
    clock = Clock(local(24, 10))
    async with running(database_url, templates_dir, emulator, clock) as app:
        await say(app, "f1", "wmWang", local(24, 15), "急招新媒体运营，坐标杭州")
        [early] = await demands(app)
        assert await feed_for(app, day1) == []  # not in the report of the morning before
        day2_feed = await feed_for(app, day2)
        assert day2_feed.ids == (early["id"],) and day2_feed.overflow == 0
        assert day2_feed[0].name == "小王" and day2_feed[0].kind == "招聘"

        # Submitted after day 2's cutoff: day 3.
        await say(app, "f2", "wmLi", local(25, 9), "找供应商：源头工厂直供的包装盒")
        [late] = [p for p in await demands(app) if p["id"] != early["id"]]
        assert (await feed_for(app, day2)).ids == (early["id"],)

        await publish(app, day2, day2_feed)
        await publish(app, day2, day2_feed)  # the 早报 replayed: published once
        async with app.runtime.sessions() as session:
            rows = await session.scalar(select(func.count()).select_from(DemandPublication))
        assert rows == 1
        # The same day's report again (a preview, a resend) shows what it published.
        assert (await feed_for(app, day2)).ids == (early["id"],)
        assert (await feed_for(app, day3)).ids == (late["id"],)
        block = render_demands(await feed_for(app, day3))
        assert block == "【今日供需】\n供应商 · 小李：找供应商：源头工厂直供的包装盒"


async def test_with_approval_a_post_waits_for_the_report_after_its_approval(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    day2 = date(2026, 11, 25)
    clock = Clock(local(24, 10))
    async with running(
        database_url, templates_dir, emulator, clock, demands={"approval": "true"}
    ) as app:
        waiting = (await submit(app, kind="招聘", text="诚聘会计一名")).json()
        assert await feed_for(app, day2) == []  # approval required: not before approval
        clock.now = local(25, 9)  # approved after day 2's cutoff: day 3
        approved = await app.http.post(f"/admin/demands/{waiting['id']}/approve", headers=AUTH)
        assert approved.status_code == 200
        assert await feed_for(app, day2) == []
        assert (await feed_for(app, date(2026, 11, 26))).ids == (waiting["id"],)


async def test_the_report_takes_posts_in_its_scope_oldest_first_at_most_its_share(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    day2 = date(2026, 11, 25)
    clock = Clock(local(24, 10))
    async with running(database_url, templates_dir, emulator, clock) as app:
        async with app.runtime.sessions() as session:
            session.add(
                Group(chat_id="wrOther", name="别的群", tags=["财务群"], channel_type="none")
            )
            await session.commit()
        elsewhere = (await submit(app, kind="招聘", text="诚聘会计", chat_ids=["wrOther"])).json()
        tagged = (await submit(app, kind="招聘", text="诚聘出纳", tags=["财务群"])).json()
        ids = []
        for index in range(12):
            clock.now = local(24, 11) + timedelta(minutes=index)
            ids.append((await submit(app, kind="求职", text=f"找工作：第 {index} 位")).json()["id"])
        feed = await feed_for(app, day2)
        assert feed.ids == tuple(ids[:10]) and feed.overflow == 2  # oldest first
        assert elsewhere["id"] not in feed.ids and tagged["id"] not in feed.ids
        await publish(app, day2, feed)
        day3 = await feed_for(app, date(2026, 11, 26))
        assert day3.ids == tuple(ids[10:]) and day3.overflow == 0
        # A post nobody published for longer than expire_days is stale.
        assert await feed_for(app, date(2026, 12, 3)) == []
        text = render_demands(feed, feed.overflow)
        assert text.endswith("还有 2 条在排队，明天的早报接着发。")
        async with app.runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(DemandPost)) == 14


async def test_a_group_note_when_the_playbook_asks_for_one(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    clock = Clock(local(24, 10))
    async with running(
        database_url, templates_dir, emulator, clock, demands={"note": "group"}
    ) as app:
        await say(app, "g1", "wmWang", local(24, 10), "诚聘财务会计一名，坐标上海")
        await say(app, "g2", "wmWang", local(24, 11), "急招出纳一名，坐标上海")
        assert notes(emulator, "webhook/send") == [
            "@小王 你的招聘信息已收录，会在下一期早报里统一发布，谢谢理解～"
        ]
        assert not notes(emulator)
