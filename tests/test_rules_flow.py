"""Humane group rules end to end: archive records posted to /wecom/archive, the inbox
worker, the emulator's sent log, the admin review API. The SPEC §7 example rules.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.sandbox.emulator.server import RunningEmulator
from bot.sources.archive import ArchiveRecord, normalize_archive
from bot.sources.normalized import Incoming, store_many
from handlers.core.events import MemberInfo, MemberJoined
from handlers.wiring import build_features
from storage.inbox_append import InboxAppender
from storage.models import Violation
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    archive_text,
    inbox_processor,
    join_callback,
    live_webhook_group,
    settle,
)
from tests.test_playbooks_rules import SPEC_EXAMPLE

GROUP = "wrAds"
AD = "低价代理，加我微信 abc12345 了解一下"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# The SPEC §7 example rules, for the two groups these tests use.
RULES_PLAYBOOK = (
    """\
name: ads_rules
extends: default
applies_to: {chat_ids: [wrAds, wrCustomer]}
copilot: {operators: [yunying1]}
touch_sequence: {enabled: false}
health: {digest: false}  # the weeks this test skips through would bring Monday digests
"""
    + SPEC_EXAMPLE
)


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A time in November 2026 in Shanghai (BOT_TIMEZONE), as UTC."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SHANGHAI).astimezone(UTC)


def record(
    msgid: str, sender: str, at: datetime, text: str, *, room: str = GROUP
) -> dict[str, Any]:
    return archive_text(msgid, sender, room, at, text)


@pytest.fixture
def rules_templates(templates_dir: Path) -> Path:
    (templates_dir / "ads_rules.yaml").write_text(RULES_PLAYBOOK, encoding="utf-8")
    return templates_dir


@pytest.fixture
async def live(
    database_url: str, rules_templates: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock, RunningEmulator]]:
    clock = Clock(local(24, 15))
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=rules_templates,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="私域运营交流群",
        members={"wmAd": "广告哥", "wmTeacher": "王老师", "wmOther": "小美"},
    ) as app:
        # They joined an hour before: the bot learned the group (owner1) from WeCom.
        clock.now = local(24, 14)
        params, body = join_callback(GROUP, ["wmAd", "wmTeacher", "wmOther"])
        assert (await app.post_callback(params, body)).status_code == 200
        await settle(app)
        clock.advance(120)
        await settle(app)
        yield app, clock, emulator


async def post(app: LiveApp, clock: Clock, *records: dict[str, Any]) -> None:
    response = await app.http.post("/wecom/archive", headers=AUTH, json=list(records))
    assert response.status_code == 200, response.text
    await settle(app)


def sent(emulator: RunningEmulator, since: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.api, r.target, r.body) for r in emulator.state.sent_since(since)]


def last_seq(emulator: RunningEmulator) -> int:
    records = emulator.state.sent_since(0)
    return records[-1].seq if records else 0


def private_to(body: dict[str, Any]) -> list[str]:
    return list(body.get("external_userid") or [body.get("touser")])


async def violations(app: LiveApp, **params: str) -> list[dict[str, Any]]:
    response = await app.http.get("/admin/violations", headers=AUTH, params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_the_ladder_windows_exemptions_expiry_and_overturn(
    live: tuple[LiveApp, Clock, RunningEmulator],
) -> None:
    app, clock, emulator = live
    put = await app.http.put(
        "/admin/members/wmTeacher/roles", headers=AUTH, json={"chat_id": GROUP, "roles": ["讲师"]}
    )
    assert put.status_code == 200
    before = last_seq(emulator)

    # Tuesday 15:00: the first ad gets a private reminder, and nothing in the group.
    clock.now = local(24, 15)
    await post(app, clock, record("m1", "wmAd", local(24, 15), AD))
    first = sent(emulator, before)
    assert [api for api, _, _ in first] == ["add_msg_template"]
    body = first[0][2]
    assert body["chat_type"] == "single" and private_to(body) == ["wmAd"]
    text = body["text"]["content"]
    assert "广告哥" in text and "不发广告" in text and "申诉" in text and "低价代理" in text

    # Five minutes later the second: a public warning in the group.
    before = last_seq(emulator)
    clock.now = local(24, 15, 5)
    await post(app, clock, record("m2", "wmAd", local(24, 15, 5), AD))
    second = sent(emulator, before)
    assert [api for api, _, _ in second] == ["webhook/send"]
    warning = second[0][2]["text"]["content"]
    assert "@广告哥" in warning and "第 2 次" in warning and "申诉" in warning

    # The same ad in the Friday 20:00–21:00 market, and from an exempt 讲师: nothing.
    before = last_seq(emulator)
    clock.now = local(27, 20, 30)
    await post(
        app,
        clock,
        record("m3", "wmAd", local(27, 20, 30), AD),
        record("m4", "wmTeacher", local(27, 20, 31), AD),
        record("m5", "wmTeacher", local(27, 15), AD),
    )
    assert sent(emulator, before) == []

    listed = await violations(app, chat_id=GROUP)
    assert [(v["member_id"], v["step"], v["status"]) for v in listed] == [
        ("wmAd", "warn", "taken"),
        ("wmAd", "remind", "taken"),
    ]
    assert listed[0]["created_at"].endswith("+08:00")
    assert listed[0]["evidence"] and listed[0]["rule"] == "ads"

    # An admin overturns the warning: it shows as overturned, and the member is told.
    before = last_seq(emulator)
    overturned = await app.http.post(
        f"/admin/violations/{listed[0]['id']}/overturn", headers=AUTH, json={"reason": "误判"}
    )
    assert overturned.status_code == 200
    assert overturned.json()["status"] == "overturned"
    await settle(app)
    told = sent(emulator, before)
    assert {api for api, _, _ in told} == {"add_msg_template", "webhook/send"}
    again = await app.http.post(
        f"/admin/violations/{listed[0]['id']}/overturn", headers=AUTH, json={"reason": "x"}
    )
    assert again.status_code == 409

    # Back on the previous step: the next ad (a day later) is a warning again, not a report.
    before = last_seq(emulator)
    clock.now = local(25, 10)
    await post(app, clock, record("m6", "wmAd", local(25, 10), AD))
    assert [api for api, _, _ in sent(emulator, before)] == ["webhook/send"]

    # Fifteen days after the last warning the ladder starts over: a private reminder.
    before = last_seq(emulator)
    later = local(25, 10) + timedelta(days=15)
    clock.now = later
    await post(app, clock, record("m7", "wmAd", later, AD))
    assert [api for api, _, _ in sent(emulator, before)] == ["add_msg_template"]

    stats = await app.http.get("/admin/rules/stats", headers=AUTH, params={"chat_id": GROUP})
    [ads] = [row for row in stats.json() if row["rule"] == "ads"]
    assert (ads["taken"], ads["overturned"]) == (3, 1)
    assert ads["overturn_rate"] == pytest.approx(0.25)


async def test_a_replayed_batch_takes_no_second_step(
    live: tuple[LiveApp, Clock, RunningEmulator],
) -> None:
    app, clock, emulator = live
    before = last_seq(emulator)
    batch = [record("r1", "wmAd", local(24, 15), AD)]
    await post(app, clock, *batch)
    await post(app, clock, *batch)
    assert len(sent(emulator, before)) == 1
    assert len(await violations(app, member_id="wmAd")) == 1


async def test_dry_run_records_for_review_and_sends_nothing(
    live: tuple[LiveApp, Clock, RunningEmulator], rules_templates: Path
) -> None:
    app, clock, emulator = live
    path = rules_templates / "ads_rules.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("dry_run: false", "dry_run: true"),
        encoding="utf-8",
    )
    await app.runtime.playbooks.reload_async()
    before = last_seq(emulator)
    await post(app, clock, record("d1", "wmAd", local(24, 15), AD))
    await post(app, clock, record("d2", "wmAd", local(24, 15, 5), AD))
    assert sent(emulator, before) == []
    listed = await violations(app, member_id="wmAd")
    assert [(v["status"], v["step"]) for v in listed] == [("dry_run", None), ("dry_run", None)]
    assert all("would remind" in v["reason"] for v in listed)  # never climbs in dry run
    review = (await app.http.get("/admin/review", headers=AUTH)).json()
    assert [item["review"] for item in review] == ["dry_run", "dry_run"]


async def test_an_appeal_reaches_the_review_queue_and_the_owner(
    live: tuple[LiveApp, Clock, RunningEmulator],
) -> None:
    app, clock, emulator = live
    await post(app, clock, record("a1", "wmAd", local(24, 15), AD))
    before = last_seq(emulator)
    clock.now = local(24, 16)
    await post(app, clock, record("a2", "wmAd", local(24, 16), "申诉 我发的是公司官网"))
    review = (await app.http.get("/admin/review", headers=AUTH)).json()
    assert [(item["review"], item["appeal_text"]) for item in review] == [
        ("appeal", "申诉 我发的是公司官网")
    ]
    clock.advance(30)
    await settle(app)
    digests = [
        (target, body["text"]["content"])
        for api, target, body in sent(emulator, before)
        if api == "message/send"
    ]
    assert {target for target, _ in digests} == {"owner1", "yunying1"}
    assert all("申诉" in text and "广告哥" in text for _, text in digests)
    # Confirming takes it out of the queue; a later overturn is still possible.
    confirm = await app.http.post(f"/admin/violations/{review[0]['id']}/confirm", headers=AUTH)
    assert confirm.status_code == 200
    assert (await app.http.get("/admin/review", headers=AUTH)).json() == []


async def test_flood_is_counted_within_one_batch(
    live: tuple[LiveApp, Clock, RunningEmulator],
) -> None:
    app, clock, emulator = live
    before = last_seq(emulator)
    burst = [record(f"f{n}", "wmOther", local(24, 15, 0, n), f"第{n}条消息") for n in range(9)]
    await post(app, clock, *burst)
    listed = await violations(app, member_id="wmOther", rule="flood")
    assert [(v["status"], v["step"]) for v in reversed(listed)] == [
        ("taken", "remind"),  # the 8th message in 10 s
        ("held", None),  # the 9th: never two steps within a minute
    ]
    assert len(sent(emulator, before)) == 1


async def test_unknown_violation_is_404(live: tuple[LiveApp, Clock, RunningEmulator]) -> None:
    app, _, _ = live
    response = await app.http.post("/admin/violations/999/overturn", headers=AUTH, json={})
    assert response.status_code == 404
    assert (await app.http.get("/admin/violations/999", headers=AUTH)).status_code == 404


async def test_raid_guard_one_notice_for_twenty_joins(
    live: tuple[LiveApp, Clock, RunningEmulator],
) -> None:
    app, clock, emulator = live
    newcomers = [f"wmNew{n:02d}" for n in range(20)]
    clock.now = local(24, 15)  # WeCom's join times (groupchat/get) follow this clock
    emulator.state.upsert_group(
        GROUP,
        name="私域运营交流群",
        owner="owner1",
        members=[{"userid": uid, "name": f"新人{n}"} for n, uid in enumerate(newcomers)],
    )
    before = last_seq(emulator)
    for n, member in enumerate(newcomers):
        clock.now = local(24, 15, 0, n // 2)  # 20 joins within 10 s
        params, body = join_callback(GROUP, [member])
        assert (await app.post_callback(params, body)).status_code == 200
    await settle(app)
    clock.advance(60)
    await settle(app)
    group_posts = [
        body["text"]["content"]
        for api, _, body in sent(emulator, before)
        if api == "webhook/send" and "防止广告号" in body["text"]["content"]
    ]
    assert len(group_posts) == 1
    # In strict mode a newcomer's link goes to the owner, not to a reminder per member.
    before = last_seq(emulator)
    clock.now = local(24, 15, 2)
    await post(app, clock, record("x1", "wmNew03", local(24, 15, 2), "福利 http://spam.example/x"))
    listed = await violations(app, member_id="wmNew03")
    assert [(v["rule"], v["step"]) for v in listed] == [("raid_guard", "report")]
    assert [api for api, _, _ in sent(emulator, before)] == []


async def test_in_a_customer_group_the_ad_becomes_one_owner_task(
    live: tuple[LiveApp, Clock, RunningEmulator],
) -> None:
    app, clock, emulator = live
    customer = "wrCustomer"
    emulator.state.upsert_group(
        customer,
        name="VIP 客户群",
        owner="owner1",
        members=[{"userid": "wmBuyer", "name": "买家小李", "type": 2}],
    )
    response = await app.http.put(
        f"/admin/groups/{customer}",
        headers=AUTH,
        json={"name": "VIP 客户群", "channel": {"type": "customer_group", "sender": "owner1"}},
    )
    assert response.status_code == 200
    params, body = join_callback(customer, ["wmBuyer"])
    assert (await app.post_callback(params, body)).status_code == 200
    await settle(app)
    clock.advance(60)
    await settle(app)  # the welcome template synced, the welcome batch done
    before = last_seq(emulator)
    clock.now = local(24, 15)
    await post(app, clock, record("c1", "wmBuyer", local(24, 15), AD, room=customer))
    assert sent(emulator, before) == []  # gathered for a few seconds first
    clock.advance(30)
    await settle(app)
    out = sent(emulator, before)
    assert {api for api, _, _ in out} == {"message/send"}  # nothing to the group
    by_person = {target: body["text"]["content"] for _, target, body in out}
    assert set(by_person) == {"owner1", "yunying1"}
    task = by_person["owner1"]
    assert "买家小李" in task and "不发广告" in task and "低价代理" in task and "VIP 客户群" in task
    assert "可直接复制" in task  # the reminder, ready to paste

    # A second ad a minute later: recorded, batched into the next digest, not sent now.
    before = last_seq(emulator)
    clock.now = local(24, 15, 1, 30)
    await post(app, clock, record("c2", "wmBuyer", local(24, 15, 1, 30), AD, room=customer))
    clock.advance(30)
    await settle(app)
    assert sent(emulator, before) == []
    clock.advance(300)
    await settle(app)
    assert {target for _, target, _ in sent(emulator, before)} == {"owner1", "yunying1"}


async def test_the_same_text_three_times_is_a_repeat_even_with_tricks(
    live: tuple[LiveApp, Clock, RunningEmulator], rules_templates: Path
) -> None:
    app, clock, _ = live
    path = rules_templates / "ads_rules.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "match: {flood: {messages: 8, seconds: 10}}",
            "match: {flood: {messages: 8, seconds: 10}, repeat: {times: 3, seconds: 600}}",
        ),
        encoding="utf-8",
    )
    await app.runtime.playbooks.reload_async()
    said = ["本周六线下沙龙报名中", "本周六 线下沙龙 报名中！", "本週六線下沙龍報名中"]
    await post(
        app,
        clock,
        *(record(f"p{n}", "wmOther", local(24, 15, n), text) for n, text in enumerate(said)),
        record("p9", "wmOther", local(24, 15, 3), "收到"),  # short replies never count
        record("p10", "wmOther", local(24, 15, 4), "收到"),
        record("p11", "wmOther", local(24, 15, 5), "收到"),
    )
    listed = await violations(app, member_id="wmOther")
    assert [(v["rule"], v["matcher"], v["msg_id"]) for v in listed] == [("flood", "repeat", "p2")]


APP_RULES = """\
name: app_rules
extends: default
applies_to: {chat_ids: [wrApp]}
copilot: {operators: [yunying1]}
touch_sequence: {enabled: false}
rules:
  min_step_seconds: 0
  ladder: [remind, warn, report, remove]
  exempt_roles: [owner]
  items:
    - name: ads
      title: 不发广告
      match: {keywords: ["低价代理"]}
