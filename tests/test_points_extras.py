"""Points, second part (issue 9): good content (admin API and the 精华 reaction), rule
penalties given back on overturn, seasons, CSV exports, the cross-group leaderboard.
Archive records and quoted events through the inbox; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.config.playbooks.points_section import PointsSection
from bot.sandbox.emulator.server import RunningEmulator
from bot.sources.aibot import normalize_aibot
from bot.sources.normalized import store_many
from handlers.core.actions import Note
from handlers.core.events import Message
from handlers.features.points.good_content import QuotedMessage, decide_reaction, reaction_word
from handlers.features.points.ledger import AddPoints
from handlers.features.points.penalties import penalty_points
from handlers.features.points.season import season_first_day, season_start
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    adjust_points,
    archive_text,
    live_webhook_group,
    post_archive,
    settle,
)
from tests.helpers import points_of as group_points_of
from tests.helpers import redeem as redeem_in
from tests.test_playbooks_rules import SPEC_EXAMPLE

GROUP, OTHER = "wrExtras", "wrOther"
SHANGHAI = ZoneInfo("Asia/Shanghai")
AD = "低价代理，加我微信 abc12345 了解一下"
GOOD = "整理了一份私域运营的复盘模板，欢迎大家取用"


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


T0 = local(11, 24, 10)


# --- pure decisions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("精华", "精华"), (" 精华！", "精华"), ("精华。", "精华"), ("精华帖", None), ("", None)],
)
def test_a_reaction_is_a_message_that_is_only_the_word(text: str, expected: str | None) -> None:
    assert reaction_word(text, ("精华",)) == expected


def test_only_owner_admin_or_staff_grant_and_nobody_grants_themselves() -> None:
    quoted = QuotedMessage("wmA", "msg:g1")

    def decide(reactor: str, roles: set[str], found: QuotedMessage | None) -> list[Any]:
        return list(
            decide_reaction(
                reactor=reactor, reactor_roles=frozenset(roles), quoted=found,
                chat_id=GROUP, points=10, word="精华", at=T0,
            )
        )  # fmt: skip

    assert decide("owner1", {"owner"}, quoted) == [
        AddPoints(GROUP, "wmA", 10, "good_content", "msg:g1", T0, "owner1", "回复「精华」")
    ]
    assert all(isinstance(a, Note) for a in decide("wmB", {"讲师"}, quoted))
    assert all(isinstance(a, Note) for a in decide("wmA", {"admin"}, quoted))
    assert all(isinstance(a, Note) for a in decide("owner1", {"owner"}, None))


def test_penalties_by_step_with_humane_defaults() -> None:
    points = PointsSection()
    assert [penalty_points(points, s) for s in ("remind", "warn", "report", "remove")] == [
        0,
        -5,
        -10,
        -10,
    ]
    assert penalty_points(points, None) == 0  # dry run, held: nothing taken
    assert penalty_points(PointsSection(enabled=False), "warn") == 0
    assert penalty_points(None, "warn") == 0
    with pytest.raises(ValidationError):
        PointsSection.model_validate({"penalties": {"warn": 5}})  # a penalty never adds
    with pytest.raises(ValidationError):
        PointsSection.model_validate({"reaction_words": ["  "]})
    with pytest.raises(ValidationError):
        PointsSection.model_validate({"reset": "weekly"})


def test_seasons_start_at_local_midnight() -> None:
    day = date(2026, 8, 17)
    assert season_first_day("monthly", day) == date(2026, 8, 1)
    assert season_first_day("quarterly", day) == date(2026, 7, 1)
    assert season_first_day("yearly", day) == date(2026, 1, 1)
    assert season_first_day("never", day) is None
    # 00:30 on 1 November in Shanghai is still 31 October in UTC: Shanghai's month.
    now = local(11, 1, 0, 30)
    start = season_start(PointsSection(reset="monthly"), now, SHANGHAI)
    assert start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert season_start(PointsSection(), now, SHANGHAI) is None


# --- the live service ----------------------------------------------------------------

PLAYBOOK = (
    """\
name: extras
extends: default
applies_to: {chat_ids: [wrExtras, wrOther]}
touch_sequence: {enabled: false}
points:
  reset: monthly
  rewards:
    - {name: 徽章, cost: 40}
    - {name: 贴纸, cost: 20}
