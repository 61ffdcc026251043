"""The points ledger, first part (issue 9): message points that cannot be farmed,
audited manual adjustments, balances and the monthly leaderboard from one ledger.
Archive records through /wecom/archive and the inbox worker; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config.playbooks.points_section import MessagePoints
from bot.sandbox.emulator.server import RunningEmulator
from handlers.features.points.ledger import MessageEarnings, message_points
from tests.helpers import (
    AUTH,
    Clock,
    LiveApp,
    adjust_points,
    archive_text,
    live_webhook_group,
    post_archive,
)
from tests.helpers import points_of as group_points_of
from tests.helpers import redeem as redeem_in

GROUP = "wrPoints"
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
RULE = MessagePoints(points=1, min_length=5, cooldown_seconds=60, daily_cap=10)


def test_short_soon_and_capped_messages_earn_nothing() -> None:
    fresh = MessageEarnings(today=0, last_at=None)
    assert message_points(4, fresh, at=T0, rule=RULE) == (0, "shorter than 5 characters")
    assert message_points(5, fresh, at=T0, rule=RULE) == (1, "message")
    recent = MessageEarnings(today=3, last_at=T0 - timedelta(seconds=59))
    assert message_points(20, recent, at=T0, rule=RULE)[0] == 0
    assert message_points(20, MessageEarnings(10, None), at=T0, rule=RULE)[0] == 0
    generous = MessagePoints(points=3, min_length=1, cooldown_seconds=0, daily_cap=10)
    assert message_points(9, MessageEarnings(9, None), at=T0, rule=generous)[0] == 1  # to the cap


def record(n: int, sender: str, at: datetime, text: str) -> dict[str, Any]:
    return archive_text(f"p{n}", sender, GROUP, at, text)


# Rules off: the points alone must refuse to pay for spam (a flood rule would stop it
# first otherwise). The shipped default's points section applies.
PLAYBOOK = """\
name: points_only
extends: default
applies_to: {chat_ids: [wrPoints]}
rules: {enabled: false}
touch_sequence: {enabled: false}
"""


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[LiveApp]:
    (templates_dir / "points_only.yaml").write_text(PLAYBOOK, encoding="utf-8")
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=Clock(T0),
        chat_id=GROUP,
        name="积分群",
        members={"wmA": "小安", "wmB": "小白"},
        joined=True,
    ) as app:
        yield app


post = post_archive


async def points_of(app: LiveApp, member: str) -> dict[str, Any]:
    return await group_points_of(app, GROUP, member)


async def test_farming_earns_nothing_real_messages_stop_at_the_cap(live: LiveApp) -> None:
    # 200 one-character messages in a minute.
    spam = [record(n, "wmA", T0 + timedelta(seconds=n * 0.3), "好") for n in range(200)]
    await post(live, spam)
    assert (await points_of(live, "wmA"))["balance"] == 0
    # 50 real messages, two minutes apart: the daily cap (10) and no more.
    real = [
        record(
            1000 + n, "wmB", T0 + timedelta(minutes=2 * n), f"第 {n} 个想法：我们可以这样复盘活动"
        )
        for n in range(50)
    ]
    await post(live, real)
    mine = await points_of(live, "wmB")
    assert mine["balance"] == 10
    assert sum(entry["delta"] for entry in mine["entries"]) == 10
    # A replayed archive batch changes no balance.
    await post(live, real)
    assert (await points_of(live, "wmB"))["balance"] == 10


async def test_manual_adjustments_are_audited_and_the_leaderboard_is_the_ledger(
    live: LiveApp,
) -> None:
    await post(live, [record(1, "wmA", T0, "分享一个私域运营的案例给大家")])
    adjusted = await live.http.post(
        "/admin/points",
        headers=AUTH,
        json={"chat_id": GROUP, "member_id": "wmB", "delta": 10, "reason": "好资源", "by": "lisi"},
    )
    assert adjusted.status_code == 201, adjusted.text
    [entry] = adjusted.json()["entries"]
    assert (entry["reason"], entry["actor"], entry["note"]) == ("manual", "lisi", "好资源")
    board = await live.http.get(
        f"/admin/groups/{GROUP}/leaderboard", headers=AUTH, params={"month": "2026-11"}
    )
    assert board.status_code == 200
    rows = board.json()
    assert [(r["member_id"], r["points"], r["rank"]) for r in rows] == [
        ("wmB", 10, 1),
        ("wmA", 1, 2),
    ]
    assert rows[0]["name"] == "小白"
    for row in rows:  # the leaderboard figure is the ledger's sum
        assert row["points"] == (await points_of(live, row["member_id"]))["balance"]
    assert (
        await live.http.get(
            f"/admin/groups/{GROUP}/leaderboard", headers=AUTH, params={"month": "2026-12"}
        )
    ).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"chat_id": GROUP, "member_id": "wmB", "delta": 0, "reason": "x"},
        {"chat_id": GROUP, "member_id": "wmB", "delta": 5, "reason": "  "},
        {"chat_id": GROUP, "member_id": "wmB", "delta": 5},
    ],
)
async def test_bad_adjustments_are_refused_and_change_nothing(
    live: LiveApp, body: dict[str, Any]
) -> None:
    response = await live.http.post("/admin/points", headers=AUTH, json=body)
    assert response.status_code == 422
    assert (await points_of(live, "wmB"))["balance"] == 0


async def test_unknown_group_and_bad_month(live: LiveApp) -> None:
    unknown = await live.http.post(
        "/admin/points",
        headers=AUTH,
        json={"chat_id": "wrNope", "member_id": "wmB", "delta": 5, "reason": "x"},
    )
    assert unknown.status_code == 404
    bad = await live.http.get(
        f"/admin/groups/{GROUP}/leaderboard", headers=AUTH, params={"month": "2026-13"}
    )
    assert bad.status_code == 422


REWARDS = """\
points:
  rewards:
    - {name: 资料包, cost: 100, stock: 5}
    - {name: 徽章, cost: 30}
