"""Humane welcomes: one message per batch, no @ per person, no welcome on a quick rejoin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config.playbooks import QuietHours
from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.welcome import Candidate, batch_due_at, defer_for_quiet_hours, skip_reason
from tests.helpers import (
    AUTH,
    MORNING,
    Clock,
    LiveApp,
    join_callback,
    leave_callback,
    live_webhook_group,
    sent_texts,
    settle,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
GROUP = "wrWelcomeGroup"
NAMES = {f"wmN{i}": name for i, name in enumerate(["小林", "阿珍", "大卫", "思思", "老周"])}


def candidate(**overrides: object) -> Candidate:
    values: dict[str, object] = {
        "member_id": "wm1",
        "name": "小林",
        "invitor_name": None,
        "previous_left_at": None,
        "welcomed_at": None,
    }
    values.update(overrides)
    return Candidate(**values)  # type: ignore[arg-type]


def test_skip_reason() -> None:
    assert skip_reason(candidate(), now=NOW, rejoin_suppress_days=7) is None
    recent = candidate(previous_left_at=NOW - timedelta(days=2))
    assert "rejoined" in (skip_reason(recent, now=NOW, rejoin_suppress_days=7) or "")
    long_ago = candidate(previous_left_at=NOW - timedelta(days=30))
    assert skip_reason(long_ago, now=NOW, rejoin_suppress_days=7) is None
    assert skip_reason(candidate(is_bot=True), now=NOW, rejoin_suppress_days=7)


def test_batch_due_at_waits_window_and_interval() -> None:
    assert batch_due_at(
        now=NOW, batch_window_seconds=3, last_sent_at=None, min_interval_seconds=120
    ) == NOW + timedelta(seconds=3)
    assert batch_due_at(
        now=NOW,
        batch_window_seconds=3,
        last_sent_at=NOW - timedelta(seconds=30),
        min_interval_seconds=120,
    ) == NOW + timedelta(seconds=90)
    assert batch_due_at(
        now=NOW,
        batch_window_seconds=3,
        last_sent_at=NOW - timedelta(hours=1),
        min_interval_seconds=120,
    ) == NOW + timedelta(seconds=3)


def test_quiet_hours_defer_only_when_asked() -> None:
    from datetime import time

    quiet = QuietHours(start=time(22, 30), end=time(8, 0))
    night = datetime(2026, 11, 24, 23, 0, tzinfo=SHANGHAI)
    assert defer_for_quiet_hours(night, quiet, tz=SHANGHAI, during_quiet_hours="send") == night
    deferred = defer_for_quiet_hours(night, quiet, tz=SHANGHAI, during_quiet_hours="defer")
    assert deferred == datetime(2026, 11, 25, 8, 0, tzinfo=SHANGHAI)
    day = datetime(2026, 11, 24, 12, 0, tzinfo=SHANGHAI)
    assert defer_for_quiet_hours(day, quiet, tz=SHANGHAI, during_quiet_hours="defer") == day


@pytest.fixture
def clock() -> Clock:
    return Clock(MORNING)


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, clock: Clock
) -> AsyncIterator[LiveApp]:
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="增长黑客交流群",
        members=NAMES,
    ) as app:
        yield app


async def join(live: LiveApp, *members: str) -> None:
    params, body = join_callback(
        GROUP, list(members), create_time=int(live.runtime.clock().timestamp())
    )
    assert (await live.post_callback(params, body)).text == "success"


async def test_five_joins_in_the_window_get_one_welcome_naming_all(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    for member in NAMES:  # five separate callbacks, a second apart
        await join(live, member)
        await settle(live)
        clock.advance(0.5)
    assert sent_texts(emulator) == []  # still inside the window
    clock.advance(3)
    await settle(live)
    texts = sent_texts(emulator)
    assert len(texts) == 1
    assert all(name in texts[0] for name in NAMES.values())
    body = emulator.state.sent_since(0)[0].body
    assert "mentioned_list" not in body["text"]  # nobody is @-ed


async def test_a_burst_in_one_callback_is_one_welcome(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await join(live, *NAMES)
    await settle(live)
    clock.advance(3)
    await settle(live)
    assert len(sent_texts(emulator)) == 1


async def test_joiners_during_the_interval_wait_for_the_next_welcome(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await join(live, "wmN0")
    await settle(live)
    clock.advance(3)
    await settle(live)
    assert len(sent_texts(emulator)) == 1
    clock.advance(10)
    await join(live, "wmN1")
    await settle(live)
    clock.advance(20)
    await join(live, "wmN2")
    await settle(live)
    clock.advance(20)
    await settle(live)
    assert len(sent_texts(emulator)) == 1  # 60 s have not passed since the last welcome
    clock.advance(15)
    await settle(live)
    texts = sent_texts(emulator)
    assert len(texts) == 2 and "阿珍" in texts[1] and "大卫" in texts[1]


async def test_rejoin_within_the_window_gets_no_welcome(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await join(live, "wmN0")
    await settle(live)
    clock.advance(3)
    await settle(live)
    params, body = leave_callback(GROUP, ["wmN0"])
    await live.post_callback(params, body)
    await settle(live)
    clock.advance(3600)
    await join(live, "wmN0")
    await settle(live)
    clock.advance(300)
    await settle(live)
    assert len(sent_texts(emulator)) == 1


async def test_newcomer_who_left_before_the_batch_is_not_named(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await join(live, "wmN0", "wmN1")
    await settle(live)
    params, body = leave_callback(GROUP, ["wmN1"])
    await live.post_callback(params, body)
    await settle(live)
    clock.advance(3)
    await settle(live)
    texts = sent_texts(emulator)
    assert len(texts) == 1 and "小林" in texts[0] and "阿珍" not in texts[0]


async def test_names_are_capped(live: LiveApp, emulator: RunningEmulator, clock: Clock) -> None:
    crowd = [{"userid": f"wmC{i}", "name": f"新朋友{i}"} for i in range(12)]
    emulator.state.add_members(GROUP, crowd)
    await join(live, *[m["userid"] for m in crowd])
    await settle(live)
    clock.advance(3)
    await settle(live)
    (text,) = sent_texts(emulator)
    assert "新朋友7" in text and "新朋友8" not in text and "等 12 位" in text


async def test_invitor_is_recorded(live: LiveApp, emulator: RunningEmulator, clock: Clock) -> None:
    from sqlalchemy import select

    from storage.models import Membership

    emulator.state.add_members(
        GROUP, [{"userid": "wmInvited", "name": "被邀请的人", "invitor": "staff9"}]
    )
    await join(live, "wmInvited")
    await settle(live)
    async with live.runtime.sessions() as session:
        row = (
            await session.execute(select(Membership).where(Membership.member_id == "wmInvited"))
        ).scalar_one()
    assert row.invitor == "staff9" and row.name == "被邀请的人"
    listed = await live.http.get(
        f"/admin/groups/{GROUP}/members", headers=AUTH, params={"invited_by": "staff9"}
    )
    assert [m["member_id"] for m in listed.json()] == ["wmInvited"]
    everyone = (await live.http.get(f"/admin/groups/{GROUP}/members", headers=AUTH)).json()
    assert {m["member_id"] for m in everyone} == {"wmInvited"}
    missing = await live.http.get("/admin/groups/nope/members", headers=AUTH)
    assert missing.status_code == 404


async def test_customer_group_gets_no_bot_post_but_the_template_syncs(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await live.http.put(
        f"/admin/groups/{GROUP}",
        headers=AUTH,
        json={"channel": {"type": "customer_group", "sender": "owner1"}},
    )
    await join(live, "wmN0")
    await settle(live)
    clock.advance(3)
    await settle(live)
    assert sent_texts(emulator) == []
    # The service's own template job created it (due work: a customer group without
    # a synced template); asking again finds nothing to do.
    (template,) = emulator.state.welcome_templates.values()
    assert "%NICKNAME%" in template["text"]["content"]
    assert await live.runtime.sync_templates() == {}  # unchanged: nothing to do
    listed = (await live.http.get("/admin/playbooks", headers=AUTH)).json()
    default = next(p for p in listed["playbooks"] if p["name"] == "default")
    assert default["welcome_template_id"] and GROUP in default["groups"]


async def test_welcome_preview(live: LiveApp) -> None:
    response = await live.http.post(
        f"/admin/groups/{GROUP}/welcome/preview",
        headers=AUTH,
        json={"names": ["甲", "乙", "丙"]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["playbook"] == "default" and body["posts_to_group"] is True
    assert "甲、乙、丙" in body["text"] and "增长黑客交流群" in body["text"]
    missing = await live.http.post(
        "/admin/groups/nope/welcome/preview", headers=AUTH, json={"names": ["甲"]}
    )
    assert missing.status_code == 404
    empty = await live.http.post(
        f"/admin/groups/{GROUP}/welcome/preview", headers=AUTH, json={"names": []}
    )
    assert empty.status_code == 422


async def test_an_admins_none_channel_is_kept(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await live.http.put(f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "none"}})
    await join(live, "wmN0")
    await settle(live)
    got = (await live.http.get(f"/admin/groups/{GROUP}", headers=AUTH)).json()
    assert got["channel"] == {"type": "none"}
    clock.advance(3)
    await settle(live)
    assert sent_texts(emulator) == []


async def test_customer_group_first_seen_in_a_callback_follows_its_owner(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    from bot.sandbox.simulate import change_external_chat_xml, sign_xml
    from tests.helpers import CORP_ID, crypto

    joined = int(clock.now.timestamp())
    emulator.state.upsert_group(
        "wrCustomer",
        name="客户群",
        owner="owner-a",
        members=[{"userid": "wmC1", "name": "客户一", "join_time": joined}],
    )
    params, body = join_callback("wrCustomer", ["wmC1"], create_time=int(clock.now.timestamp()))
    await live.post_callback(params, body)
    await settle(live)
    group = (await live.http.get("/admin/groups/wrCustomer", headers=AUTH)).json()
    assert group["channel"] == {"type": "customer_group"} and group["owner"] == "owner-a"
    emulator.state.upsert_group("wrCustomer", name="客户群", owner="owner-b")
    changed = sign_xml(
        crypto(),
        change_external_chat_xml(
            corp_id=CORP_ID, chat_id="wrCustomer", update_detail="change_owner"
        ),
    )
    await live.post_callback(changed.params, changed.body)
    await settle(live)
    day_later = clock.now + timedelta(days=1, hours=12)
    await settle(live, at=day_later)
    tasks = [r for r in emulator.state.sent_since(0) if r.api == "add_msg_template"]
    assert tasks and {r.body["sender"] for r in tasks} == {"owner-b"}


async def test_a_join_for_a_member_already_present_is_a_rejoin_not_a_second_welcome(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    """WeCom dropped the leave (or the sandbox restarted): the member is still present
    in our books when their next join arrives; the rejoin rule decides, no new welcome."""
    await join(live, "wmN0")
    await settle(live)
    clock.advance(3)
    await settle(live)
    assert len(sent_texts(emulator)) == 1
    later = int(clock.now.timestamp()) + 120
    emulator.state.remove_member(GROUP, "wmN0")
    emulator.state.add_members(GROUP, [{"userid": "wmN0", "name": "小林", "join_time": later}])
    params, body = join_callback(GROUP, ["wmN0"], create_time=later)
    assert (await live.post_callback(params, body)).text == "success"
    clock.advance(180)
    await settle(live)
    clock.advance(120)
    await settle(live)
    assert len(sent_texts(emulator)) == 1
    member = (await live.http.get(f"/admin/groups/{GROUP}/members", headers=AUTH)).json()
    assert [m["member_id"] for m in member] == ["wmN0"]


async def test_a_member_without_a_name_is_welcomed_with_a_neutral_word(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    """A newcomer missing from groupchat/get must never be greeted as `wmGhost…`."""
    await join(live, "wmGhost42")  # not in the emulator's member list: no name known
    await settle(live)
    clock.advance(3)
    await settle(live)
    (text,) = sent_texts(emulator)
    assert "wmGhost42" not in text
    assert "新朋友" in text


async def test_a_new_customer_group_gets_the_template_without_an_edit_or_restart(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await live.runtime.tick()  # the template job runs: no customer group yet, nothing to do
    assert emulator.state.welcome_templates == {}
    await live.http.put(
        f"/admin/groups/{GROUP}",
        headers=AUTH,
        json={"channel": {"type": "customer_group", "sender": "owner1"}},
    )
    clock.advance(31)  # the job's next round; no playbook edit, no restart
    await live.runtime.tick()
    (template,) = emulator.state.welcome_templates.values()
    assert "%NICKNAME%" in template["text"]["content"]
    clock.advance(31)
    await live.runtime.tick()
    assert len(emulator.state.welcome_templates) == 1  # in sync: nothing more created
