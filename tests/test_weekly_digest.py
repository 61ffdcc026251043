"""The weekly 群刊 (issue 10): pure composing and the calendar, the playbook section,
then whole weeks through the real /wecom/archive path, the inbox worker and the
due-work engine on SQLite and PostgreSQL: one message listing last week's threads in
order, once per group and week across ticks and a restart; quiet weeks skipped with
the reason; customer groups get an owner task; the preview marks nothing."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from bot.config.playbooks import PlaybookLoadError, load_playbooks
from bot.config.playbooks.weekly_digest_section import DEFAULT_TEXT, WeeklyDigestSection
from bot.sandbox.emulator.server import RunningEmulator
from bot.sources.aibot import normalize_aibot
from bot.sources.normalized import store_many
from handlers.core.events import Message
from handlers.features.health.read import parse_week, week_of
from handlers.features.highlights import Resource, Thread
from handlers.features.weekly_digest.compose import (
    compose,
    digest_key,
    due_at,
    overdue,
    week_before,
    week_words,
)
from storage.models import OutboxItem, OwnerTask, WeeklyDigest
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    archive_text,
    configured_settings,
    live_app,
    live_webhook_group,
    post_archive,
    sent_texts,
    settle,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED = Path(__file__).resolve().parent.parent / "sop_templates"


def local(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# --- pure: the calendar -----------------------------------------------------------------

W49 = parse_week("2026-W49", SHANGHAI)  # Monday 30 November – Sunday 6 December 2026


def test_the_week_as_members_read_it() -> None:
    assert week_words(W49) == "第49周（11月30日–12月6日）"
    # A week across the new year keeps its ISO year's number.
    assert week_words(parse_week("2026-W53", SHANGHAI)) == "第53周（12月28日–1月3日）"
    assert week_words(parse_week("2027-W01", SHANGHAI)) == "第1周（1月4日–1月10日）"


def test_a_digest_looks_back_on_the_week_before_and_goes_out_on_its_weekday() -> None:
    section = WeeklyDigestSection()
    # Local Monday 00:05 is still Sunday in UTC: it already looks back on W49.
    assert week_before(local(12, 7, 0, 5), SHANGHAI) == W49
    assert week_before(local(12, 13, 23, 59), SHANGHAI) == W49
    assert week_before(local(12, 6, 23, 59), SHANGHAI).label == "2026-W48"
    assert due_at(W49, section, SHANGHAI) == local(12, 7, 10, 0)
    friday = WeeklyDigestSection(weekday="fri", at=time(18, 30))
    assert due_at(W49, friday, SHANGHAI) == local(12, 11, 18, 30)


def test_a_late_start_sends_the_same_day_and_skips_after_it() -> None:
    due = local(12, 7, 10, 0)
    assert overdue(due, due, SHANGHAI) is None
    assert overdue(due, local(12, 7, 23, 59), SHANGHAI) is None
    late = overdue(due, local(12, 8, 0, 1), SHANGHAI)
    assert late is not None and late.startswith("overdue")
    assert "2026-12-07 10:00" in late and "2026-12-08 00:01" in late


# --- pure: composing -----------------------------------------------------------------------


def thread(name: str, replies: int, *, essence: int = 0, day: int = 1) -> Thread:
    return Thread(
        msg_id=f"m-{name}",
        starter_id=f"wm{name}",
        starter_name=name,
        text=f"{name}的话题",
        replies=replies,
        participants=2,
        essence=essence,
        started_at=W49.start + timedelta(days=day, hours=20),
    )


GROUP_VARS = {"chat_id": "wrX", "name": "私域交流群", "tags": []}


def test_compose_lists_threads_and_resources_in_order_and_skips_a_quiet_week() -> None:
    section = WeeklyDigestSection(min_threads=2)
    resources = [
        Resource(kind="library", title="新手指南", at=W49.start, url="https://example.com/g"),
        Resource(kind="essence", title="一份清单", at=W49.start, author_name="小白"),
    ]
    draft = compose(
        section,
        W49,
        GROUP_VARS,  # type: ignore[arg-type]
        [thread("小安", 3), thread("小白", 1, essence=1, day=2)],
        resources,
        today=date(2026, 12, 7),
        tz=SHANGHAI,
    )
    assert draft.skip is None
    assert draft.text == (
        "【群刊】私域交流群 · 第49周（11月30日–12月6日）\n"
        "这一周群里最值得回看的讨论：\n"
        "1. 小安：「小安的话题」（3 条回复）\n"
        "2. 小白：「小白的话题」（1 条回复，精华）\n"
        "\n"
        "新资料：\n"
        "· 新手指南 https://example.com/g\n"
        "· 一份清单（小白 分享）\n"
        "\n"
        "错过的话题，欢迎在群里接着聊～"
    )
    [first, _] = draft.threads_json(SHANGHAI)
    assert first["started_at"] == "2026-12-01T20:00:00+08:00"

    quiet = compose(
        section, W49, GROUP_VARS, [thread("小安", 3)], resources,  # type: ignore[arg-type]
        today=date(2026, 12, 7), tz=SHANGHAI,
    )  # fmt: skip
    assert quiet.text is None
    assert quiet.skip is not None and "fewer than min_threads 2" in quiet.skip

    custom = WeeklyDigestSection(
        min_threads=1,
        text="{{ week_id }} {% for t in threads %}{{ t.day }}{{ t.name }}{% endfor %} "
        "{{ thread_count }}/{{ resource_count }}",
    )
    one = compose(
        custom, W49, GROUP_VARS, [thread("小安", 3)], [],  # type: ignore[arg-type]
        today=date(2026, 12, 7), tz=SHANGHAI,
    )  # fmt: skip
    assert one.text == "2026-W49 周二小安 1/0"
    assert digest_key("wrX", "2026-W49") == "weekly_digest:wrX:2026-W49"


# --- the playbook section ------------------------------------------------------------------


def test_the_section_validates_its_fields_and_template() -> None:
    assert WeeklyDigestSection().text == DEFAULT_TEXT
    for bad in (
        {"weekday": "monday"},
        {"at": "25:00"},
        {"top_threads": 0},
        {"top_resources": 21},
        {"min_threads": 0},
        {"min_threads": 6},  # above top_threads 5: no week could be sent
        {"text": "   "},
        {"text": "{{ weeks }}"},
        {"text": "{% for t in threads %}{{ t.nmae }}{% endfor %}"},
        {"text": "{% if threads %}"},
        {"colour": "red"},
    ):
        with pytest.raises(ValidationError):
            WeeklyDigestSection.model_validate(bad)


def test_a_bad_section_is_refused_naming_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(
        textwrap.dedent(
            """\
            weekly_digest:
              weekday: mon
              text: |
                {{ group_name }}
                {{ wek }}
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(PlaybookLoadError) as caught:
        load_playbooks(tmp_path)
    [issue] = caught.value.issues
    # An unknown variable names the key's line (a syntax error, the line in the block).
    assert (issue.file, issue.line, issue.field) == ("default.yaml", 3, "weekly_digest.text")
    assert "unknown variable 'wek'" in issue.message
    (tmp_path / "default.yaml").write_text(
        "weekly_digest:\n  top_threads: 3\n  min_threads: 4\n", encoding="utf-8"
    )
    with pytest.raises(PlaybookLoadError) as caught:
        load_playbooks(tmp_path)
    [issue] = caught.value.issues
    assert (issue.line, issue.field) == (3, "weekly_digest.min_threads")