"""
    + SPEC_EXAMPLE
)


def record(msgid: str, sender: str, at: datetime, text: str, **extra: Any) -> dict[str, Any]:
    return archive_text(msgid, sender, GROUP, at, text, **extra)


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    (templates_dir / "extras.yaml").write_text(PLAYBOOK, encoding="utf-8")
    clock = Clock(T0 - timedelta(hours=1))
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="积分群",
        members={"wmA": "小安", "wmB": "小白", "wmAd": "广告哥", "zhangsan": "张三"},
        joined=True,
    ) as app:
        clock.now = T0
        yield app, clock


async def post(app: LiveApp, *records: dict[str, Any]) -> None:
    await post_archive(app, list(records))


async def points_of(app: LiveApp, member: str, chat_id: str = GROUP) -> dict[str, Any]:
    return await group_points_of(app, chat_id, member)


async def grant(app: LiveApp, msg_id: str, by: str = "lisi", **extra: Any) -> Any:
    return await app.http.post(
        "/admin/points/good-content",
        headers=AUTH,
        json={"chat_id": GROUP, "msg_id": msg_id, "by": by, **extra},
    )


async def test_good_content_by_the_api_is_granted_once_per_message(
    live: tuple[LiveApp, Clock],
) -> None:
    app, _ = live
    await post(app, record("g1", "wmA", T0, GOOD))
    assert (await points_of(app, "wmA"))["balance"] == 1  # the message itself
    first = await grant(app, "g1", note="复盘模板很实用")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["granted"], body["member_id"], body["balance"]) == (True, "wmA", 11)
    entry = body["entry"]
    assert (entry["reason"], entry["delta"], entry["actor"], entry["note"]) == (
        "good_content",
        10,
        "lisi",
        "复盘模板很实用",
    )
    again = await grant(app, "g1", by="wangwu")
    assert again.status_code == 200
    assert again.json()["granted"] is False and again.json()["entry"]["actor"] == "lisi"
    mine = await points_of(app, "wmA")
    assert (mine["balance"], mine["lifetime"]) == (11, 11)
    assert [e["reason"] for e in mine["entries"]] == ["good_content", "message"]


async def test_good_content_refusals_change_nothing(live: tuple[LiveApp, Clock]) -> None:
    app, clock = live
    await post(app, record("g1", "wmA", T0, GOOD), record("g2", "wmB", T0, "另一条有内容的发言"))
    clock.advance(60)
    await post(app, {**record("r1", "wmB", T0 + timedelta(seconds=30), ""), "action": "recall",
                     "msgtype": "revoke", "revoke": {"pre_msgid": "g2"}})  # fmt: skip
    # (wmB's message answers wmA's: message and discussion points.)
    before = [(await points_of(app, m))["balance"] for m in ("wmA", "wmB")]
    assert before == [1, 6]
    unknown = await grant(app, "nope")
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    self_grant = await grant(app, "g1", by="wmA")
    assert self_grant.status_code == 409 and "self" in self_grant.json()["detail"]
    taken_back = await grant(app, "g2")
    assert taken_back.status_code == 409 and "taken back" in taken_back.json()["detail"]
    no_group = await app.http.post(
        "/admin/points/good-content", headers=AUTH, json={"chat_id": "wrNope", "msg_id": "g1"}
    )
    assert no_group.status_code == 404
    blank = await grant(app, "   ")
    assert blank.status_code == 422
    assert [(await points_of(app, m))["balance"] for m in ("wmA", "wmB")] == before


async def react(app: LiveApp, n: int, sender: str, at: datetime, text: str, quoted: str) -> None:
    """A 智能机器人 message that quotes `quoted`, as the aibot callback normalizes it
    (its quote carries the text, no sender or id), at the test's time."""
    payload = {
        "msgid": f"react-{n}",
        "chatid": GROUP,
        "chattype": "group",
        "from": {"userid": sender},
        "msgtype": "text",
        "text": {"content": f"@小助手 {text}"},
        "quote": {"msgtype": "text", "text": {"content": quoted}},
    }
    incoming = normalize_aibot(payload, json.dumps(payload, ensure_ascii=False))
    assert isinstance(incoming.event, Message) and incoming.event.quote is not None
    incoming = replace(incoming, event=incoming.event.model_copy(update={"occurred_at": at}))
    await store_many(app.runtime.appender, [incoming], now=app.runtime.clock())
    await settle(app)


