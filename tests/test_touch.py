"""The 7-day touch sequence: due times, exactly-once steps, skips with reasons, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from bot.config.playbooks import QuietHours, TouchStep
from bot.config.settings import Settings
from bot.sandbox.emulator.server import RunningEmulator
from bot.sandbox.simulate import app_text_xml, sign_xml
from handlers.features.touch import StepState, materialize, skip_reason, step_due_at
from storage.models import Enrollment, InboxItem, Membership, OutboxItem
from storage.models import TouchStep as StepRow
from tests.helpers import (
    AUTH,
    CORP_ID,
    MORNING,
    Clock,
    LiveApp,
    configured_settings,
    crypto,
    join_callback,
    leave_callback,
    live_app,
    settle,
)

SH = ZoneInfo("Asia/Shanghai")
QUIET = QuietHours(start=time(22, 30), end=time(8, 0))
GROUP = "wrTouchGroup"


def spec(key: str, day: int, at: str) -> TouchStep:
    return TouchStep(key=key, day=day, at=at, channel="private", text="hi")


def test_step_due_at_in_local_days() -> None:
    joined = datetime(2026, 11, 24, 10, 0, tzinfo=SH)
    assert step_due_at(joined, 0, time(20, 0), tz=SH, quiet=QUIET) == joined.replace(hour=20)
    assert step_due_at(joined, 3, time(9, 0), tz=SH, quiet=QUIET) == datetime(
        2026, 11, 27, 9, 0, tzinfo=SH
    )
    # A day-0 step whose time already passed goes at the join, not a day late.
    late = datetime(2026, 11, 24, 21, 0, tzinfo=SH)
    assert step_due_at(late, 0, time(20, 0), tz=SH, quiet=QUIET) == late
    # …unless that is inside quiet hours: then at the end of them.
    night = datetime(2026, 11, 24, 23, 40, tzinfo=SH)
    assert step_due_at(night, 0, time(20, 0), tz=SH, quiet=QUIET) == datetime(
        2026, 11, 25, 8, 0, tzinfo=SH
    )
    # The day is the local day even when UTC is still on the previous date.
    utc_evening = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 01:00 on the 24th in Shanghai
    assert step_due_at(utc_evening, 1, time(12, 30), tz=SH, quiet=QUIET).date() == date(
        2026, 11, 25
    )


def test_materialize_keeps_playbook_order() -> None:
    night = datetime(2026, 11, 24, 23, 40, tzinfo=SH)
    planned = materialize(
        night,
        [spec("a", 0, "20:00"), spec("b", 1, "07:59"), spec("c", 1, "12:00")],
        tz=SH,
        quiet=None,
    )
    dues = [due for _, _, due in planned]
    assert [s.key for s, _, _ in planned] == ["a", "b", "c"]
    assert dues == sorted(dues)


def test_skip_reason_order() -> None:
    ok = StepState("active", False, False, True, False)
    assert skip_reason(ok) is None
    assert skip_reason(StepState("cancelled", False, False, True, False)) == "enrollment cancelled"
    assert skip_reason(StepState("active", True, False, True, False)) == "member left the group"
    assert skip_reason(StepState("active", False, True, True, False)) == "member opted out"
    assert "no longer" in (skip_reason(StepState("active", False, False, False, False)) or "")
    assert skip_reason(StepState("active", True, False, True, True)) == "group dismissed"


def default_steps(templates_dir: Path) -> list[dict[str, object]]:
    data = yaml.safe_load((templates_dir / "default.yaml").read_text(encoding="utf-8"))
    return list(data["touch_sequence"]["steps"])


@pytest.fixture
def clock(emulator: RunningEmulator) -> Clock:
    """A fixed morning for the service and for WeCom's join times: the sequence's
    day-0 step (20:00) is ahead of the join whenever the suite runs."""
    fixed = Clock(MORNING)
    emulator.state.wall_clock = lambda: fixed.now.timestamp()
    return fixed


@pytest.fixture
def settings(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, clock: Clock
) -> Settings:
    # `clock` first: the members below get their join times from it.
    emulator.state.upsert_group(
        GROUP,
        name="运营研习社",
        owner="owner1",
        members=[
            {"userid": "wmSilent", "name": "安静的小王"},
            {"userid": "wmTalker", "name": "话痨小李"},
            {"userid": "zhangsan", "name": "张三", "type": 1},
        ],
    )
    return configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )


@pytest.fixture
async def live(settings: Settings, clock: Clock) -> AsyncIterator[LiveApp]:
    async with live_app(settings, background=False, clock=clock) as app:
        response = await app.http.put(
            f"/admin/groups/{GROUP}",
            headers=AUTH,
            json={"name": "运营研习社", "channel": {"type": "webhook", "key": "tk"}},
        )
        assert response.status_code == 200
        yield app


async def joined_local_date(live: LiveApp, member: str) -> date:
    async with live.runtime.sessions() as session:
        row = (
            await session.execute(select(Membership).where(Membership.member_id == member))
        ).scalar_one()
    return row.joined_at.astimezone(SH).date()


def evening(day: date, offset: int) -> datetime:
    return datetime.combine(day + timedelta(days=offset), time(21, 0), tzinfo=SH)


def touches(emulator: RunningEmulator, member: str) -> list[str]:
    found = []
    for record in emulator.state.sent_since(0):
        body = record.body
        to_customer = record.api == "add_msg_template" and body.get("external_userid") == [member]
        to_member = record.api == "message/send" and body.get("touser") == member
        if to_customer or to_member:
            found.append(body["text"]["content"])
    return found


async def join(live: LiveApp, *members: str) -> None:
    params, body = join_callback(GROUP, list(members))
    assert (await live.post_callback(params, body)).text == "success"
    await settle(live)


async def test_eight_days_deliver_every_step_once_in_order(
    live: LiveApp, emulator: RunningEmulator, templates_dir: Path
) -> None:
    await join(live, "wmSilent")
    day0 = await joined_local_date(live, "wmSilent")
    for offset in range(9):
        await settle(live, at=evening(day0, offset))
    for offset in range(9):  # ticking the same days again sends nothing more
        await settle(live, at=evening(day0, offset))
    received = touches(emulator, "wmSilent")
    steps = default_steps(templates_dir)
    assert len(received) == len(steps)
    for text, step in zip(received, steps, strict=True):
        first_line = str(step["text"]).splitlines()[0].replace("{{ member.name }}", "安静的小王")
        assert text.startswith(first_line.split("{{")[0])
    for record in emulator.state.sent_since(0):
        if record.api == "add_msg_template":
            assert record.body["sender"] == "owner1" and record.body["chat_type"] == "single"


async def test_member_who_left_on_day_two_gets_nothing_more(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    await join(live, "wmSilent")
    day0 = await joined_local_date(live, "wmSilent")
    await settle(live, at=evening(day0, 0))
    await settle(live, at=evening(day0, 1))
    before = len(touches(emulator, "wmSilent"))
    assert before >= 1
    params, body = leave_callback(GROUP, ["wmSilent"])
    await live.post_callback(params, body)
    await settle(live)
    for offset in range(2, 9):
        await settle(live, at=evening(day0, offset))
    assert len(touches(emulator, "wmSilent")) == before
    history = (await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)).json()
    (enrollment,) = history
    assert enrollment["status"] == "stopped"
    skipped = [s for s in enrollment["steps"] if s["status"] == "skipped"]
    assert skipped and all(s["reason"] == "member left the group" for s in skipped)
    assert len(skipped) + before == len(enrollment["steps"])


async def test_restart_between_ticks_doubles_nothing(
    clock: Clock, settings: Settings, emulator: RunningEmulator, templates_dir: Path
) -> None:
    async with live_app(settings, background=False, clock=clock) as first:
        await first.http.put(
            f"/admin/groups/{GROUP}",
            headers=AUTH,
            json={"name": "运营研习社", "channel": {"type": "webhook", "key": "tk"}},
        )
        await join(first, "wmSilent")
        day0 = await joined_local_date(first, "wmSilent")
    for offset in range(9):
        async with live_app(settings, background=False, clock=clock) as app:
            await settle(app, at=evening(day0, offset))
            await settle(app, at=evening(day0, offset))
    assert len(touches(emulator, "wmSilent")) == len(default_steps(templates_dir))


async def test_conditions_skip_steps_for_members_who_spoke(
    live: LiveApp, emulator: RunningEmulator, templates_dir: Path
) -> None:
    await join(live, "wmTalker")
    archive = [
        {
            "msgid": "t-1",
            "action": "send",
            "from": "wmTalker",
            "roomid": GROUP,
            "msgtime": 1,
            "msgtype": "text",
            "text": {"content": "大家好，我是做 SaaS 增长的"},
        }
    ]
    assert (await live.http.post("/wecom/archive", json=archive, headers=AUTH)).status_code == 200
    await settle(live)
    day0 = await joined_local_date(live, "wmTalker")
    for offset in range(9):
        await settle(live, at=evening(day0, offset))
    conditional = [s for s in default_steps(templates_dir) if s.get("when")]
    assert conditional, "the default playbook is expected to have conditional steps"
    received = touches(emulator, "wmTalker")
    assert len(received) == len(default_steps(templates_dir)) - len(conditional)
    (enrollment,) = (
        await live.http.get("/admin/members/wmTalker/enrollments", headers=AUTH)
    ).json()
    reasons = {s["step_key"]: s["reason"] for s in enrollment["steps"] if s["status"] == "skipped"}
    assert set(reasons) == {str(s["key"]) for s in conditional}
    assert all(r.startswith("condition false") for r in reasons.values())
    assert enrollment["status"] == "completed"


async def test_internal_member_is_touched_by_app_message(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    await join(live, "zhangsan")
    day0 = await joined_local_date(live, "zhangsan")
    await settle(live, at=evening(day0, 1))
    sends = [r for r in emulator.state.sent_since(0) if r.api == "message/send"]
    assert sends and sends[0].body["touser"] == "zhangsan"
    assert sends[0].body["agentid"] == 1000002


async def test_private_opt_out_cancels_the_sequence(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    await join(live, "wmSilent")
    day0 = await joined_local_date(live, "wmSilent")
    await settle(live, at=evening(day0, 0))
    before = len(touches(emulator, "wmSilent"))
    signed = sign_xml(
        crypto(),
        app_text_xml(
            corp_id=CORP_ID, sender="wmSilent", content="退订", msg_id=77, agent_id=1000002
        ),
    )
    assert (await live.post_callback(signed.params, signed.body)).text == "success"
    await settle(live)
    for offset in range(1, 9):
        await settle(live, at=evening(day0, offset))
    assert len(touches(emulator, "wmSilent")) == before
    (enrollment,) = (
        await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)
    ).json()
    assert enrollment["status"] == "cancelled"
    # Opted out members are not enrolled again when they rejoin later.
    params, body = leave_callback(GROUP, ["wmSilent"])
    await live.post_callback(params, body)
    await join(live, "wmSilent")
    assert (
        len((await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)).json()) == 1
    )


async def test_admin_due_list_and_cancel(live: LiveApp, emulator: RunningEmulator) -> None:
    await join(live, "wmSilent")
    due = (await live.http.get("/admin/touch/due", headers=AUTH, params={"hours": 24 * 9})).json()
    assert {d["member_id"] for d in due} == {"wmSilent"} and len(due) >= 2
    assert [d["due_at"] for d in due] == sorted(d["due_at"] for d in due)
    enrollment_id = due[0]["enrollment_id"]
    cancelled = await live.http.post(f"/admin/enrollments/{enrollment_id}/cancel", headers=AUTH)
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert all(s["status"] == "skipped" for s in body["steps"])
    again = await live.http.post(f"/admin/enrollments/{enrollment_id}/cancel", headers=AUTH)
    assert again.status_code == 409
    assert (
        await live.http.post("/admin/enrollments/999999/cancel", headers=AUTH)
    ).status_code == 404
    assert (await live.http.get("/admin/touch/due", headers=AUTH)).json() == []
    day0 = await joined_local_date(live, "wmSilent")
    for offset in range(9):
        await settle(live, at=evening(day0, offset))
    assert touches(emulator, "wmSilent") == []


async def test_two_replicas_ticking_together_send_each_step_once(
    clock: Clock, settings: Settings, emulator: RunningEmulator, templates_dir: Path
) -> None:
    import asyncio

    async with (
        live_app(settings, background=False, clock=clock) as one,
        live_app(settings, background=False, clock=clock) as two,
    ):
        await one.http.put(
            f"/admin/groups/{GROUP}",
            headers=AUTH,
            json={"name": "运营研习社", "channel": {"type": "webhook", "key": "tk"}},
        )
        await join(one, "wmSilent")
        day0 = await joined_local_date(one, "wmSilent")
        for offset in range(9):
            at = evening(day0, offset)
            await asyncio.gather(one.runtime.tick(at), two.runtime.tick(at))
            await asyncio.gather(one.runtime.dispatcher.drain(), two.runtime.dispatcher.drain())
    assert len(touches(emulator, "wmSilent")) == len(default_steps(templates_dir))


async def test_a_step_due_in_quiet_hours_waits_for_morning(
    live: LiveApp, emulator: RunningEmulator, templates_dir: Path
) -> None:
    await join(live, "wmSilent")
    day0 = await joined_local_date(live, "wmSilent")
    await settle(live, at=evening(day0, 0))
    sent_before = len(touches(emulator, "wmSilent"))
    # Day 7's 20:00 step, first looked at by a tick at 23:30 (inside 22:30–08:00).
    late = datetime.combine(day0 + timedelta(days=7), time(23, 30), tzinfo=SH)
    await settle(live, at=late)
    after_late = len(touches(emulator, "wmSilent"))
    history = (await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)).json()
    final = next(s for s in history[0]["steps"] if s["step_key"] == "d7-feedback")
    assert final["status"] == "pending"
    assert datetime.fromisoformat(final["due_at"]).astimezone(SH).time() == time(8, 0)
    assert after_late == sent_before  # nothing at all goes out at 23:30
    morning = datetime.combine(day0 + timedelta(days=8), time(8, 30), tzinfo=SH)
    await settle(live, at=morning)
    # Only d7, held back by quiet hours, goes in the morning. d1 and d3 were days late
    # when first looked at (no tick ran): skipped as overdue, never a burst of three.
    received = touches(emulator, "wmSilent")
    assert len(received) == sent_before + 1
    assert received[-1].startswith("安静的小王，加入「运营研习社」一周了")
    history = (await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)).json()
    reasons = {s["step_key"]: s["reason"] for s in history[0]["steps"]}
    assert reasons["d1-featured"] == "overdue" and reasons["d3-intro"] == "overdue"


async def test_a_tick_three_days_ahead_sends_one_step_and_skips_the_overdue(
    live: LiveApp, emulator: RunningEmulator, templates_dir: Path
) -> None:
    """After downtime every past step is due at once; only the one still on time goes,
    the others are recorded as overdue (the playbook's 每天最多一步, and no burst)."""
    await join(live, "wmSilent")
    day0 = await joined_local_date(live, "wmSilent")
    await settle(live, at=evening(day0, 3))
    received = touches(emulator, "wmSilent")
    assert len(received) == 1
    (enrollment,) = (
        await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)
    ).json()
    by_key = {s["step_key"]: s for s in enrollment["steps"]}
    assert by_key["d0-hello"]["status"] == "skipped" and by_key["d0-hello"]["reason"] == "overdue"
    assert by_key["d1-featured"]["reason"] == "overdue"
    assert by_key["d3-intro"]["status"] == "sent"
    assert by_key["d7-feedback"]["status"] == "pending"
    assert enrollment["status"] == "active"
    await settle(live, at=evening(day0, 7))
    (enrollment,) = (
        await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)
    ).json()
    assert len(touches(emulator, "wmSilent")) == 2
    assert enrollment["status"] == "completed"