"""


async def give(app: LiveApp, member: str, delta: int) -> None:
    await adjust_points(app, GROUP, member, delta)


async def redeem(app: LiveApp, member: str, reward: str) -> Any:
    return await redeem_in(app, GROUP, member, reward)


@pytest.fixture
async def shop(live: LiveApp, templates_dir: Path) -> LiveApp:
    path = templates_dir / "points_only.yaml"
    path.write_text(path.read_text(encoding="utf-8") + REWARDS, encoding="utf-8")
    await live.runtime.playbooks.reload_async()
    return live


async def test_redemption_beyond_balance_or_stock_is_refused_and_changes_nothing(
    shop: LiveApp,
) -> None:
    await give(shop, "wmA", 120)
    taken = await redeem(shop, "wmA", "资料包")
    assert taken.status_code == 201, taken.text
    assert (taken.json()["balance"], taken.json()["stock_left"]) == (20, 4)
    short = await redeem(shop, "wmA", "资料包")
    assert short.status_code == 409 and "balance too low" in short.json()["detail"]
    mine = await points_of(shop, "wmA")
    assert mine["balance"] == 20 and [e["reason"] for e in mine["entries"]] == ["redeem", "manual"]
    unknown = await redeem(shop, "wmA", "飞机")
    assert unknown.status_code == 422 and "资料包" in unknown.json()["detail"]
    badge = await redeem(shop, "wmA", "徽章")  # unlimited stock, still the balance
    assert badge.status_code == 409


async def test_concurrent_redemptions_never_overspend(shop: LiveApp, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent writers: PostgreSQL (SQLite has one writer)")
    members = [f"wmC{n:02d}" for n in range(20)]
    for member in members:
        await give(shop, member, 100)
    await give(shop, "wmRich", 250)
    answers = await asyncio.gather(*(redeem(shop, member, "资料包") for member in members))
    assert sorted(a.status_code for a in answers) == [201] * 5 + [409] * 15
    assert all("out of stock" in a.json()["detail"] for a in answers if a.status_code == 409)
    balances = [(await points_of(shop, m))["balance"] for m in members]
    assert sorted(balances) == [0] * 5 + [100] * 15
    # One member, five redemptions at once, enough points for two.
    rich = await asyncio.gather(*(redeem(shop, "wmRich", "徽章") for _ in range(5)))
    assert sorted(a.status_code for a in rich) == [201] * 5  # 5 x 30 = 150 of 250
    more = await asyncio.gather(*(redeem(shop, "wmRich", "徽章") for _ in range(5)))
    assert sorted(a.status_code for a in more) == [201] * 3 + [409] * 2  # 100 left: 3 more
    assert (await points_of(shop, "wmRich"))["balance"] == 10