def test_the_shipped_playbooks_send_the_documented_text_on_mondays() -> None:
    playbooks = load_playbooks(SHIPPED).playbooks
    for playbook in playbooks.values():
        section = playbook.weekly_digest
        assert section is not None and section.enabled
        assert (section.weekday, section.at, section.min_threads) == ("mon", time(10, 0), 2)
    default = playbooks["default"].weekly_digest
    assert default is not None and default.text.rstrip("\n") == DEFAULT_TEXT


# --- live: a week through the archive, the inbox worker and the engine ---------------------

GROUP = "wrDigest"
QUIET_GROUP = "wrDigestOff"
PLAYBOOK = """\
name: digest_only
extends: default
applies_to: {chat_ids: [wrDigest]}
rules: {enabled: false}
touch_sequence: {enabled: false}
keywords: {enabled: false}
weekly_digest: {top_threads: 3, top_resources: 5, min_threads: 2}
"""
NO_DIGEST = """\
name: no_digest
extends: default
applies_to: {chat_ids: [wrDigestOff]}
weekly_digest: null
"""
MEMBERS = {"wmA": "小安", "wmB": "小白", "wmC": "小陈", "owner1": "群主"}
T0 = local(12, 1, 9, 0)  # Tuesday of W49


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    (templates_dir / "digest_only.yaml").write_text(PLAYBOOK, encoding="utf-8")
    (templates_dir / "no_digest.yaml").write_text(NO_DIGEST, encoding="utf-8")
    clock = Clock(T0)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="私域交流群",
        members=MEMBERS,
        joined=True,
    ) as app:
        yield app, clock


