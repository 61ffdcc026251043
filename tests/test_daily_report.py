"""The daily 早报 (issue 10, item 6): once per group per day. Pure blocks and fitting
first, then the whole flow on SQLite and PostgreSQL through the admin API, the engine's
tick (the one `wecom-bot tick` calls) and the emulator: at `at` and not before, twice
the same morning and a restart send one, late within grace sends and beyond skips,
knowledge points do not repeat, customer groups get the mass send and the owner's task,
preview marks nothing and send-now is once."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import func, select

from bot.config.playbooks import PlaybookLoadError, load_playbooks
from bot.config.playbooks.daily_report_section import DEFAULT_TEXT, DailyReportSection
from bot.config.playbooks.render import render_text
from bot.sandbox.emulator import EmulatorState
from bot.sandbox.emulator.server import RunningEmulator, start_emulator_in_thread
from bot.startup import run_tick_command
from bot.tick_report import tick_lines
from handlers.channels import CAPABILITIES, split_text
from handlers.features.content.library import ContentEntry
from handlers.features.daily_report.blocks import (
    DemandsBlock,
    greeting_for,
    leaderboard_window,
    next_knowledge_point,
    report_key,
    top_members,
)
from handlers.features.daily_report.compose import Blocks, fit
from handlers.features.daily_report.demands_feed import renderer
from handlers.features.daily_report.kind import skip_reason
from handlers.features.daily_report.mass_send import mass_send_outcome
from handlers.features.daily_report.send import delivery_for
from handlers.features.demands.feed import DemandEntry
from handlers.features.points.ledger import Standing
from storage import db
from storage.models import DailyReport, Group, KnowledgePointUse, OutboxItem, OwnerTask
from tests.conftest import TEST_CORP_ID, TEST_CORP_SECRET
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    adjust_points,
    archive_text,
    live_app,
    live_webhook_group,
    post_archive,
    sent_texts,
    settle,
)
from tests.procs import Server, free_port, run_cli, wait_until
from tests.test_end_to_end import configured_env

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED = Path(__file__).resolve().parent.parent / "sop_templates"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


# --- pure: the knowledge queue ---------------------------------------------------------------


def entry(item_id: int, source: str = "own", **extra: Any) -> ContentEntry:
    values: dict[str, Any] = {
        "id": item_id,
        "title": f"知识{item_id}",
        "summary": "",
        "url": None,
        "body": "正文",
        "keywords": (),
        "tags": ("知识点",),
        "source": source,
        "scope": (),
    }
    values.update(extra)
    return ContentEntry(**values)


def test_the_queue_uses_every_item_once_before_any_repeats_own_first() -> None:
    # The library's order: own items first, then by id.
    items = [entry(3), entry(7), entry(2, "external")]
    used: dict[int, date] = {}
    picked = []
    day = date(2026, 12, 1)
    for offset in range(7):
        chosen = next_knowledge_point(items, used)
        assert chosen is not None
        picked.append(chosen.id)
        used[chosen.id] = day + timedelta(days=offset)
    assert picked == [3, 7, 2, 3, 7, 2, 3]


def test_a_new_item_comes_before_the_repeats_and_an_empty_queue_has_none() -> None:
    used = {3: date(2026, 12, 1), 7: date(2026, 12, 2)}
    assert next_knowledge_point([entry(3), entry(7)], used).id == 3  # type: ignore[union-attr]
    assert next_knowledge_point([entry(3), entry(7), entry(9)], used).id == 9  # type: ignore[union-attr]
    assert next_knowledge_point([], used) is None


# --- pure: the other blocks --------------------------------------------------------------------


def test_the_leaderboard_leaves_out_hosts_leavers_and_nobodies_and_reranks() -> None:
    standings = [
        Standing("owner1", 90, 1),
        Standing("wmA", 50, 2),
        Standing("wmGone", 45, 3),
        Standing("wmB", 30, 4),
        Standing("wmC", 30, 4),
        Standing("wmD", 10, 6),
        Standing("wmE", 0, 7),
    ]
    shown = top_members(
        standings,
        excluded={"owner1", "wmGone"},
        names={"wmA": "小安", "wmB": None, "wmC": "小陈"},
        top=3,
        neutral_name="新朋友",
    )
    assert shown == [
        {"rank": 1, "name": "小安", "points": 50},
        {"rank": 2, "name": "新朋友", "points": 30},
        {"rank": 2, "name": "小陈", "points": 30},
    ]
    assert (
        top_members([Standing("wmE", 0, 1)], excluded=set(), names={}, top=3, neutral_name="x")
        == []
    )


def test_the_leaderboard_covers_the_month_to_yesterday_and_the_first_shows_last_month() -> None:
    start, end, label = leaderboard_window(date(2026, 12, 7), SHANGHAI)
    assert (start, end, label) == (local(2026, 12, 1), local(2026, 12, 7), "12月")
    start, end, label = leaderboard_window(date(2027, 1, 1), SHANGHAI)
    assert (start, end, label) == (local(2026, 12, 1), local(2027, 1, 1), "12月")


@pytest.mark.parametrize(
    ("day", "at", "greeting"),
    [
        (date(2026, 12, 7), time(8, 30), "早上好！新的一周开始了。"),  # Monday
        (date(2026, 12, 8), time(8, 30), "早上好！"),
        (date(2026, 12, 11), time(8, 30), "早上好！明天就是周末啦。"),  # Friday
        (date(2026, 12, 12), time(9, 0), "周末早上好！"),
        (date(2026, 12, 9), time(12, 0), "中午好！"),
        (date(2026, 12, 9), time(19, 0), "晚上好！"),
    ],
)
def test_the_greeting_fits_the_day_and_the_hour(day: date, at: time, greeting: str) -> None:
    assert greeting_for(day, at) == greeting


def test_one_sponsored_slot_a_day_the_first_whose_dates_and_days_fit() -> None:
    section = DailyReportSection.model_validate(
        {
            "sponsored": [
                {
                    "text": "周一周三的直播",
                    "start": "2026-12-01",
                    "end": "2026-12-10",
                    "days": ["mon", "wed"],
                },
                {"text": "十二月的课程", "start": "2026-12-01"},
                {"text": "永远轮不到", "start": "2026-12-01"},
            ]
        }
    )
    assert section.sponsored_on(date(2026, 12, 7)) == "周一周三的直播"  # a Monday
    assert section.sponsored_on(date(2026, 12, 8)) == "十二月的课程"
    assert section.sponsored_on(date(2026, 12, 14)) == "十二月的课程"  # past the first's end
    assert section.sponsored_on(date(2026, 11, 30)) is None


@pytest.mark.parametrize(
    ("section", "words"),
    [
        (
            {"sponsored": [{"text": "x", "start": "2026-12-10", "end": "2026-12-01"}]},
            "before start",
        ),
        ({"sponsored": [{"text": "{{ group_name }} 的广告"}]}, "no template tags"),
        ({"sponsored": [{"text": "   "}]}, "must not be empty"),
        ({"text": "{{ knowledge.title }}"}, "fails on sample data"),  # not guarded by {% if %}
        ({"text": "{{ weather }}"}, "unknown variable 'weather'"),
        ({"days": []}, "enabled: false"),
        ({"grace_minutes": 721}, "less than or equal to 720"),
        ({"at": "8点半"}, "HH:MM"),
    ],
)
def test_bad_sections_are_refused_with_a_reason(section: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DailyReportSection.model_validate(section)
    assert words in str(caught.value)


def test_a_report_inside_quiet_hours_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(
        textwrap.dedent(
            """\
            quiet_hours: {start: "22:30", end: "08:00"}
            daily_report:
              at: "07:30"
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(PlaybookLoadError) as caught:
        load_playbooks(tmp_path)
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.field) == ("default.yaml", 3, "daily_report.at")
    assert "quiet_hours 22:30–08:00" in issue.message