"""


async def test_only_a_group_the_app_created_removes_and_an_overturn_asks_to_bring_back(
    live: tuple[LiveApp, Clock, RunningEmulator], rules_templates: Path
) -> None:
    app, clock, emulator = live
    (rules_templates / "app_rules.yaml").write_text(APP_RULES, encoding="utf-8")
    await app.runtime.playbooks.reload_async()
    response = await app.http.put(
        "/admin/groups/wrApp", headers=AUTH, json={"name": "内部群", "channel": {"type": "appchat"}}
    )
    assert response.status_code == 200
    before = last_seq(emulator)
    await post(
        app,
        clock,
        *(record(f"z{n}", "zhaoliu", local(24, 15, n), AD, room="wrApp") for n in range(4)),
    )
    clock.advance(30)
    await settle(app)
    apis = [(api, target) for api, target, _ in sent(emulator, before)]
    assert ("message/send", "zhaoliu") in apis  # remind: an app message
    assert apis.count(("appchat/send", "wrApp")) == 2  # warn, then the removal notice
    assert ("appchat/update", "wrApp") in apis
    [update] = [body for api, _, body in sent(emulator, before) if api == "appchat/update"]
    assert update["del_user_list"] == ["zhaoliu"]
    steps = [(v["step"], v["status"]) for v in await violations(app, chat_id="wrApp")]
    assert steps == [("remove", "taken"), ("report", "taken"), ("warn", "taken"),
                     ("remind", "taken")]  # fmt: skip

    # Overturning the removal: the owner is asked to bring the member back.
    removal = (await violations(app, chat_id="wrApp"))[0]
    before = last_seq(emulator)
    overturned = await app.http.post(f"/admin/violations/{removal['id']}/overturn", headers=AUTH)
    assert overturned.status_code == 200
    clock.advance(400)
    await settle(app)
    asks = [
        body["text"]["content"]
        for api, _, body in sent(emulator, before)
        if api == "message/send" and "拉回群" in body["text"]["content"]
    ]
    assert asks


async def test_a_group_first_seen_mid_batch_is_ruled_from_then_on(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    templates_dir: Path,
    emulator: RunningEmulator,
) -> None:
    """The batch memo remembers that a group is unknown, and forgets it when a join in
    the same batch creates the group: the ad after the join is ruled (default playbook)."""
    joined = MemberJoined(
        source="change_external_chat",
        chat_id="wrNew",
        occurred_at=local(24, 15),
        members=[MemberInfo(id="wmAd", name="广告哥")],
    )
    items = [
        normalize_archive(ArchiveRecord.model_validate(raw), raw)
        for raw in (record("n1", "wmAd", local(24, 14, 59), AD, room="wrNew"),)
    ]
    items.append(Incoming("change_external_chat", "join-1", "{}", joined, "member_joined", "wrNew"))
    items += [
        normalize_archive(ArchiveRecord.model_validate(raw), raw)
        for raw in (record("n2", "wmAd", local(24, 15, 1), AD, room="wrNew"),)
    ]
    await store_many(appender, items, now=local(24, 15, 2))
    emulator.state.upsert_group("wrNew", name="新群", owner="owner1", members=[])
    processor = inbox_processor(
        sessions, build_features().registry, templates_dir, [], wecom=emulator
    )
    assert await processor.run_once() == 3  # one batch
    async with sessions() as session:
        rows = (await session.execute(select(Violation.msg_id, Violation.rule))).all()
    assert rows == [("n2", "ads")]