counter = iter(range(10**6))


async def say(app: LiveApp, clock: Clock, sender: str, at: datetime, text: str) -> str:
    """One archive record at `at` (the service's clock just after it); its msgid."""
    msgid = f"d{next(counter)}"
    clock.now = max(clock.now, at + timedelta(seconds=1))
    await post_archive(app, [archive_text(msgid, sender, GROUP, at, text)])
    return msgid


async def react(app: LiveApp, clock: Clock, sender: str, at: datetime, quoted: str) -> None:
    """An owner's 「精华」 quoting `quoted`, as the 智能机器人 callback brings it (the
    archive carries no quote)."""
    payload = {
        "msgid": f"react-{next(counter)}",
        "chatid": GROUP,
        "chattype": "group",
        "from": {"userid": sender},
        "msgtype": "text",
        "text": {"content": "@小助手 精华"},
        "quote": {"msgtype": "text", "text": {"content": quoted}},
    }
    incoming = normalize_aibot(payload, json.dumps(payload, ensure_ascii=False))
    assert isinstance(incoming.event, Message)
    incoming = replace(incoming, event=incoming.event.model_copy(update={"occurred_at": at}))
    clock.now = max(clock.now, at + timedelta(seconds=1))
    await store_many(app.runtime.appender, [incoming], now=app.runtime.clock())
    await settle(app)


OPENING_1 = "有没有人做过私域社群的冷启动？想要一份清单"
OPENING_2 = "分享一个活动复盘：报名转化做到了三成，关键是提前一周预热"
OPENING_3 = "周末有人去线下沙龙吗"


async def seed_week(app: LiveApp, clock: Clock) -> None:
    """W49 as hand-counted: thread 1 has three member replies; thread 2 one reply and a
    精华 mark; thread 3 one reply; the owner's monologue and a lone message are not
    threads worth a line; a new library item."""
    tue, wed, thu, fri = (local(12, d, 20) for d in (1, 2, 3, 4))
    await say(app, clock, "wmA", tue, OPENING_1)
    await say(app, clock, "wmB", tue + timedelta(minutes=1), "我做过，先找种子用户")
    await say(app, clock, "wmC", tue + timedelta(minutes=2), "种子用户从老客户里挑")
    await say(app, clock, "wmA", tue + timedelta(minutes=3), "谢谢两位，我去试试")
    await say(app, clock, "wmB", wed, OPENING_2)
    await say(app, clock, "wmC", wed + timedelta(minutes=2), "三成很高了，预热怎么做的")
    await react(app, clock, "owner1", wed + timedelta(hours=1), OPENING_2)
    await say(app, clock, "wmC", thu, OPENING_3)
    await say(app, clock, "wmA", thu + timedelta(minutes=5), "我去，一起")
    await say(app, clock, "owner1", fri, "本周群公告：周六直播")
    await say(app, clock, "owner1", fri + timedelta(minutes=1), "记得预约")
    await say(app, clock, "wmB", fri + timedelta(hours=2), "大家晚安")
    created = await app.http.post(
        "/admin/content",
        headers=AUTH,
        json={"title": "私域冷启动清单", "url": "https://example.com/start", "summary": "七步"},
    )
    assert created.status_code == 201, created.text