def test_shipped_playbooks_send_a_report_where_it_helps() -> None:
    playbooks = load_playbooks(SHIPPED).playbooks
    sending = {name for name, p in playbooks.items() if p.daily_report is not None}
    assert sending == {"default", "new_user", "camp", "fans"}  # not lead or delivery groups
    default = playbooks["default"].daily_report
    assert default is not None and (default.at, default.grace_minutes) == (time(8, 30), 90)
    assert default.text == DEFAULT_TEXT


def test_the_default_text_leaves_out_what_is_empty() -> None:
    everything = Blocks(
        day=date(2026, 12, 7),
        greeting="早上好！新的一周开始了。",
        group={"chat_id": "wr1", "name": "运营交流群", "tags": []},
        knowledge={"title": "社群冷启动", "summary": "先找到前 50 位种子用户。", "url": None},
        knowledge_item_id=1,
        leaderboard=({"rank": 1, "name": "小安", "points": 30},),
        leaderboard_month="12月",
        sponsored="周四直播：裂变实战",
    )
    text = render_text(DEFAULT_TEXT, everything.variables())
    assert text == (
        "【运营交流群 早报】12月7日 周一\n早上好！新的一周开始了。\n\n"
        "【每日一知识】社群冷启动\n先找到前 50 位种子用户。\n\n"
        "【12月积分榜】\n1. 小安　30 分\n\n【广告】周四直播：裂变实战"
    )
    bare = Blocks(day=everything.day, greeting="早上好！", group=everything.group)
    assert (
        render_text(DEFAULT_TEXT, bare.variables()) == "【运营交流群 早报】12月7日 周一\n早上好！"
    )
    assert not bare.has_news() and everything.has_news()
    assert not Blocks(day=bare.day, greeting="", group=bare.group, sponsored="广告").has_news()


