"""贡献之星 (issue 9): the monthly vote on last month's top contributors. Pure rules
(what a reply means, who stands, how replies are counted), then the whole flow through
archive records, the inbox worker and the due-work engine on SQLite and PostgreSQL:
the engine opens the vote at the playbook's time, members reply numbers (duplicates,
self-votes, stray numbers and replays among them), the engine closes it and the
recorded result matches a hand count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.config.playbooks.points_section import PointsSection, StarVote
from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.star.tally import (
    Ballot,
    Scored,
    opening_at,
    parse_vote,
    pick_candidates,
    tally,
    to_schedule,
)
from storage.models import OwnerTask
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    adjust_points,
    live_webhook_group,
    post_archive,
    sent_texts,
    settle,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
GROUP = "wrStar"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


# --- pure: replies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1", 1),
        (" 3 ", 3),
        ("２", 2),  # full-width, as Chinese keyboards type it
        ("投2", 2),
        ("#4", 4),
        ("5号", 5),
        ("投 2 号", 2),
        ("1。", 1),
        ("12", 12),
        ("0", None),
        ("1和2", None),
        ("我投1", None),
        ("1234", None),
        ("第一", None),
        ("", None),
    ],
)
def test_what_a_reply_votes_for(text: str, number: int | None) -> None:
    assert parse_vote(text) == number


# --- pure: the tally -------------------------------------------------------------------------

OPENED = local(2026, 12, 1, 10, 0)
CLOSES = OPENED + timedelta(hours=48)
STANDING = {1: "wmA", 2: "wmB", 3: "wmC"}


def ballot(voter: str, number: int, minutes: float, seq: int = 0) -> Ballot:
    return Ballot(voter, number, OPENED + timedelta(minutes=minutes), seq)


def test_the_first_vote_counts_later_ones_are_duplicates_even_for_another_number() -> None:
    result = tally(
        STANDING,
        [ballot("wmD", 1, 5), ballot("wmD", 2, 6), ballot("wmD", 1, 7), ballot("wmE", 2, 8)],
        opened_at=OPENED,
        closes_at=CLOSES,
    )
    assert result.votes == {1: 1, 2: 1, 3: 0}
    assert (result.counted, result.duplicates) == (2, 2)


def test_the_order_is_the_time_written_not_the_order_recorded() -> None:
    late_recorded_first = [ballot("wmD", 2, 9, seq=1), ballot("wmD", 1, 3, seq=2)]
    assert tally(STANDING, late_recorded_first, opened_at=OPENED, closes_at=CLOSES).votes[1] == 1


def test_a_self_vote_is_not_counted_and_does_not_use_up_the_vote() -> None:
    result = tally(
        STANDING,
        [ballot("wmA", 1, 1), ballot("wmA", 2, 2), ballot("wmB", 2, 3)],
        opened_at=OPENED,
        closes_at=CLOSES,
    )
    assert result.votes == {1: 0, 2: 1, 3: 0}
    assert (result.self_votes, result.counted, result.duplicates) == (2, 1, 0)
    assert result.winners == (2,)


def test_numbers_no_candidate_has_and_replies_outside_the_window_are_ignored() -> None:
    result = tally(
        STANDING,
        [
            ballot("wmD", 9, 1),  # no candidate 9: does not use up wmD's vote
            ballot("wmD", 3, 2),
            ballot("wmE", 1, -1),  # before the opening
            ballot("wmF", 1, 48 * 60),  # at the close: too late
            ballot("wmG", 1, 48 * 60 - 0.01),  # just in time
        ],
        opened_at=OPENED,
        closes_at=CLOSES,
    )
    assert result.votes == {1: 1, 2: 0, 3: 1}
    assert (result.invalid, result.outside_window, result.counted) == (1, 2, 2)


def test_ties_at_the_top_are_all_winners_and_no_votes_no_winner() -> None:
    tied = tally(
        STANDING,
        [ballot("wmD", 1, 1), ballot("wmE", 3, 2), ballot("wmF", 2, 3), ballot("wmG", 3, 4)],
        opened_at=OPENED,
        closes_at=CLOSES,
    )
    assert tied.winners == (3,)
    tied = tally(
        STANDING,
        [ballot("wmD", 1, 1), ballot("wmE", 3, 2)],
        opened_at=OPENED,
        closes_at=CLOSES,
    )
    assert tied.winners == (1, 3)
    empty = tally(STANDING, [ballot("wmA", 1, 1)], opened_at=OPENED, closes_at=CLOSES)
    assert (empty.winners, empty.counted, empty.self_votes) == ((), 0, 1)


# --- pure: candidates and the calendar ------------------------------------------------------


def test_candidates_leave_out_staff_and_zero_and_keep_ties_at_the_cut() -> None:
    standings = [
        Scored("lisi", 90),  # staff
        Scored("wmA", 50),
        Scored("wmB", 30),
        Scored("wmC", 30),
        Scored("wmD", 30),
        Scored("wmE", 10),
        Scored("wmF", 0),
    ]
    picked = pick_candidates(
        standings,
        excluded={"lisi"},
        names={"wmA": "小安", "wmB": None},
        seats=2,
        neutral_name="新朋友",
    )
    # wmB, wmC and wmD share the second place: all stand (up to twice the seats).
    assert [(c.number, c.member_id, c.points) for c in picked] == [
        (1, "wmA", 50),
        (2, "wmB", 30),
        (3, "wmC", 30),
        (4, "wmD", 30),
    ]
    assert [c.name for c in picked[:2]] == ["小安", "新朋友"]
    capped = pick_candidates(
        [Scored(f"wm{n}", 5) for n in range(10)],
        excluded=set(),
        names={},
        seats=2,
        neutral_name="x",
    )
    assert [c.member_id for c in capped] == ["wm0", "wm1", "wm2", "wm3"]
    assert (
        pick_candidates([Scored("wmF", 0)], excluded=set(), names={}, seats=3, neutral_name="x")
        == []
    )


def test_last_months_vote_is_booked_until_a_day_after_its_opening() -> None:
    star = StarVote(open_day=2, open_at=time(9, 30))
    opens = local(2026, 12, 2, 9, 30)
    assert opening_at(date(2026, 11, 1), star, SHANGHAI) == opens
    # Local midnight of 1 December is still 30 November in UTC: it is December's booking.
    assert to_schedule(local(2026, 12, 1, 0, 5), star, SHANGHAI) == (date(2026, 11, 1), opens)
    assert to_schedule(opens + timedelta(hours=23), star, SHANGHAI) == (date(2026, 11, 1), opens)
    assert to_schedule(opens + timedelta(days=1), star, SHANGHAI) is None
    january = to_schedule(local(2027, 1, 1, 8, 0), star, SHANGHAI)
    assert january == (date(2026, 12, 1), local(2027, 1, 2, 9, 30))


def test_the_playbook_section_loads_without_a_vote_and_with_one() -> None:
    assert PointsSection().star is None
    section = PointsSection.model_validate(
        {"star": {"candidates": 3, "open_day": 1, "open_at": "10:00", "vote_hours": 48}}
    )
    assert section.star is not None and section.star.open_at == time(10, 0)
    with pytest.raises(ValueError):
        PointsSection.model_validate({"star": {"open_day": 31}})


# --- live: archive records, the inbox worker, the engine ------------------------------------

T0 = local(2026, 11, 24, 10, 0)
PLAYBOOK = """\
name: star_only
extends: default
applies_to: {chat_ids: [wrStar, wrStarOwner]}
rules: {enabled: false}
touch_sequence: {enabled: false}
daily_report: null
points:
  star: {candidates: 3, open_day: 1, open_at: "10:00", vote_hours: 48, winner_points: 20}