def digests(emulator: RunningEmulator) -> list[str]:
    return [text for text in sent_texts(emulator) if text.startswith("【群刊】")]


async def preview(app: LiveApp, week: str | None = "2026-W49", chat_id: str = GROUP) -> Any:
    params = {"week": week} if week else {}
    return await app.http.get(f"/admin/groups/{chat_id}/weekly-digest", headers=AUTH, params=params)


async def send_now(app: LiveApp, week: str | None = "2026-W49", chat_id: str = GROUP) -> Any:
    params = {"week": week} if week else {}
    return await app.http.post(
        f"/admin/groups/{chat_id}/weekly-digest", headers=AUTH, params=params
    )


async def digest_rows(app: LiveApp) -> list[WeeklyDigest]:
    async with app.runtime.sessions() as session:
        return list(
            (await session.execute(select(WeeklyDigest).order_by(WeeklyDigest.id))).scalars()
        )


async def outbox_count(app: LiveApp) -> int:
    async with app.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxItem)) or 0)


async def test_a_seeded_week_becomes_one_digest_once_across_ticks_and_a_restart(
    live: tuple[LiveApp, Clock],
    emulator: RunningEmulator,
    database_url: str,
    templates_dir: Path,
) -> None:
    app, clock = live
    await seed_week(app, clock)

    # The preview lists the week and marks nothing.
    clock.now = local(12, 7, 9, 0)
    outbox_before = await outbox_count(app)
    for _ in range(2):
        shown = await preview(app)
        assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["week"], body["label"]) == ("2026-W49", "第49周（11月30日–12月6日）")
    assert body["start"] == "2026-11-30T00:00:00+08:00"
    assert body["end"] == "2026-12-07T00:00:00+08:00"
    assert (body["enabled"], body["would_send"], body["status"]) == (True, True, None)
    assert body["due_at"] == "2026-12-07T10:00:00+08:00"
    assert [(t["name"], t["replies"], t["essence"]) for t in body["threads"]] == [
        ("小安", 3, 0),
        ("小白", 1, 1),
        ("小陈", 1, 0),
    ]
    assert body["threads"][0]["text"] == OPENING_1
    assert body["threads"][0]["started_at"] == "2026-12-01T20:00:00+08:00"
    assert [(r["kind"], r["title"]) for r in body["resources"]] == [
        ("library", "私域冷启动清单"),
        ("essence", OPENING_2),
    ]
    assert body["resources"][1]["author"] == "小白"
    assert await outbox_count(app) == outbox_before
    assert await digest_rows(app) == []  # not even booked by a preview

    # Booked by the engine, sent at 10:00 and not before.
    clock.now = local(12, 7, 9, 59)
    await settle(app)
    [row] = await digest_rows(app)
    assert (row.week, row.status) == ("2026-W49", "scheduled")
    assert digests(emulator) == []
    clock.now = local(12, 7, 10, 0)
    await settle(app)
    [sent] = digests(emulator)
    assert sent == "\n".join(
        [
            "【群刊】私域交流群 · 第49周（11月30日–12月6日）",
            "这一周群里最值得回看的讨论：",
            f"1. 小安：「{OPENING_1}」（3 条回复）",
            f"2. 小白：「{OPENING_2}」（1 条回复，精华）",
            f"3. 小陈：「{OPENING_3}」（1 条回复）",
            "",
            "新资料：",
            "· 私域冷启动清单 https://example.com/start",
            f"· {OPENING_2}（小白 分享）",
            "",
            "错过的话题，欢迎在群里接着聊～",
        ]
    )
    assert "wm" not in sent  # members are named, never by internal ids
    [row] = await digest_rows(app)
    assert (row.status, row.delivery, row.text) == ("sent", "group", sent)
    async with app.runtime.sessions() as session:
        keys = list(
            (
                await session.execute(
                    select(OutboxItem.dedup_key).where(OutboxItem.origin == "weekly_digest")
                )
            ).scalars()
        )
    assert keys == ["weekly_digest:wrDigest:2026-W49"]

    # Two more ticks the same morning, the same instant again, and the afternoon: nothing.
    await settle(app)
    await settle(app, at=local(12, 7, 10, 0))
    clock.now = local(12, 7, 15, 0)
    await settle(app)
    assert len(digests(emulator)) == 1
    again = await send_now(app)
    assert again.status_code == 409 and "already sent" in again.json()["detail"]
    after = await preview(app)
    assert (after.json()["status"], after.json()["sent_text"]) == ("sent", sent)

    # A restart: a new service on the same database sends nothing more.
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    async with live_app(settings, background=False, clock=clock) as restarted:
        clock.now = local(12, 7, 16, 0)
        await settle(restarted)
        clock.now = local(12, 8, 10, 0)
        await settle(restarted)
    assert len(digests(emulator)) == 1
    assert [(r.week, r.status) for r in await digest_rows(app)] == [("2026-W49", "sent")]