async def test_a_reaction_word_from_an_admin_grants_once_and_never_to_oneself(
    live: tuple[LiveApp, Clock],
) -> None:
    app, _ = live
    own = "群主自己发的一条活动通知，周六见"
    await post(
        app,
        record("g1", "wmA", T0, GOOD),
        record("g2", "owner1", T0, own),
        record("g3", "wmB", T0, "这条也写得很好，值得收藏一下"),
    )
    await react(app, 1, "owner1", T0 + timedelta(minutes=1), "精华", GOOD)
    await react(app, 2, "zhangsan", T0 + timedelta(minutes=2), "精华！", GOOD)  # staff
    await react(app, 3, "owner1", T0 + timedelta(minutes=3), "精华", own)  # own message
    third = "这条也写得很好，值得收藏一下"
    await react(app, 4, "wmA", T0 + timedelta(minutes=4), "精华", third)  # a member
    await react(app, 5, "owner1", T0 + timedelta(minutes=5), "精华帖子", third)  # not the word
    mine = await points_of(app, "wmA")
    [line] = [e for e in mine["entries"] if e["reason"] == "good_content"]
    assert (line["delta"], line["source_key"], line["actor"]) == (10, "msg:g1", "owner1")
    owners = await points_of(app, "owner1")
    assert [e["reason"] for e in owners["entries"]] == ["message"]  # no self-grant
    # wmA is a member, not an admin; "精华帖子" is not the word: nothing for wmB.
    assert [e["reason"] for e in (await points_of(app, "wmB"))["entries"]] == ["message"]
    # The admin API knows the reaction granted the message already.
    assert (await grant(app, "g1")).status_code == 200
    assert (await points_of(app, "wmA"))["balance"] == 11


async def test_rule_penalties_are_given_back_on_overturn(live: tuple[LiveApp, Clock]) -> None:
    app, clock = live
    ads = [record(f"ad{n}", "wmAd", T0 + timedelta(minutes=5 * n), AD) for n in range(3)]
    for ad in ads:  # remind (0), warn (-5), report (-10)
        await post(app, ad)
    await post(app, *ads)  # a replayed batch takes nothing twice
    mine = await points_of(app, "wmAd")
    assert mine["balance"] == -15
    assert sorted(e["note"] for e in mine["entries"]) == ["ads: report", "ads: warn"]
    listed = (
        await app.http.get("/admin/violations", headers=AUTH, params={"member_id": "wmAd"})
    ).json()
    by_step = {v["step"]: v["id"] for v in listed}
    assert set(by_step) == {"remind", "warn", "report"}
    clock.advance(3600)
    overturned = await app.http.post(
        f"/admin/violations/{by_step['warn']}/overturn", headers=AUTH, json={"reason": "误判"}
    )
    assert overturned.status_code == 200, overturned.text
    mine = await points_of(app, "wmAd")
    assert mine["balance"] == -10
    [back] = [e for e in mine["entries"] if e["reason"] == "penalty_reversed"]
    assert (back["delta"], back["source_key"], back["note"]) == (
        5,
        f"violation:{by_step['warn']}",
        "误判",
    )
    again = await app.http.post(f"/admin/violations/{by_step['warn']}/overturn", headers=AUTH)
    assert again.status_code == 409
    confirmed = await app.http.post(f"/admin/violations/{by_step['report']}/confirm", headers=AUTH)
    assert confirmed.status_code == 200
    # The free reminder overturned: nothing to give back, nothing added.
    remind = await app.http.post(f"/admin/violations/{by_step['remind']}/overturn", headers=AUTH)
    assert remind.status_code == 200
    mine = await points_of(app, "wmAd")
    assert mine["balance"] == -10 and len(mine["entries"]) == 3


async def adjust(app: LiveApp, member: str, delta: int, chat_id: str = GROUP) -> None:
    await adjust_points(app, chat_id, member, delta)


async def redeem(app: LiveApp, member: str, reward: str) -> Any:
    return await redeem_in(app, GROUP, member, reward)