"""
MEMBERS = {
    "wmA": "小安",
    "wmB": "小白",
    "wmC": "小陈",
    "wmD": "小丁",
    "wmE": "小鄂",
    "lisi": "李四",  # staff: votes, never stands
}


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    (templates_dir / "star_only.yaml").write_text(PLAYBOOK, encoding="utf-8")
    clock = Clock(T0)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="贡献群",
        members=MEMBERS,
        joined=True,
    ) as app:
        yield app, clock


async def give(app: LiveApp, member: str, delta: int, chat_id: str = GROUP) -> None:
    await adjust_points(app, chat_id, member, delta, "本月贡献")


def reply(msgid: str, sender: str, at: datetime, text: str) -> dict[str, Any]:
    return {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": [],
        "roomid": GROUP,
        "msgtime": int(at.timestamp() * 1000),
        "msgtype": "text",
        "text": {"content": text},
    }


def posted(emulator: RunningEmulator) -> list[str]:
    """What the group read about the vote (the welcome of the joins goes out meanwhile)."""
    return [text for text in sent_texts(emulator) if text.startswith("【贡献之星】")]


post = post_archive


async def star(app: LiveApp, month: str = "2026-11", chat_id: str = GROUP) -> dict[str, Any]:
    got = await app.http.get(f"/admin/groups/{chat_id}/star", headers=AUTH, params={"month": month})
    assert got.status_code == 200, got.text
    return dict(got.json())


async def test_a_month_vote_opens_counts_replies_by_hand_and_announces_the_result(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    for member, points in (("lisi", 90), ("wmA", 50), ("wmB", 40), ("wmC", 30), ("wmD", 5)):
        await give(app, member, points)
    # Points of December are not November's.
    clock.now = local(2026, 12, 1, 9, 0)
    await give(app, "wmE", 500)
    clock.now = local(2026, 12, 1, 9, 59)
    await settle(app)
    booked = await star(app)
    assert (booked["status"], booked["due_at"]) == ("scheduled", "2026-12-01T10:00:00+08:00")
    before = len(posted(emulator))

    clock.now = local(2026, 12, 1, 10, 0)
    await settle(app)
    opened = await star(app)
    assert opened["status"] == "open"
    assert opened["closes_at"] == "2026-12-03T10:00:00+08:00"
    assert [(c["number"], c["member_id"], c["points"]) for c in opened["candidates"]] == [
        (1, "wmA", 50),
        (2, "wmB", 40),
        (3, "wmC", 30),
    ]
    [candidates] = posted(emulator)[before:]
    assert "1. 小安（50 分）" in candidates and "3. 小陈（30 分）" in candidates
    assert "回复数字即可投票" in candidates and "不能投自己" in candidates
    assert "12月3日 10:00" in candidates and "李四" not in candidates

    # The replies, as the archive brings them. Hand count: 1 → wmD, wmB; 2 → wmE, wmA,
    # lisi; 3 → none.
    at = local(2026, 12, 1, 10, 0)
    clock.now = local(2026, 12, 1, 12, 0)
    replies = [
        reply("s0", "wmC", at - timedelta(minutes=2), "1"),  # before the opening
        reply("s1", "wmD", at + timedelta(minutes=1), "1"),
        reply("s2", "wmE", at + timedelta(minutes=2), "２"),
        reply("s3", "wmD", at + timedelta(minutes=3), "3"),  # duplicate
        reply("s4", "wmA", at + timedelta(minutes=4), "1"),  # self-vote
        reply("s5", "wmA", at + timedelta(minutes=5), "投2号"),  # counts: a self-vote is no vote
        reply("s6", "wmB", at + timedelta(minutes=6), "1"),
        reply("s7", "wmC", at + timedelta(minutes=7), "9"),  # no candidate 9
        reply("s8", "lisi", at + timedelta(minutes=8), "2"),  # staff vote
        reply("s9", "wmC", at + timedelta(minutes=9), "大家觉得 1 和 2 谁更好"),  # talk
    ]
    await post(app, replies)
    await post(app, replies[1:3])  # a replayed archive page counts once
    live_count = await star(app)
    assert [c["votes"] for c in live_count["candidates"]] == [2, 3, 0]
    assert (live_count["duplicates"], live_count["self_votes"], live_count["invalid"]) == (1, 1, 1)
    sends = len(posted(emulator))
    assert sends == before + 1  # the bot does not answer votes

    # After the window, before the close: not counted.
    clock.now = local(2026, 12, 3, 10, 5)
    await post(app, [reply("s10", "wmC", local(2026, 12, 3, 10, 1), "2")])
    clock.now = local(2026, 12, 3, 10, 11)
    await settle(app)
    closed = await star(app)
    assert closed["status"] == "closed"
    assert [c["votes"] for c in closed["candidates"]] == [2, 3, 0]
    assert (closed["counted"], closed["duplicates"], closed["self_votes"]) == (5, 1, 1)
    assert [w["member_id"] for w in closed["winners"]] == ["wmB"]
    [result] = posted(emulator)[sends:]
    assert "恭喜 小白 当选11月贡献之星！（3 票）" in result
    assert "1. 小安 2 票；2. 小白 3 票；3. 小陈 0 票" in result
    points = await app.http.get(
        "/admin/members/wmB/points", headers=AUTH, params={"chat_id": GROUP}
    )
    assert points.json()["balance"] == 60  # 40 + the winner's 20
    assert points.json()["entries"][0]["reason"] == "star"

    # Done once: neither the engine nor an admin does it again.
    clock.now = local(2026, 12, 3, 12, 0)
    await settle(app)
    assert len(posted(emulator)) == sends + 1
    for action in ("open", "close"):
        again = await app.http.post(
            f"/admin/groups/{GROUP}/star/{action}", headers=AUTH, params={"month": "2026-11"}
        )
        assert again.status_code == 409
        assert "already closed" in again.json()["detail"]


async def test_admins_open_and_close_now_and_bad_requests_change_nothing(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await give(app, "wmA", 10)
    await give(app, "wmB", 10)
    path = f"/admin/groups/{GROUP}/star"

    async def call(method: str, suffix: str = "", **params: str) -> Any:
        return await app.http.request(method, path + suffix, headers=AUTH, params=params)

    assert (await call("POST", "/open", month="2026-11")).status_code == 422  # not over
    assert (await call("POST", "/open", month="2026-13")).status_code == 422
    missing = await app.http.post("/admin/groups/wrNope/star/open", headers=AUTH)
    assert missing.status_code == 404
    assert (await call("GET", month="2026-10")).status_code == 404
    not_open = await call("POST", "/close", month="2026-10")
    assert not_open.status_code == 409 and "no 贡献之星 vote" in not_open.json()["detail"]
    assert (await call("GET", month="2026-10")).status_code == 404  # still nothing

    # October had no points: recorded, not posted.
    sent = len(posted(emulator))
    empty = await call("POST", "/open", month="2026-10")
    assert empty.status_code == 200, empty.text
    assert (empty.json()["status"], empty.json()["candidates"]) == ("no_candidates", [])
    assert len(posted(emulator)) == sent
    again = await call("POST", "/open", month="2026-10")
    assert again.status_code == 409 and "no candidates" in again.json()["detail"]

    clock.now = local(2026, 12, 1, 8, 0)  # before the playbook's 10:00
    opened = await call("POST", "/open")  # default: last month
    assert opened.status_code == 200, opened.text
    assert (opened.json()["month"], opened.json()["status"]) == ("2026-11", "open")
    assert opened.json()["opened_at"] == "2026-12-01T08:00:00+08:00"
    twice = await call("POST", "/open")
    assert twice.status_code == 409 and "already open" in twice.json()["detail"]
    await settle(app)
    assert len(posted(emulator)) == sent + 1
    clock.now = local(2026, 12, 1, 10, 0)  # the engine's opening time: nothing new
    await settle(app)
    assert len(posted(emulator)) == sent + 1

    await post(app, [reply("t1", "wmB", local(2026, 12, 1, 9, 0), "1")])
    closed = await call("POST", "/close")
    assert closed.status_code == 200, closed.text
    assert [w["member_id"] for w in closed.json()["winners"]] == ["wmA"]
    await settle(app)
    assert "恭喜 小安 当选11月贡献之星！（1 票）" in posted(emulator)[-1]


async def test_where_the_bot_cannot_post_the_owner_gets_the_text_to_paste(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    put = await app.http.put(
        f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "customer_group"}}
    )
    assert put.status_code == 200, put.text
    await give(app, "wmC", 8)
    clock.now = local(2026, 12, 1, 10, 0)
    await settle(app)
    assert (await star(app))["status"] == "open"
    async with app.runtime.sessions() as session:
        tasks = list((await session.execute(select(OwnerTask))).scalars())
    assert {t.origin for t in tasks} == {"star_open"}
    assert tasks[0].paste_text is not None and "1. 小陈（8 分）" in tasks[0].paste_text
    assert posted(emulator) == []