async def test_a_quiet_week_is_skipped_with_the_reason_and_not_sent_by_hand_either(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    at = local(12, 2, 20)
    await say(app, clock, "wmA", at, OPENING_1)
    await say(app, clock, "wmB", at + timedelta(minutes=1), "我做过，先找种子用户")
    await say(app, clock, "wmC", local(12, 3, 20), "一条没人接的话")
    clock.now = local(12, 7, 10, 0)
    await settle(app)
    [row] = await digest_rows(app)
    assert row.status == "skipped"
    assert row.note is not None and "fewer than min_threads 2" in row.note
    assert len(row.threads) == 1  # what it found is on record
    assert digests(emulator) == []
    shown = (await preview(app)).json()
    assert (shown["would_send"], shown["status"]) == (False, "skipped")
    assert "min_threads" in shown["skip_reason"]
    refused = await send_now(app)
    assert refused.status_code == 409 and "nothing to send" in refused.json()["detail"]
    [row] = await digest_rows(app)
    assert row.status == "skipped"  # the refusal changed nothing
    assert digests(emulator) == []


async def test_a_late_start_sends_the_same_day_and_skips_the_next(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await seed_week(app, clock)
    # The service was down all Monday morning: it sends at its first tick that day.
    clock.now = local(12, 7, 18, 30)
    await settle(app)
    assert len(digests(emulator)) == 1
    # W50's threads, and the service first looks again on Tuesday 15 December.
    for day in (8, 9):
        at = local(12, day, 20)
        await say(app, clock, "wmA", at, f"12月{day}日的话题")
        await say(app, clock, "wmB", at + timedelta(minutes=1), "接一句")
    clock.now = local(12, 15, 9, 0)
    await settle(app)
    rows = await digest_rows(app)
    assert [(r.week, r.status) for r in rows] == [("2026-W49", "sent"), ("2026-W50", "skipped")]
    assert rows[1].note is not None and rows[1].note.startswith("overdue")
    assert "2026-12-14 10:00" in rows[1].note
    assert len(digests(emulator)) == 1
    # An admin may still send it on purpose.
    sent = await send_now(app, "2026-W50")
    assert sent.status_code == 200, sent.text
    assert (sent.json()["status"], sent.json()["delivery"]) == ("sent", "group")
    await settle(app)
    assert len(digests(emulator)) == 2 and "第50周（12月7日–12月13日）" in digests(emulator)[-1]


async def test_a_customer_group_gets_an_owner_task_with_the_text_to_paste(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    put = await app.http.put(
        f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "customer_group"}}
    )
    assert put.status_code == 200, put.text
    await seed_week(app, clock)
    clock.now = local(12, 7, 10, 0)
    await settle(app)
    [row] = await digest_rows(app)
    assert (row.status, row.delivery) == ("sent", "owner_task")
    async with app.runtime.sessions() as session:
        tasks = list((await session.execute(select(OwnerTask))).scalars())
    [task] = [t for t in tasks if t.origin == "weekly_digest"]
    assert task.recipient == "owner1"
    assert task.dedup_key == "weekly_digest:wrDigest:2026-W49"
    assert "第49周" in task.summary and "不能在本群直接发言" in task.summary
    assert task.paste_text == row.text
    assert task.paste_text is not None and f"1. 小安：「{OPENING_1}」" in task.paste_text
    assert digests(emulator) == []
    clock.now = local(12, 7, 11, 0)
    await settle(app)
    async with app.runtime.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(OwnerTask).where(OwnerTask.origin == "weekly_digest")
        )
    assert count == 1