async def test_catching_up_within_the_grace_sends_one_step_a_day(
    clock: Clock, settings: Settings, emulator: RunningEmulator, templates_dir: Path
) -> None:
    """A playbook that forgives lateness still never sends two steps on one day."""
    path = templates_dir / "default.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["touch_sequence"]["late_grace_hours"] = 720
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    async with live_app(settings, background=False, clock=clock) as live:
        await live.http.put(
            f"/admin/groups/{GROUP}",
            headers=AUTH,
            json={"name": "运营研习社", "channel": {"type": "webhook", "key": "tk"}},
        )
        await join(live, "wmSilent")
        day0 = await joined_local_date(live, "wmSilent")
        await settle(live, at=evening(day0, 9))
        await settle(live, at=evening(day0, 9) + timedelta(hours=1))
        assert len(touches(emulator, "wmSilent")) == 1
        for offset in (10, 11, 12):
            await settle(live, at=evening(day0, offset))
        assert len(touches(emulator, "wmSilent")) == len(default_steps(templates_dir))
        (enrollment,) = (
            await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)
        ).json()
        sent_days = [s["done_at"] for s in enrollment["steps"] if s["status"] == "sent"]
        assert len(sent_days) == 4


def test_a_join_at_2340_never_gets_two_steps_the_next_morning() -> None:
    night = datetime(2026, 11, 24, 23, 40, tzinfo=SH)
    planned = materialize(
        night,
        [spec("d0", 0, "20:00"), spec("d1", 1, "12:30"), spec("d3", 3, "20:00")],
        tz=SH,
        quiet=QUIET,
    )
    days = [due.astimezone(SH).date() for _, _, due in planned]
    assert planned[0][2] == datetime(2026, 11, 25, 8, 0, tzinfo=SH)  # after quiet hours
    assert planned[1][2] == datetime(2026, 11, 26, 12, 30, tzinfo=SH)  # the day after
    assert len(set(days)) == len(days)
    # A playbook may allow two a day; then both go on the first morning.
    two = materialize(
        night, [spec("d0", 0, "20:00"), spec("d1", 1, "12:30")], tz=SH, quiet=QUIET, max_per_day=2
    )
    assert {due.astimezone(SH).date() for _, _, due in two} == {date(2026, 11, 25)}