async def test_a_monthly_season_spends_this_months_points_and_keeps_history(
    live: tuple[LiveApp, Clock],
) -> None:
    app, clock = live
    clock.now = local(10, 31, 23, 50)  # October, in Shanghai
    await adjust(app, "wmB", 100)
    clock.now = local(11, 1, 0, 10)
    await adjust(app, "wmB", 30)
    mine = await points_of(app, "wmB")
    assert (mine["balance"], mine["lifetime"]) == (30, 130)
    assert mine["season_start"] == "2026-11-01T00:00:00+08:00"
    assert len(mine["entries"]) == 2  # the ledger keeps October
    short = await app.http.post(
        "/admin/redemptions",
        headers=AUTH,
        json={"chat_id": GROUP, "member_id": "wmB", "reward": "徽章"},
    )
    assert short.status_code == 409 and "has 30 points" in short.json()["detail"]
    ok = await app.http.post(
        "/admin/redemptions",
        headers=AUTH,
        json={"chat_id": GROUP, "member_id": "wmB", "reward": "贴纸"},
    )
    assert ok.status_code == 201 and ok.json()["balance"] == 10
    assert (await points_of(app, "wmB"))["lifetime"] == 110


def read_csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel wants
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


async def test_ledger_and_leaderboard_csv(live: tuple[LiveApp, Clock]) -> None:
    app, clock = live
    clock.now = local(10, 31, 23, 50)
    await adjust(app, "wmB", 7)
    clock.now = local(11, 2, 9)
    await adjust(app, "wmA", 12)
    clock.now = local(11, 3, 9)
    await adjust(app, "wmB", 3)
    export = await app.http.get(
        "/admin/points/export",
        headers=AUTH,
        params={"chat_id": GROUP, "from": "2026-11-01", "to": "2026-11-02"},
    )
    rows = read_csv(export)
    assert rows[0][:7] == ["id", "time", "chat_id", "member_id", "name", "delta", "reason"]
    assert [(r[1], r[3], r[4], r[5], r[6]) for r in rows[1:]] == [
        ("2026-11-02T09:00:00+08:00", "wmA", "小安", "12", "manual")
    ]
    everything = read_csv(await app.http.get("/admin/points/export", headers=AUTH))
    assert [r[5] for r in everything[1:]] == ["7", "12", "3"]
    board = read_csv(
        await app.http.get(
            f"/admin/groups/{GROUP}/leaderboard",
            headers=AUTH,
            params={"month": "2026-11", "format": "csv"},
        )
    )
    assert board == [["rank", "member_id", "name", "points"], ["1", "wmA", "小安", "12"],
                     ["2", "wmB", "小白", "3"]]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"from": "2026-13-01"}, 422),
        ({"from": "2026-11-05", "to": "2026-11-01"}, 422),
        ({"chat_id": "wrNope"}, 404),
    ],
)
async def test_bad_export_requests_are_refused(
    live: tuple[LiveApp, Clock], params: dict[str, str], status: int
) -> None:
    app, _ = live
    response = await app.http.get("/admin/points/export", headers=AUTH, params=params)
    assert response.status_code == status
    assert "detail" in response.json()


async def test_the_leaderboard_across_groups(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    emulator.state.upsert_group(OTHER, name="二群", owner="owner1", members=[])
    made = await app.http.put(
        f"/admin/groups/{OTHER}",
        headers=AUTH,
        json={"name": "二群", "channel": {"type": "webhook", "key": "wk2"}},
    )
    assert made.status_code == 200, made.text
    await adjust(app, "wmA", 10)
    await adjust(app, "wmA", 15, OTHER)
    await adjust(app, "wmB", 25)
    await adjust(app, "wmC", 5, OTHER)
    clock.now = local(12, 1, 9)
    await adjust(app, "wmC", 100, OTHER)  # December
    got = await app.http.get("/admin/leaderboard", headers=AUTH, params={"month": "2026-11"})
    assert got.status_code == 200, got.text
    rows = got.json()
    assert [(r["member_id"], r["points"], r["rank"]) for r in rows] == [
        ("wmA", 25, 1),
        ("wmB", 25, 1),
        ("wmC", 5, 3),
    ]
    assert rows[0]["name"] == "小安"
    assert rows[0]["groups"] == [
        {"chat_id": OTHER, "name": "二群", "points": 15},
        {"chat_id": GROUP, "name": "积分群", "points": 10},
    ]
    table = read_csv(
        await app.http.get(
            "/admin/leaderboard", headers=AUTH, params={"month": "2026-11", "format": "csv"}
        )
    )
    assert table[1] == ["1", "wmA", "小安", "25", "二群: 15; 积分群: 10"]
    bad = await app.http.get("/admin/leaderboard", headers=AUTH, params={"month": "2026-13"})
    assert bad.status_code == 422
    wrong = await app.http.get("/admin/leaderboard", headers=AUTH, params={"format": "xml"})
    assert wrong.status_code == 422