async def test_send_now_is_once_and_the_schedule_then_finds_it_sent(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await seed_week(app, clock)
    clock.now = local(12, 7, 8, 0)  # before the playbook's 10:00
    sent = await send_now(app, week=None)  # default: last week
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert (body["week"], body["status"], body["delivery"]) == ("2026-W49", "sent", "group")
    assert [t["name"] for t in body["threads"]] == ["小安", "小白", "小陈"]
    assert body["text"].startswith("【群刊】私域交流群 · 第49周")
    twice = await send_now(app)
    assert twice.status_code == 409 and "already sent" in twice.json()["detail"]
    await settle(app)
    clock.now = local(12, 7, 10, 0)
    await settle(app)
    assert len(digests(emulator)) == 1
    assert [(r.week, r.status) for r in await digest_rows(app)] == [("2026-W49", "sent")]


async def test_a_playbook_that_moves_the_day_later_moves_a_booked_digest(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator, templates_dir: Path
) -> None:
    app, clock = live
    await seed_week(app, clock)
    clock.now = local(12, 7, 9, 0)
    await settle(app)
    [row] = await digest_rows(app)
    assert row.due_at == local(12, 7, 10, 0)
    (templates_dir / "digest_only.yaml").write_text(
        PLAYBOOK.replace("min_threads: 2}", "min_threads: 2, weekday: tue, at: '09:00'}"),
        encoding="utf-8",
    )
    assert app.runtime.playbooks.reload().ok
    clock.now = local(12, 7, 10, 0)
    await settle(app)
    [row] = await digest_rows(app)
    assert (row.status, row.due_at) == ("scheduled", local(12, 8, 9, 0))
    assert digests(emulator) == []
    clock.now = local(12, 8, 9, 0)
    await settle(app)
    assert [r.status for r in await digest_rows(app)] == ["sent"]
    assert len(digests(emulator)) == 1


async def test_bad_requests_are_refused_and_change_nothing(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    put = await app.http.put(
        f"/admin/groups/{QUIET_GROUP}",
        headers=AUTH,
        json={"name": "不发群刊的群", "channel": {"type": "webhook", "key": "wk2"}},
    )
    assert put.status_code == 200, put.text
    clock.now = local(12, 7, 9, 0)
    for call in (preview, send_now):
        assert (await call(app, chat_id="wrNobody")).status_code == 404
        for week in ("2026-W54", "2026-49", "W49", "2026-W00"):
            bad = await call(app, week)
            assert bad.status_code == 422, (week, bad.text)
            assert "week" in bad.json()["detail"]
    not_over = await send_now(app, "2026-W50")  # the week of the clock
    assert not_over.status_code == 422 and "not over yet" in not_over.json()["detail"]
    off = await send_now(app, chat_id=QUIET_GROUP)
    assert off.status_code == 409 and "no weekly_digest" in off.json()["detail"]
    # The preview works without the section (the defaults), and says it is off.
    shown = await preview(app, chat_id=QUIET_GROUP)
    assert shown.status_code == 200 and shown.json()["enabled"] is False
    assert (await app.http.get(f"/admin/groups/{GROUP}/weekly-digest")).status_code == 401
    assert await digest_rows(app) == []
    # The engine books no 群刊 for a group whose playbook has none.
    clock.now = local(12, 7, 10, 0)
    await settle(app)
    assert [r.chat_id for r in await digest_rows(app)] == [GROUP]  # too quiet, but booked
    assert digests(emulator) == []


def test_week_of_and_the_digest_agree_on_monday() -> None:
    # The health report's week and the 群刊's are the same ISO weeks.
    assert week_of(date(2026, 12, 6), SHANGHAI) == W49
    assert week_before(local(12, 7, 10), SHANGHAI).start == W49.start