# --- pure: fitting the channel -----------------------------------------------------------------


def long_blocks(demands: int, highlights: int) -> Blocks:
    return Blocks(
        day=date(2026, 12, 7),
        greeting="早上好！",
        group={"chat_id": "wr1", "name": "运营交流群", "tags": []},
        knowledge={"title": "知识", "summary": "要点" * 40, "url": "https://example.com/k"},
        knowledge_item_id=1,
        demands=DemandsBlock(
            entries=tuple(
                DemandEntry(n, "招聘", f"第{n}个岗位，" + "要求" * 80, "小王", None)
                for n in range(demands)
            ),
            ids=tuple(range(demands)),
            overflow=2,  # the feed already holds two back for tomorrow
            render=renderer(["招聘"]),
        ),
        highlights=tuple(
            {"text": f"话题{n}：" + "讨论" * 60, "replies": 10 + n, "starter": "小安"}
            for n in range(highlights)
        ),
        leaderboard=({"rank": 1, "name": "小安", "points": 30},),
        leaderboard_month="12月",
    )


def test_a_short_report_is_left_alone() -> None:
    blocks = long_blocks(demands=1, highlights=1)
    fitted = fit(DEFAULT_TEXT, blocks, max_bytes=2048, max_parts=2)
    assert fitted.trimmed == () and len(fitted.parts) == 1
    assert "【昨日精彩】" in fitted.text and "招聘 · 小王：第0个岗位" in fitted.text
    assert "还有 2 条在排队" in fitted.text
    assert fitted.blocks is not None and fitted.blocks.demands.published_ids() == (0,)


def test_highlights_give_way_first_then_demands_with_how_many_more() -> None:
    blocks = long_blocks(demands=8, highlights=3)
    assert len(split_text(render_text(DEFAULT_TEXT, blocks.variables()), 2048)) > 2
    fitted = fit(DEFAULT_TEXT, blocks, max_bytes=2048, max_parts=2)
    assert len(fitted.parts) == 2
    assert fitted.trimmed[0] == "highlights"
    assert fitted.trimmed[1].startswith("demands listed: ")
    assert "【昨日精彩】" not in fitted.text
    shown = int(fitted.trimmed[1].split(": ")[1].split(" of ")[0])
    assert 0 < shown < 8
    # The posts left out wait for tomorrow with the feed's own: the block says so, and
    # only the listed ones are published.
    assert f"还有 {8 - shown + 2} 条在排队，明天的早报接着发。" in fitted.text
    assert fitted.blocks is not None and fitted.blocks.shown_demands == shown
    assert fitted.blocks.demands.published_ids(shown) == tuple(range(shown))
    assert fitted.blocks.variables()["demand_count"] == 8
    assert "【12月积分榜】" in fitted.text  # the leaderboard ranks above them


def test_a_customer_group_gets_one_part_and_a_hard_cut_is_the_last_resort() -> None:
    blocks = long_blocks(demands=8, highlights=3)
    fitted = fit(DEFAULT_TEXT, blocks, max_bytes=4000, max_parts=1)
    assert len(fitted.parts) == 1 and len(fitted.text.encode()) <= 4000
    assert fitted.trimmed[0] == "highlights"
    tiny = fit(DEFAULT_TEXT, blocks, max_bytes=120, max_parts=1)
    assert tiny.trimmed[-1] == "cut to 1 part(s)"
    assert len(tiny.parts) == 1 and tiny.text.startswith("【运营交流群 早报】")


def test_how_each_channel_carries_it() -> None:
    webhook = delivery_for(CAPABILITIES["webhook"], None)
    assert (webhook.kind, webhook.max_parts, webhook.max_bytes) == ("group", 2, 2048)
    customer = delivery_for(CAPABILITIES["customer_group"], "owner1")
    assert (customer.kind, customer.max_parts) == ("mass_send", 1)  # one mass send a day
    assert delivery_for(CAPABILITIES["customer_group"], None).kind == "owner_task"
    assert delivery_for(CAPABILITIES["none"], "owner1").kind == "owner_task"