async def test_a_template_that_fails_on_real_data_fails_alone(
    clock: Clock, settings: Settings, emulator: RunningEmulator, templates_dir: Path
) -> None:
    """A text that passes `templates check` but breaks for one member is recorded as
    failed; that member's other steps and everyone else's carry on."""
    default = templates_dir / "default.yaml"
    text = default.read_text(encoding="utf-8")
    # Fine for the checker's sample name (2 characters), a ZeroDivisionError for 3.
    broken = text.replace(
        "{{ member.name }}，来「{{ group.name }}」三天了",
        "{{ member.name }}{{ '' if 100 // (member.name|length - 3) else '' }}"
        "，来「{{ group.name }}」三天了",
    )
    assert broken != text
    default.write_text(broken, encoding="utf-8")
    emulator.state.add_members(GROUP, [{"userid": "wmThree", "name": "阿三哥"}])
    async with live_app(settings, background=False, clock=clock) as live:
        await live.http.put(
            f"/admin/groups/{GROUP}",
            headers=AUTH,
            json={"name": "运营研习社", "channel": {"type": "webhook", "key": "tk"}},
        )
        await join(live, "wmThree", "wmSilent")
        day0 = await joined_local_date(live, "wmSilent")
        for offset in range(9):
            await settle(live, at=evening(day0, offset))
        history = (await live.http.get("/admin/members/wmThree/enrollments", headers=AUTH)).json()
    assert history[0]["status"] == "completed"  # a failed step never leaves it active
    statuses = {s["step_key"]: (s["status"], s["reason"]) for s in history[0]["steps"]}
    assert statuses["d3-intro"][0] == "failed"
    assert "ZeroDivisionError" in statuses["d3-intro"][1]
    assert statuses["d7-feedback"][0] == "sent"
    assert len(touches(emulator, "wmThree")) == len(default_steps(templates_dir)) - 1
    assert len(touches(emulator, "wmSilent")) == len(default_steps(templates_dir))


