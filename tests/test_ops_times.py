"""Times shown to people are in BOT_TIMEZONE, ISO 8601 with the offset (issue 7)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.logs import LOG_FORMAT, LocalTimeFormatter
from bot.sandbox.emulator.server import RunningEmulator
from bot.tick_report import tick_lines
from bot.timefmt import local_iso
from tests.conftest import SHIPPED_TEMPLATES, make_settings
from tests.helpers import AUTH, Clock, configured_settings, live_app

INSTANT = datetime(2026, 11, 30, 6, 5, tzinfo=UTC)


def test_local_iso_is_the_zone_with_its_offset() -> None:
    assert local_iso(INSTANT, ZoneInfo("Asia/Shanghai")) == "2026-11-30T14:05:00+08:00"
    assert local_iso(INSTANT, ZoneInfo("America/New_York")) == "2026-11-30T01:05:00-05:00"
    # What the database holds is UTC, naive on SQLite.
    naive = INSTANT.replace(tzinfo=None)
    assert local_iso(naive, ZoneInfo("Asia/Shanghai")) == "2026-11-30T14:05:00+08:00"
    precise = INSTANT.replace(microsecond=123456)
    assert local_iso(precise, ZoneInfo("Asia/Shanghai")) == "2026-11-30T14:05:00+08:00"
    assert (
        local_iso(precise, ZoneInfo("Asia/Shanghai"), precision="auto")
        == "2026-11-30T14:05:00.123456+08:00"
    )


def test_log_lines_are_stamped_in_bot_timezone() -> None:
    formatter = LocalTimeFormatter(LOG_FORMAT, ZoneInfo("Asia/Shanghai"))
    record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    record.created = INSTANT.timestamp()
    assert formatter.format(record) == "2026-11-30T14:05:00+08:00 INFO bot.x hello there"


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Asia/Shanghai", "2026-11-30T14:05:00+08:00"),
        ("America/New_York", "2026-11-30T01:05:00-05:00"),
    ],
)
async def test_admin_api_shows_times_in_bot_timezone(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, zone: str, shown: str
) -> None:
    settings = configured_settings(
        database_url=database_url,
        templates_dir=templates_dir,
        api_base=emulator.base_url,
        bot_timezone=zone,
    )
    async with live_app(settings, background=False, clock=Clock(INSTANT)) as live:
        put = await live.http.put(
            "/admin/groups/wrTimes", headers=AUTH, json={"name": "时间群", "tags": []}
        )
        assert put.status_code == 200, put.text
        assert put.json()["created_at"] == shown
        assert put.json()["updated_at"] == shown
        assert put.json()["dismissed_at"] is None
        listed = await live.http.get("/admin/groups", headers=AUTH)
        assert [g["created_at"] for g in listed.json()] == [shown]
        reload = await live.http.post("/admin/playbooks/reload", headers=AUTH)
        playbooks = await live.http.get("/admin/playbooks", headers=AUTH)
        for value in (reload.json()["loaded_at"], playbooks.json()["loaded_at"]):
            assert _in_zone(value, zone), value


def _in_zone(value: str, zone: str) -> bool:
    """An ISO time whose offset is the zone's own at that instant."""
    parsed = datetime.fromisoformat(value)
    return parsed.utcoffset() == parsed.astimezone(ZoneInfo(zone)).utcoffset()


def test_tick_summary_is_readable_lines_not_a_dict() -> None:
    report = {
        "at": "2026-11-30T21:00:00+08:00",
        "welcomes": {"sent": 2},
        "steps": {"sent": 1, "skipped": 3, "deferred": 1},
        "queued": 3,
        "sent": 2,
        "waiting": 1,
        "failed": 0,
    }
    lines = tick_lines(report)
    assert lines == [
        "时间点：2026-11-30T21:00:00+08:00",
        "欢迎批次：发出 2 批",
        "触达步骤：发出 1 步，跳过 3 步，顺延 1 步",
        "消息：排队 3 条，已发出 2 条，等待 1 条，失败 0 条",
    ]
    idle = tick_lines({**report, "welcomes": {}, "steps": {}, "queued": 0})
    assert idle[1:] == ["欢迎批次：无", "触达步骤：无", "消息：没有新消息"]
    assert not any("{" in line for line in lines + idle)


async def test_admin_sandbox_sent_says_when_in_bot_timezone(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        sop_templates_dir=SHIPPED_TEMPLATES,
        bot_timezone="Asia/Shanghai",
    )
    async with live_app(settings, background=False) as live:
        live.app.state.emulator.wall_clock = lambda: INSTANT.timestamp()
        live.app.state.emulator.record("webhook/send", "k", {"text": {"content": "hi"}})
        auth = {"Authorization": f"Bearer {live.app.state.admin_token}"}
        records = (await live.http.get("/admin/sandbox/sent", headers=auth)).json()
    assert records[-1]["sent_at"] == "2026-11-30T14:05:00+08:00"
    assert records[-1]["at"] == INSTANT.timestamp()