# --- pure: when it goes, and what WeCom said ------------------------------------------------


def test_a_late_run_or_another_day_skips_with_the_reason() -> None:
    section = DailyReportSection()
    day = date(2026, 12, 7)
    due = local(2026, 12, 7, 8, 30)
    group = Group(chat_id="wr1")

    def why(at: datetime, **changes: Any) -> str | None:
        chosen = section.model_copy(update=changes) if changes else section
        return skip_reason(day, due, group, chosen, at=at, tz=SHANGHAI)

    assert why(local(2026, 12, 7, 8, 30)) is None
    assert why(local(2026, 12, 7, 10, 0)) is None  # exactly the grace
    late = why(local(2026, 12, 7, 10, 1))
    assert late == "late: reached at 10:01, more than 90 minutes after 08:30"
    assert "2026-12-08" in str(why(local(2026, 12, 8, 8, 30), grace_minutes=720))
    assert "switched off" in str(why(local(2026, 12, 7, 8, 30), enabled=False))
    assert "not one of the playbook's days" in str(why(local(2026, 12, 7, 8, 30), days=("sun",)))
    assert skip_reason(day, due, None, section, at=due, tz=SHANGHAI) == "the group is gone"
    assert "no daily_report" in str(skip_reason(day, due, group, None, at=due, tz=SHANGHAI))


def test_what_the_mass_send_answer_means() -> None:
    assert mass_send_outcome("wr1", "pending", None, None) is None
    assert mass_send_outcome("wr1", "sent", {"msgid": "m1", "fail_list": []}, None) == (
        "awaiting_confirmation",
        "m1",
        None,
    )
    unreached = mass_send_outcome("wr1", "sent", {"fail_list": ["wr1"]}, None)
    assert unreached is not None and unreached[0] == "failed" and "fail_list" in str(unreached[2])
    refused = mass_send_outcome("wr1", "failed", None, "41001: bad")
    assert refused is not None and refused[0] == "failed" and "41001" in str(refused[2])


# --- live --------------------------------------------------------------------------------------

GROUP = "wrDaily"
NAME = "早报测试群"
MEMBERS = {"wmA": "小安", "wmB": "小白", "wmC": "小陈", "owner1": "群主"}
DAY = date(2026, 12, 7)  # a Monday
EVE = local(2026, 12, 6, 20, 0)


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    clock = Clock(EVE)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name=NAME,
        members=MEMBERS,
        joined=True,
    ) as app:
        yield app, clock


def reports(emulator: RunningEmulator, api: str = "webhook/send") -> list[str]:
    """The 早报 the group received (welcomes go through the same robot)."""
    return [text for text in sent_texts(emulator, api) if text.startswith(f"【{NAME} 早报】")]


async def add_knowledge(
    app: LiveApp,
    title: str,
    *,
    source: str = "own",
    tags: Sequence[str] = ("知识点",),
    **extra: Any,
) -> int:
    body = {
        "title": title,
        "summary": f"{title}的要点",
        "url": f"https://example.com/{len(title)}",
        "tags": list(tags),
        "source": source,
        **extra,
    }
    got = await app.http.post("/admin/content", json=body, headers=AUTH)
    assert got.status_code == 201, got.text
    return int(got.json()["id"])


async def history(app: LiveApp, since: str = DAY.isoformat()) -> list[dict[str, Any]]:
    """The group's 早报 rows from the test's Monday on (the evening the group was set up
    has its own row: skipped, too late for that day)."""
    got = await app.http.get(
        f"/admin/groups/{GROUP}/daily-reports", headers=AUTH, params={"since": since}
    )
    assert got.status_code == 200, got.text
    return list(got.json())


