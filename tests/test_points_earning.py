"""Points earned from invites, daily check-ins and finishing the first week (issue 9):
pure decisions, playbook mistakes at their line, and the live service through
callbacks, archive records and touch-step ticks on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.config.playbooks.points_section import (
    CheckinPoints,
    CheckinWindow,
    InvitePoints,
    PointsSection,
)
from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.points.checkin import (
    Earning,
    checkin_day,
    checkin_earnings,
    is_checkin,
    streak_ending,
)
from handlers.features.points.first_week import Completion, completion_points
from handlers.features.points.invite import (
    EarnedInvite,
    Join,
    invite_points,
    points_taken_back,
)
from storage.models import OutboxItem
from tests.helpers import (
    AUTH,
    MORNING,
    Clock,
    LiveApp,
    archive_text,
    join_callback,
    leave_callback,
    live_webhook_group,
    post_archive,
    settle,
)
from tests.helpers import points_of as group_points_of
from tests.test_playbooks import DEFAULT, issues, write

SH = ZoneInfo("Asia/Shanghai")
GROUP = "wrEarn"
T0 = MORNING  # 10:00 in Shanghai
DAY0 = T0.astimezone(SH).date()

# --- invites: pure ------------------------------------------------------------------

INVITE = InvitePoints(points=5, stay_days=7)


def join(**overrides: Any) -> Join:
    values: dict[str, Any] = {
        "invitee": "wmNew",
        "inviter": "wmOld",
        "inviter_is_staff": False,
        "still_present": True,
        "earned_before": False,
    }
    values.update(overrides)
    return Join(**values)


def test_an_invite_earns_once_and_only_from_a_member() -> None:
    assert invite_points(join(), INVITE) == (5, "invite")
    refused = {
        "no inviter known": join(inviter=None),
        "joined on their own": join(inviter="wmNew"),
        "robots earn and bring nothing": join(invitee="wbBot"),
        "staff invites are counted by the growth report, not points": join(inviter_is_staff=True),
        "left again before the join was handled": join(still_present=False),
        "this member already earned someone invite points here": join(earned_before=True),
    }
    for why, case in refused.items():
        assert invite_points(case, INVITE) == (0, why)
    assert invite_points(join(inviter="wbBot"), INVITE)[0] == 0
    assert invite_points(join(), InvitePoints(points=0, stay_days=7))[0] == 0


def test_an_early_leave_takes_the_points_back_once() -> None:
    earned = EarnedInvite("wmOld", 5, T0, taken_back=False)
    assert points_taken_back(earned, T0 + timedelta(days=6, hours=23), INVITE) == 5
    assert points_taken_back(earned, T0 + timedelta(days=7), INVITE) == 0
    taken = EarnedInvite("wmOld", 5, T0, taken_back=True)
    assert points_taken_back(taken, T0 + timedelta(days=1), INVITE) == 0
    assert points_taken_back(None, T0 + timedelta(days=1), INVITE) == 0
    # stay_days 0: an invite is never taken back.
    assert points_taken_back(earned, T0, InvitePoints(points=5, stay_days=0)) == 0


# --- check-in: pure -----------------------------------------------------------------

CHECKIN = CheckinPoints(enabled=True, points=2, streak_bonus={7: 10, 21: 30})


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=SH)


def test_the_window_and_the_day_a_check_in_counts_for() -> None:
    window = CheckinWindow.model_validate({"start": "06:00", "end": "10:00"})
    assert checkin_day(local(DAY0, 6), window) == DAY0
    assert checkin_day(local(DAY0, 9, 59), window) == DAY0
    assert checkin_day(local(DAY0, 10), window) is None
    assert checkin_day(local(DAY0, 5, 59), window) is None
    night = CheckinWindow.model_validate({"start": "22:00", "end": "02:00"})
    assert checkin_day(local(DAY0, 23), night) == DAY0
    assert checkin_day(local(DAY0 + timedelta(days=1), 1, 30), night) == DAY0  # still its night
    assert checkin_day(local(DAY0, 12), night) is None


def test_check_in_words_start_the_message() -> None:
    assert is_checkin("打卡", ["打卡"]) and is_checkin("  打卡 第3天，今天读完两章", ["打卡"])
    assert is_checkin("签到", ["打卡", "签到"])
    assert not is_checkin("今天忘了打卡", ["打卡"])
    assert not is_checkin("", ["打卡"])


def days(*offsets: int) -> set[date]:
    return {DAY0 + timedelta(days=n) for n in offsets}


def test_streaks_and_their_bonus_once_per_streak() -> None:
    assert streak_ending(days(0, 1, 2), DAY0 + timedelta(days=2)) == 3
    assert streak_ending(days(0, 2), DAY0 + timedelta(days=2)) == 1
    assert streak_ending(days(0), DAY0 + timedelta(days=1)) == 0
    day6 = DAY0 + timedelta(days=6)
    assert checkin_earnings(DAY0, set(), CHECKIN) == [Earning("checkin", 2, f"checkin:{DAY0}")]
    assert checkin_earnings(DAY0, days(0), CHECKIN) == []  # twice a day: nothing
    assert checkin_earnings(day6, days(0, 1, 2, 3, 4, 5), CHECKIN) == [
        Earning("checkin", 2, f"checkin:{day6}"),
        Earning("checkin_streak", 10, f"streak:{DAY0}:7"),
    ]
    day7 = DAY0 + timedelta(days=7)
    assert [e.reason for e in checkin_earnings(day7, days(*range(7)), CHECKIN)] == ["checkin"]
    # A gap starts over: the next 7 in a row earn the bonus again, keyed by their start.
    later = DAY0 + timedelta(days=15)
    again = checkin_earnings(later, days(0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14), CHECKIN)
    assert again[-1] == Earning("checkin_streak", 10, f"streak:{DAY0 + timedelta(days=9)}:7")
    day20 = DAY0 + timedelta(days=20)
    assert checkin_earnings(day20, days(*range(20)), CHECKIN)[-1].points == 30
    # The day's line is kept at 0 points: the streak is counted from it.
    free = CheckinPoints(enabled=True, points=0, streak_bonus={2: 5})
    assert [e.points for e in checkin_earnings(DAY0 + timedelta(days=1), days(0), free)] == [0, 5]


# --- touch completion: pure ---------------------------------------------------------


def test_a_week_gone_through_while_still_a_member_earns() -> None:
    sent, spoke = ("sent", "queued"), ("skipped", "condition false: not member.has_spoken")
    channel = ("skipped", "channel cannot carry it: customer groups take one post a day")
    done = Completion("completed", True, (sent, spoke, channel))
    assert completion_points(done, 5) == (5, "touch_complete")
    assert completion_points(done, 0)[0] == 0
    assert completion_points(Completion("stopped", True, (sent,)), 5)[0] == 0
    assert completion_points(Completion("cancelled", True, (sent,)), 5)[0] == 0
    assert completion_points(Completion("completed", False, (sent,)), 5)[0] == 0
    assert completion_points(Completion("completed", True, ()), 5)[0] == 0
    for missed in (("skipped", "member left the group"), ("skipped", "overdue"), ("failed", "x")):
        assert completion_points(Completion("completed", True, (sent, missed)), 5)[0] == 0


# --- playbook fields -----------------------------------------------------------------


def test_the_section_loads_with_quiet_defaults() -> None:
    section = PointsSection()
    assert not section.checkin.enabled and section.touch_complete == 0
    assert section.checkin.words == ("打卡",) and section.checkin.streak_bonus == {7: 10, 21: 30}
    yaml_keys = PointsSection.model_validate({"checkin": {"streak_bonus": {"3": 5}}})
    assert yaml_keys.checkin.streak_bonus == {3: 5}


@pytest.fixture
def pb_dir(tmp_path: Path) -> Path:
    write(tmp_path, "default.yaml", DEFAULT)
    return tmp_path


@pytest.mark.parametrize(
    ("yaml", "line", "field", "words"),
    [
        (
            "points:\n  checkin:\n    window: {start: '06:00', end: '24:00'}\n",
            3,
            "points.checkin.window.end",
            "HH:MM",
        ),
        (
            "points:\n  checkin:\n    window: {start: '07:00', end: '07:00'}\n",
            3,
            "points.checkin.window.end",
            "must not be empty",
        ),
        ("points:\n  checkin:\n    words: ['打卡', ' ']\n", 3, "points.checkin.words.1", "empty"),
        ("points:\n  checkin:\n    words: []\n", 3, "points.checkin.words", "at least 1"),
        (
            "points:\n  checkin:\n    streak_bonus: {'1': 5}\n",
            3,
            "points.checkin.streak_bonus.1",
            "2 to 366 days",
        ),
        (
            "points:\n  checkin:\n    streak_bonus: {7: 5000}\n",
            3,
            "points.checkin.streak_bonus.7",
            "0 to 1000 points",
        ),
        ("points:\n  touch_complete: -1\n", 2, "points.touch_complete", "greater than"),
    ],
)
def test_mistakes_point_at_their_line(
    pb_dir: Path, yaml: str, line: int, field: str, words: str
) -> None:
    write(pb_dir, "camp.yaml", yaml)
    [issue] = issues(pb_dir)
    assert (issue.file, issue.field) == ("camp.yaml", field)
    assert issue.line == line
    assert words in issue.message, issue.message


# --- live ------------------------------------------------------------------------------

PLAYBOOK = """\
name: earning
extends: default
applies_to: {chat_ids: [wrEarn]}
rules: {enabled: false}
touch_sequence: {enabled: false}
points:
  invite: {points: 5, stay_days: 7}
  checkin:
    enabled: true
    words: ["打卡", "签到"]
    points: 2
    window: {start: "06:00", end: "10:00"}
    streak_bonus: {"7": 10, "21": 30}