async def test_a_join_processed_after_the_leave_changes_nothing(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    from bot.sandbox.simulate import change_external_chat_xml

    now = int(live.runtime.clock().timestamp())
    old_join = sign_xml(
        crypto(),
        change_external_chat_xml(
            corp_id=CORP_ID,
            chat_id=GROUP,
            update_detail="add_member",
            members=["wmSilent"],
            create_time=now - 60,
        ),
    )
    emulator.state.remove_member(GROUP, "wmSilent")  # WeCom already shows them gone
    leave = sign_xml(
        crypto(),
        change_external_chat_xml(
            corp_id=CORP_ID,
            chat_id=GROUP,
            update_detail="del_member",
            members=["wmSilent"],
            create_time=now - 30,
        ),
    )
    await live.post_callback(leave.params, leave.body)
    await settle(live)
    await live.post_callback(old_join.params, old_join.body)  # retried late by WeCom
    await settle(live)
    assert (await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)).json() == []
    members = (await live.http.get(f"/admin/groups/{GROUP}/members", headers=AUTH)).json()
    assert "wmSilent" not in {m["member_id"] for m in members}


async def queued_touches(live: LiveApp, member: str) -> list[OutboxItem]:
    async with live.runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxItem).where(OutboxItem.member_id == member, OutboxItem.origin == "touch")
        )
        return list(rows.scalars())