async def count_rows(app: LiveApp, model: Any) -> int:
    async with app.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_report_reaches_the_group_at_its_time_and_not_before(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await adjust_points(app, GROUP, "wmA", 30)  # yesterday: the month's leaderboard
    await adjust_points(app, GROUP, "owner1", 80)  # the owner never ranks
    await add_knowledge(app, "社群冷启动")

    clock.now = local(2026, 12, 7, 8, 29)
    await settle(app)
    assert reports(emulator) == []
    [booked] = await history(app)
    assert (booked["status"], booked["due_at"]) == ("planned", "2026-12-07T08:30:00+08:00")

    clock.now = local(2026, 12, 7, 8, 30)
    await settle(app)
    [report] = reports(emulator)
    assert report.startswith("【早报测试群 早报】12月7日 周一\n早上好！新的一周开始了。")
    assert "【每日一知识】社群冷启动" in report
    assert "【12月积分榜】\n1. 小安　30 分" in report and "群主" not in report
    [sent] = await history(app)
    assert (sent["status"], sent["delivery"], sent["parts"]) == ("sent", "group", 1)
    assert sent["text"] == report
    assert sent["outbox_key"] == report_key(GROUP, DAY) == f"daily_report:{GROUP}:2026-12-07"

    clock.now = local(2026, 12, 7, 9, 0)  # later that morning: nothing more
    await settle(app)
    assert len(reports(emulator)) == 1


async def test_the_days_demand_posts_are_published_once_in_it(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    posts = [
        {"kind": "招聘", "text": "诚聘社群运营，坐标上海", "contact": "hr@example.com"},
        {"kind": "求职", "text": "找新媒体运营的工作，三年经验", "chat_ids": [GROUP]},
        {"kind": "活动", "text": "周六下午线下沙龙，限 30 人", "tags": ["别的群"]},
    ]
    for body in posts:
        created = await app.http.post("/admin/demands", headers=AUTH, json=body)
        assert created.status_code == 201, created.text
    await add_knowledge(app, "第一天的知识")
    clock.now = local(2026, 12, 7, 8, 30)
    await settle(app)
    [report] = reports(emulator)
    assert "【今日供需】\n招聘：诚聘社群运营，坐标上海（联系：hr@example.com）" in report
    assert "求职：找新媒体运营的工作，三年经验" in report
    assert "线下沙龙" not in report  # another group's
    published = await app.http.get("/admin/demands", headers=AUTH, params={"chat_id": GROUP})
    assert sorted(
        (p["kind"], [(x["chat_id"], x["report_date"]) for x in p["publications"]])
        for p in published.json()
    ) == [("招聘", [(GROUP, "2026-12-07")]), ("求职", [(GROUP, "2026-12-07")])]
    # The next day's 早报 does not repeat them.
    await add_knowledge(app, "第二天的知识")
    clock.now = local(2026, 12, 8, 8, 30)
    await settle(app)
    second = reports(emulator)[1]
    assert "【每日一知识】第二天的知识" in second and "【今日供需】" not in second


OPENING = "新群冷启动，前 50 个人从哪里找比较好"


async def test_yesterdays_best_thread_and_new_resources_are_in_it(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    evening = local(2026, 12, 6, 20, 30)

    def minutes(n: int) -> datetime:
        return evening + timedelta(minutes=n)

    clock.now = minutes(5)
    await post_archive(
        app,
        [
            archive_text("h1", "wmA", GROUP, evening, OPENING),
            archive_text("h2", "wmB", GROUP, minutes(1), "先从老客户里挑活跃的"),
            archive_text("h3", "wmA", GROUP, minutes(2), "老客户要给什么理由进群"),
            archive_text("h4", "wmC", GROUP, minutes(3), "送一份独家资料就够了"),
        ],
    )
    await add_knowledge(app, "今天的知识点")  # added yesterday: not also a new resource
    await add_knowledge(app, "活动复盘模板", tags=["模板"])
    clock.now = local(2026, 12, 7, 8, 30)
    await settle(app)
    [report] = reports(emulator)
    preview = await app.http.get(f"/admin/groups/{GROUP}/daily-report", headers=AUTH)
    [thread] = preview.json()["blocks"]["highlights"]
    assert thread["starter"] == "小安" and thread["replies"] >= 2
    assert f"【昨日精彩】\n· 小安：{OPENING}（{thread['replies']} 条回复）" in report
    assert "· 新资源：活动复盘模板 https://example.com/6" in report
    assert "新资源：今天的知识点" not in report and "【每日一知识】今天的知识点" in report


async def test_tick_twice_for_the_same_morning_and_a_restart_send_one(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await add_knowledge(app, "私域入门")
    settings = app.runtime.settings
    morning = local(2026, 12, 7, 8, 31)
    # `wecom-bot tick --at 2026-12-07T08:31` twice: each run is a fresh service on the
    # same database, sending through the configured WeCom (the emulator).
    first = await run_tick_command(settings, morning, None)
    second = await run_tick_command(settings, morning, None)
    assert (first["reports"], second["reports"]) == ({"sent": 1}, {})
    assert tick_lines(first)[3] == "早报：发出 1 份"
    assert len(reports(emulator)) == 1
    # A restart: a new service on the same database, later that morning.
    clock.now = local(2026, 12, 7, 8, 40)
    async with live_app(settings, background=False, clock=clock) as restarted:
        await settle(restarted)
    await settle(app)
    assert len(reports(emulator)) == 1
    [row] = await history(app)
    assert row["status"] == "sent" and row["trigger"] == "schedule"


@pytest.mark.parametrize(("minute", "sent"), [(59, True), (61, False)])
async def test_a_late_start_sends_within_grace_and_skips_beyond_it(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator, minute: int, sent: bool
) -> None:
    app, clock = live
    await add_knowledge(app, "复盘方法")
    # The service was down all morning and comes back at 9:59 or 10:01 (grace: 90 min).
    clock.now = local(2026, 12, 7, 9, 0) + timedelta(minutes=minute)
    await settle(app)
    [row] = await history(app)
    if sent:
        assert row["status"] == "sent" and len(reports(emulator)) == 1
    else:
        assert row["status"] == "skipped" and reports(emulator) == []
        assert row["reason"] == "late: reached at 10:01, more than 90 minutes after 08:30"
        assert await count_rows(app, KnowledgePointUse) == 0  # the queue did not move


async def test_nothing_to_say_is_not_sent(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    clock.now = local(2026, 12, 7, 8, 30)
    await settle(app)
    [row] = await history(app)
    assert row["status"] == "skipped" and row["reason"].startswith("nothing to report")
    assert reports(emulator) == []


async def test_knowledge_points_do_not_repeat_until_every_one_was_used(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    external = await add_knowledge(app, "外部好文", source="external")
    first = await add_knowledge(app, "自有一")
    await add_knowledge(app, "不是知识点", tags=["别的"])
    await add_knowledge(app, "别的群的", scope=["wrOther"])
    second = await add_knowledge(app, "自有二")
    used = []
    for offset in range(4):
        clock.now = local(2026, 12, 7, 8, 30) + timedelta(days=offset)
        await settle(app)
        newest = (await history(app))[0]
        assert newest["status"] == "sent", newest
        used.append(newest["knowledge_item_id"])
    assert used == [first, second, external, first]
    texts = reports(emulator)
    assert "【每日一知识】自有一" in texts[0] and "【每日一知识】外部好文" in texts[2]
    # The untagged item is a new resource the first day, never a knowledge point; the
    # other group's item appears nowhere.
    assert not any("【每日一知识】不是知识点" in t or "别的群的" in t for t in texts)


async def test_a_customer_group_gets_the_mass_send_and_the_owner_a_reminder(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    put = await app.http.put(
        f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "customer_group"}}
    )
    assert put.status_code == 200, put.text
    # More than one mass send can carry (4000 bytes): the summary is shortened to fit.
    long_url = "https://example.com/" + "a" * 1000
    await add_knowledge(app, "客户群知识", summary="要点" * 499, url=long_url)
    clock.now = local(2026, 12, 7, 8, 30)
    await settle(app)
    [mass] = [
        r
        for r in emulator.state.sent_since(0)
        if r.api == "add_msg_template" and r.body["chat_type"] == "group"  # not the touches
    ]
    assert mass.body["chat_id_list"] == [GROUP]
    assert mass.body["sender"] == "owner1"
    text = mass.body["text"]["content"]
    assert text.startswith("【早报测试群 早报】") and len(text.encode()) <= 4000
    async with app.runtime.sessions() as session:
        tasks = list((await session.execute(select(OwnerTask))).scalars())
    assert [(t.origin, t.recipient) for t in tasks] == [("daily_report", "owner1")]
    assert "确认发送" in tasks[0].summary and "12月7日 周一" in tasks[0].summary
    [row] = await history(app)
    assert (row["delivery"], row["parts"], row["mass_send_state"]) == ("mass_send", 1, "queued")
    assert "knowledge summary shortened" in row["reason"]
    # The periodic job copies WeCom's answer (the task's msgid) onto the day's row.
    await app.runtime.follow_daily_report_mass_sends()
    [row] = await history(app)
    assert row["mass_send_state"] == "awaiting_confirmation"
    async with app.runtime.sessions() as session:
        outbox = (
            await session.execute(select(OutboxItem).where(OutboxItem.origin == "daily_report"))
        ).scalar_one()
    assert row["mass_send_msgid"] == outbox.result["msgid"]  # type: ignore[index]


async def test_preview_marks_nothing_and_send_now_is_once(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    item = await add_knowledge(app, "预览的知识")
    await add_knowledge(app, "下一条知识")
    clock.now = local(2026, 12, 7, 7, 0)  # before the 早报's time
    path = f"/admin/groups/{GROUP}/daily-report"
    seen = []
    for _ in range(2):
        got = await app.http.get(path, headers=AUTH, params={"date": "2026-12-07"})
        assert got.status_code == 200, got.text
        seen.append(got.json())
    assert seen[0] == seen[1]
    shown = seen[0]
    assert (shown["status"], shown["delivery"], shown["report"]) == ("not_booked", "group", None)
    assert shown["blocks"]["knowledge"]["item_id"] == item
    assert shown["parts"] == [shown["text"]] and shown["has_news"]
    assert (await count_rows(app, KnowledgePointUse), await history(app)) == (0, [])
    assert reports(emulator) == []

    sent = await app.http.post(path, headers=AUTH)
    assert sent.status_code == 200, sent.text
    assert (sent.json()["status"], sent.json()["trigger"]) == ("sent", "admin")
    assert sent.json()["knowledge_item_id"] == item
    await settle(app)
    assert reports(emulator) == [shown["text"]]
    again = await app.http.post(path, headers=AUTH)
    assert again.status_code == 409
    assert (
        again.json()["detail"] == "the 早报 of 2026-12-07 was already sent (by an admin at 07:00)"
    )
    clock.now = local(2026, 12, 7, 8, 30)  # the schedule: nothing more that day
    await settle(app)
    assert len(reports(emulator)) == 1
    after = (await app.http.get(path, headers=AUTH)).json()
    assert after["status"] == "sent" and after["blocks"]["knowledge"]["item_id"] == item
    assert after["report"]["text"] == shown["text"]
    assert await count_rows(app, KnowledgePointUse) == 1


async def test_bad_requests_change_nothing(live: tuple[LiveApp, Clock]) -> None:
    app, clock = live
    clock.now = local(2026, 12, 7, 7, 0)
    path = f"/admin/groups/{GROUP}/daily-report"
    assert (
        await app.http.get("/admin/groups/wrNope/daily-report", headers=AUTH)
    ).status_code == 404
    assert (
        await app.http.post("/admin/groups/wrNope/daily-report", headers=AUTH)
    ).status_code == 404
    assert (
        await app.http.get("/admin/groups/wrNope/daily-reports", headers=AUTH)
    ).status_code == 404
    for bad in ("2026-13-01", "07.12.2026", "2026-12-7", "yesterday"):
        got = await app.http.get(path, headers=AUTH, params={"date": bad})
        assert got.status_code == 422 and "2026-12-07" in got.json()["detail"], bad
    history_bad = await app.http.get(
        f"/admin/groups/{GROUP}/daily-reports", headers=AUTH, params={"since": "last week"}
    )
    assert history_bad.status_code == 422
    other_day = await app.http.post(path, headers=AUTH, params={"date": "2026-12-08"})
    assert other_day.status_code == 422 and "only today's" in other_day.json()["detail"]
    # A group whose playbook has no 早报 (引流群 → lead.yaml).
    tagged = await app.http.put(f"/admin/groups/{GROUP}", headers=AUTH, json={"tags": ["引流群"]})
    assert tagged.status_code == 200, tagged.text
    for method in ("GET", "POST"):
        got = await app.http.request(method, path, headers=AUTH)
        assert got.status_code == 409 and "no daily_report" in got.json()["detail"], method
    assert await history(app) == []


async def test_switched_off_or_undeliverable_says_why(
    live: tuple[LiveApp, Clock], templates_dir: Path, emulator: RunningEmulator
) -> None:
    app, clock = live
    await add_knowledge(app, "送不出去的知识")
    clock.now = local(2026, 12, 7, 7, 0)
    path = f"/admin/groups/{GROUP}/daily-report"
    (templates_dir / "quiet_group.yaml").write_text(
        f"extends: default\napplies_to: {{chat_ids: [{GROUP}]}}\n"
        "daily_report: {enabled: false}\n",
        encoding="utf-8",
    )
    assert (await app.http.post("/admin/playbooks/reload", headers=AUTH)).status_code == 200
    off = await app.http.post(path, headers=AUTH)
    assert off.status_code == 409 and "switched off" in off.json()["detail"]
    preview = await app.http.get(path, headers=AUTH)  # an operator drafting may still look
    assert preview.status_code == 200 and preview.json()["enabled"] is False
    assert preview.json()["sends_that_day"] is False

    (templates_dir / "quiet_group.yaml").unlink()
    assert (await app.http.post("/admin/playbooks/reload", headers=AUTH)).status_code == 200
    # A group the bot cannot post into and that has nobody to hand the 早报 to.
    put = await app.http.put(
        f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "none"}}
    )
    assert put.status_code == 200, put.text
    async with app.runtime.sessions() as session, session.begin():
        group = await session.get(Group, GROUP)
        assert group is not None
        group.owner = None
    nobody = await app.http.post(path, headers=AUTH)
    assert nobody.status_code == 409
    assert nobody.json()["detail"] == (
        "nothing could be sent: the bot cannot post here and the group has no owner or operator"
    )
    clock.now = local(2026, 12, 7, 8, 30)
    await settle(app)
    [row] = await history(app)
    assert row["status"] == "failed" and "no owner or operator" in row["reason"]
    assert await count_rows(app, KnowledgePointUse) == 0  # rolled back with the rest
    assert reports(emulator) == []


# --- several replicas ----------------------------------------------------------------------


def test_three_replicas_and_two_ticks_send_one_report_per_group(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """Three `serve` replicas on one PostgreSQL database, on the real clock. The
    operator switches the 早报 on for this very minute while they run: each replica
    reloads the playbook and books and claims the morning's rows, and two
    `wecom-bot tick --at` processes join in at the same time. Each group receives
    exactly one 早报."""
    now_local = datetime.now(SHANGHAI)
    if not time(0, 3) <= now_local.time() <= time(23, 56):
        pytest.skip("too close to local midnight: the day would change under the test")
    templates = tmp_path / "sop_templates"
    shutil.copytree(SHIPPED, templates)
    default_file = templates / "default.yaml"
    default = yaml.safe_load(default_file.read_text(encoding="utf-8"))
    default["quiet_hours"] = None  # this minute may be any time of day
    default["touch_sequence"] = None
    default["daily_report"].update(enabled=False, skip_when_empty=False)
    default_file.write_text(yaml.safe_dump(default, allow_unicode=True), encoding="utf-8")

    fake = start_emulator_in_thread(
        EmulatorState(corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET)
    )
    groups = {f"wrDailyRep{n}": f"副本早报群{n}" for n in range(5)}
    env = configured_env(tmp_path, api_base=fake.base_url, database_url=fresh_postgres_url)
    replicas = [Server(env, tmp_path, free_port()) for _ in range(3)]

    def received(name: str) -> int:
        return sum(1 for text in sent_texts(fake) if text.startswith(f"【{name} 早报】"))

    async def rows() -> list[tuple[str, str, int]]:
        engine = db.make_engine(fresh_postgres_url)
        try:
            async with db.make_sessionmaker(engine)() as session:
                found = await session.execute(
                    select(DailyReport.chat_id, DailyReport.status, DailyReport.parts)
                )
                return [(str(c), str(s), int(p)) for c, s, p in found.all()]
        finally:
            await engine.dispose()

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda replica: replica.start(timeout=60), replicas))
        for n, (chat_id, name) in enumerate(groups.items()):
            httpx.put(
                f"{replicas[n % 3].url}/admin/groups/{chat_id}",
                headers=AUTH,
                json={"name": name, "channel": {"type": "webhook", "key": f"k-{chat_id}"}},
                timeout=10,
            ).raise_for_status()
        # The operator switches the 早报 on, due this minute; every replica reloads.
        minute = datetime.now(SHANGHAI).replace(second=0, microsecond=0)
        default["daily_report"].update(enabled=True, at=minute.strftime("%H:%M"))
        default_file.write_text(yaml.safe_dump(default, allow_unicode=True), encoding="utf-8")
        at = datetime.now(SHANGHAI).isoformat()
        with ThreadPoolExecutor(max_workers=2) as pool:
            ticks = list(pool.map(lambda _: run_cli(["tick", "--at", at], env, tmp_path), range(2)))
        assert [t.returncode for t in ticks] == [0, 0], [t.stderr for t in ticks]

        def all_received() -> bool:
            return all(received(name) >= 1 for name in groups.values())

        wait_until(all_received, timeout=60, interval=0.5)
    finally:
        for replica in replicas:  # nothing more can go out once they stop
            replica.stop()
        fake.stop()
    assert {name: received(name) for name in groups.values()} == dict.fromkeys(groups.values(), 1)
    found = asyncio.run(rows())
    assert sorted(found) == [(chat_id, "sent", 1) for chat_id in sorted(groups)]