"""


@pytest.fixture
def clock(emulator: RunningEmulator) -> Clock:
    return Clock(T0)


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, clock: Clock
) -> AsyncIterator[LiveApp]:
    (templates_dir / "earning.yaml").write_text(PLAYBOOK, encoding="utf-8")
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="训练营",
        members={"wmA": "小安", "wmB": "小白", "zhangsan": "张三"},
    ) as app:
        await callback(app, join_callback(GROUP, ["wmA", "wmB", "zhangsan"]))
        yield app


async def callback(app: LiveApp, signed: tuple[dict[str, str], str]) -> None:
    response = await app.post_callback(*signed)
    assert response.text == "success"
    await settle(app)


async def points_of(app: LiveApp, member: str, chat_id: str = GROUP) -> dict[str, Any]:
    return await group_points_of(app, chat_id, member)


async def ledger(app: LiveApp, member: str) -> list[tuple[str, int]]:
    """(reason, delta) oldest first."""
    return [(e["reason"], e["delta"]) for e in reversed((await points_of(app, member))["entries"])]


def stamp(clock: Clock) -> int:
    return int(clock.now.timestamp())


async def arrive(
    app: LiveApp, emulator: RunningEmulator, clock: Clock, invitee: str, invitor: str
) -> None:
    emulator.state.add_members(GROUP, [{"userid": invitee, "name": invitee, "invitor": invitor}])
    await callback(app, join_callback(GROUP, [invitee], create_time=stamp(clock)))


async def depart(app: LiveApp, emulator: RunningEmulator, clock: Clock, member: str) -> None:
    emulator.state.remove_member(GROUP, member)
    await callback(app, leave_callback(GROUP, [member], create_time=stamp(clock)))


async def test_invites_pay_once_and_early_leaves_take_it_back(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await arrive(live, emulator, clock, "wmN1", "wmA")
    await arrive(live, emulator, clock, "wmN2", "wmA")
    assert await ledger(live, "wmA") == [("invite", 5), ("invite", 5)]
    # wmN1 leaves on day 2: taken back; wmN2 stays past 7 days: kept.
    clock.advance(2 * 86400)
    await depart(live, emulator, clock, "wmN1")
    clock.advance(6 * 86400)
    await depart(live, emulator, clock, "wmN2")
    mine = await points_of(live, "wmA")
    assert mine["balance"] == 5
    taken = [e for e in mine["entries"] if e["reason"] == "invite_taken_back"]
    assert [(e["delta"], e["source_key"]) for e in taken] == [(-5, "invite:wmN1")]
    assert "7 天" in taken[0]["note"]
    # Rejoining, invited by someone else, earns nobody anything: once ever per invitee.
    await arrive(live, emulator, clock, "wmN1", "wmB")
    assert (await points_of(live, "wmB"))["entries"] == []
    # Leaving again takes nothing more back.
    clock.advance(3600)
    await depart(live, emulator, clock, "wmN1")
    assert (await points_of(live, "wmA"))["balance"] == 5


async def test_staff_self_and_robot_invites_earn_nothing(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await arrive(live, emulator, clock, "wmN3", "zhangsan")  # staff: the growth report
    await arrive(live, emulator, clock, "wmN4", "wmN4")
    await arrive(live, emulator, clock, "wbRobot", "wmB")
    await arrive(live, emulator, clock, "wmN5", "wbRobot")
    for member in ("zhangsan", "wmN4", "wmB", "wbRobot"):
        assert (await points_of(live, member))["balance"] == 0


async def test_join_and_leave_in_one_batch_take_it_back(
    live: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    emulator.state.add_members(GROUP, [{"userid": "wmN6", "name": "路过", "invitor": "wmB"}])
    joined = await live.post_callback(*join_callback(GROUP, ["wmN6"], create_time=stamp(clock)))
    clock.advance(60)
    # WeCom's group snapshot still lists them (read before they left): the invitor is known.
    left = await live.post_callback(*leave_callback(GROUP, ["wmN6"], create_time=stamp(clock)))
    assert joined.text == left.text == "success"
    await settle(live)
    assert await ledger(live, "wmB") == [("invite", 5), ("invite_taken_back", -5)]


def checkin_record(n: int, sender: str, at: datetime, text: str) -> dict[str, Any]:
    return archive_text(f"c{n}", sender, GROUP, at, text)


archive = post_archive


def morning(offset: int, hh: int = 7, mm: int = 30) -> datetime:
    return local(DAY0 + timedelta(days=offset), hh, mm).astimezone(UTC)


def checkin_points(points: dict[str, Any]) -> int:
    return sum(e["delta"] for e in points["entries"] if e["reason"].startswith("checkin"))


async def queued(app: LiveApp) -> int:
    async with app.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxItem)) or 0)


async def test_check_ins_count_once_a_day_in_the_window_and_streaks_earn_a_bonus(
    live: LiveApp, clock: Clock
) -> None:
    before = await queued(live)
    # Days 0-2 one archive page each (read back from the ledger)…
    for day in range(3):
        await archive(live, [checkin_record(day, "wmA", morning(day), "打卡 第一周")])
    # …days 3-6 in one backfilled page (the batch sees its own earlier days), with a
    # second check-in on day 3, one out of the window and one not starting with a word.
    await archive(
        live,
        [
            checkin_record(3, "wmA", morning(3), "签到"),
            checkin_record(30, "wmA", morning(3, 8, 0), "打卡 again"),
            checkin_record(4, "wmA", morning(4), "打卡"),
            checkin_record(40, "wmB", morning(4, 10, 0), "打卡"),  # 10:00: the window is over
            checkin_record(41, "wmB", morning(4, 9, 0), "今天也要打卡"),
            checkin_record(5, "wmA", morning(5), "打卡"),
            checkin_record(6, "wmA", morning(6), "打卡，七天啦"),
        ],
    )
    assert await queued(live) == before  # no reply to a check-in: nobody is disturbed
    clock.now = morning(6, 12, 0)
    mine = await points_of(live, "wmA")
    assert checkin_points(mine) == 7 * 2 + 10
    assert mine["checkin_streak"] == 7
    assert [e["reason"] for e in mine["entries"]].count("checkin_streak") == 1
    balance = mine["balance"]  # longer check-ins earn message points besides
    assert checkin_points(await points_of(live, "wmB")) == 0
    # A replayed page changes nothing.
    await archive(live, [checkin_record(6, "wmA", morning(6), "打卡，七天啦")])
    assert (await points_of(live, "wmA"))["balance"] == balance
    # Day 8 without a check-in yet: the streak still runs; day 9: it is over.
    clock.now = morning(7, 12, 0)
    assert (await points_of(live, "wmA"))["checkin_streak"] == 7
    clock.now = morning(8, 12, 0)
    assert (await points_of(live, "wmA"))["checkin_streak"] == 0
    await archive(live, [checkin_record(8, "wmA", morning(8), "打卡")])
    assert (await points_of(live, "wmA"))["checkin_streak"] == 1


# --- live: the first week ------------------------------------------------------------

TOUCH_GROUP = "wrWeek"
TOUCH_PLAYBOOK = """\
name: first_week
extends: default
applies_to: {chat_ids: [wrWeek]}
rules: {enabled: false}
points: {touch_complete: 5}
"""


@pytest.fixture
async def week(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, clock: Clock
) -> AsyncIterator[LiveApp]:
    (templates_dir / "first_week.yaml").write_text(TOUCH_PLAYBOOK, encoding="utf-8")
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=TOUCH_GROUP,
        name="新人营",
        members={"wmStay": "留下的", "wmGone": "走了的", "wmQuiet": "退订的"},
    ) as app:
        signed = join_callback(TOUCH_GROUP, ["wmStay", "wmGone", "wmQuiet"])
        await callback(app, signed)
        yield app


def evening(offset: int) -> datetime:
    return local(DAY0 + timedelta(days=offset), 21).astimezone(UTC)


async def test_finishing_the_first_week_in_the_group_earns_once(
    week: LiveApp, emulator: RunningEmulator, clock: Clock
) -> None:
    await settle(week, at=evening(0))
    await settle(week, at=evening(1))
    clock.now = evening(1)
    emulator.state.remove_member(TOUCH_GROUP, "wmGone")
    await callback(week, leave_callback(TOUCH_GROUP, ["wmGone"], create_time=stamp(clock)))
    await archive_to(week, "wmQuiet", "退订")
    for offset in range(2, 9):
        await settle(week, at=evening(offset))
    for offset in range(9):  # ticking the same days again earns nothing more
        await settle(week, at=evening(offset))
    stay = await points_of(week, "wmStay", TOUCH_GROUP)
    assert [(e["reason"], e["delta"]) for e in stay["entries"]] == [("touch_complete", 5)]
    for member in ("wmGone", "wmQuiet"):
        assert (await points_of(week, member, TOUCH_GROUP))["balance"] == 0


async def archive_to(app: LiveApp, sender: str, text: str) -> None:
    record = {
        "msgid": f"w-{sender}",
        "action": "send",
        "from": sender,
        "tolist": [],
        "roomid": TOUCH_GROUP,
        "msgtime": int(evening(1).timestamp() * 1000) + 60_000,
        "msgtype": "text",
        "text": {"content": text},
    }
    response = await app.http.post("/wecom/archive", headers=AUTH, json=[record])
    assert response.status_code == 200
    await settle(app)