async def test_a_stuck_active_enrollment_never_fails_a_join(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    """An enrollment left `active` with nothing to send (a failed last step before the
    fix, two replicas finishing at once) must not roll back the next join."""
    await join(live, "wmSilent")
    async with live.runtime.sessions() as session, session.begin():
        (enrollment,) = (await session.execute(select(Enrollment))).scalars().all()
        enrollment.enrolled_at = enrollment.enrolled_at - timedelta(days=120)
        for step in (await session.execute(select(StepRow))).scalars():
            step.status = "sent"
    left = int(live.runtime.clock().timestamp()) + 1
    params, body = leave_callback(GROUP, ["wmSilent"], create_time=left)
    await live.post_callback(params, body)
    await settle(live)
    async with live.runtime.sessions() as session, session.begin():
        # The leave finds nothing pending; force the stuck state it must survive.
        (enrollment,) = (await session.execute(select(Enrollment))).scalars().all()
        enrollment.status = "active"
    later = left + 5  # after the leave, not in its second
    emulator.state.remove_member(GROUP, "wmSilent")
    emulator.state.add_members(
        GROUP, [{"userid": "wmSilent", "name": "安静的小王", "join_time": later}]
    )
    params, body = join_callback(GROUP, ["wmSilent"], create_time=later)
    assert (await live.post_callback(params, body)).text == "success"
    await settle(live)
    async with live.runtime.sessions() as session:
        failed = (
            (await session.execute(select(InboxItem).where(InboxItem.status != "done")))
            .scalars()
            .all()
        )
        enrollments = (
            (await session.execute(select(Enrollment).order_by(Enrollment.id))).scalars().all()
        )
    assert failed == []
    assert [e.status for e in enrollments] == ["completed", "active"]


async def test_leaving_cancels_touches_already_queued(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    await join(live, "wmSilent")
    day0 = await joined_local_date(live, "wmSilent")
    await live.runtime.tick(evening(day0, 0))  # queued, not yet sent (a rate window, a retry)
    (queued,) = await queued_touches(live, "wmSilent")
    assert queued.status == "pending"
    params, body = leave_callback(GROUP, ["wmSilent"])
    await live.post_callback(params, body)
    await settle(live)
    (cancelled,) = await queued_touches(live, "wmSilent")
    assert cancelled.status == "cancelled" and cancelled.last_error == "member left the group"
    assert touches(emulator, "wmSilent") == []
    listed = (
        await live.http.get("/admin/outbox", headers=AUTH, params={"status": "cancelled"})
    ).json()
    assert [(r["id"], r["last_error"]) for r in listed] == [(cancelled.id, "member left the group")]


async def test_opting_out_in_the_group_cancels_touches_already_queued(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    await join(live, "wmSilent")
    day0 = await joined_local_date(live, "wmSilent")
    await live.runtime.tick(evening(day0, 0))
    archive = [
        {
            "msgid": "optout-1",
            "action": "send",
            "from": "wmSilent",
            "roomid": GROUP,
            "msgtime": 1,
            "msgtype": "text",
            "text": {"content": "退订"},
        }
    ]
    assert (await live.http.post("/wecom/archive", json=archive, headers=AUTH)).status_code == 200
    await settle(live)
    (row,) = await queued_touches(live, "wmSilent")
    assert row.status == "cancelled" and row.last_error == "member opted out"
    assert touches(emulator, "wmSilent") == []


async def test_the_dispatcher_asks_before_sending(live: LiveApp, emulator: RunningEmulator) -> None:
    """A row the leave could not cancel (it was being claimed) is checked at send time."""
    await join(live, "wmSilent")
    day0 = await joined_local_date(live, "wmSilent")
    await live.runtime.tick(evening(day0, 0))
    async with live.runtime.sessions() as session, session.begin():
        membership = (
            await session.execute(select(Membership).where(Membership.member_id == "wmSilent"))
        ).scalar_one()
        membership.left_at = live.runtime.clock()
    await live.runtime.dispatcher.drain()
    (row,) = await queued_touches(live, "wmSilent")
    assert row.status == "cancelled" and row.last_error == "member left the group"
    assert touches(emulator, "wmSilent") == []


async def test_two_replicas_finishing_the_last_steps_at_once_complete_the_enrollment(
    clock: Clock, settings: Settings, emulator: RunningEmulator, templates_dir: Path
) -> None:
    """Each replica takes one of the last two steps; whoever finishes last must see the
    other's step done (completion is decided under the enrollment's lock)."""
    import asyncio

    from scheduler.engine import DueContext, DueEngine

    path = templates_dir / "default.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["touch_sequence"]["max_steps_per_day"] = 2
    data["touch_sequence"]["steps"] = [
        {"key": "a", "day": 1, "at": "10:00", "channel": "private", "text": "第一条"},
        {"key": "b", "day": 1, "at": "10:00", "channel": "private", "text": "第二条"},
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    async with live_app(settings, background=False, clock=clock) as live:
        await live.http.put(
            f"/admin/groups/{GROUP}",
            headers=AUTH,
            json={"name": "运营研习社", "channel": {"type": "webhook", "key": "tk"}},
        )
        await join(live, "wmSilent")
        day0 = await joined_local_date(live, "wmSilent")
        at = datetime.combine(day0 + timedelta(days=1), time(10, 5), tzinfo=SH)
        kinds = live.runtime.engine_items.kinds
        replicas = [DueEngine(kinds, batch_size=1), DueEngine(kinds, batch_size=1)]
        ctx = DueContext(
            at=at, now=live.runtime.clock(), tz=SH, playbooks=live.runtime.playbook_set
        )
        for _ in range(3):  # a step one replica found busy goes at the next tick
            await asyncio.gather(*(r.run(live.runtime.sessions, ctx) for r in replicas))
        await live.runtime.dispatcher.drain()
        (enrollment,) = (
            await live.http.get("/admin/members/wmSilent/enrollments", headers=AUTH)
        ).json()
    assert sorted(touches(emulator, "wmSilent")) == ["第一条", "第二条"]
    assert [s["status"] for s in enrollment["steps"]] == ["sent", "sent"]
    assert enrollment["status"] == "completed"
