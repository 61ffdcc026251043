"""Playbook edits under a running service: a bad edit keeps the old set and is reported;
a good edit takes effect without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.emulator.server import RunningEmulator
from tests.helpers import (
    AUTH,
    LiveApp,
    RunningClock,
    configured_settings,
    join_callback,
    live_app,
    sent_texts,
    wait_for,
)

GROUP = "wrReloadGroup"
OLD_LINE = "欢迎 {{ names }} 加入「{{ group.name }}」👋"


@pytest.fixture
def clock() -> RunningClock:
    return RunningClock()


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, clock: RunningClock
) -> AsyncIterator[LiveApp]:
    emulator.state.upsert_group(GROUP, name="热更新群", owner="o")
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    async with live_app(settings, background=True, clock=clock) as app:
        await app.http.put(
            f"/admin/groups/{GROUP}",
            headers=AUTH,
            json={"name": "热更新群", "channel": {"type": "webhook", "key": "rk"}},
        )
        yield app


async def welcome_text(
    live: LiveApp, emulator: RunningEmulator, clock: RunningClock, member: str
) -> str:
    """Join `member` and return the welcome the running service sends for it."""
    clock.advance(300)  # past the previous welcome's min_interval_seconds
    emulator.state.add_members(GROUP, [{"userid": member, "name": member}])
    before = len(sent_texts(emulator))
    params, body = join_callback(GROUP, [member])
    await live.post_callback(params, body)
    await wait_for(lambda: len(sent_texts(emulator)) > before, within=8)
    return sent_texts(emulator)[-1]


async def test_bad_edit_is_refused_and_reported_good_edit_applies(
    live: LiveApp, emulator: RunningEmulator, templates_dir: Path, clock: RunningClock
) -> None:
    default = templates_dir / "default.yaml"
    original = default.read_text(encoding="utf-8")
    assert OLD_LINE in original
    version = live.runtime.playbooks.version

    broken = original.replace('  end: "08:00"', '  end: "25:00"')
    default.write_text(broken, encoding="utf-8")

    async def reported() -> bool:
        body = (await live.http.get("/admin/playbooks", headers=AUTH)).json()
        return bool(body["issues"])

    await wait_for(reported, within=10)
    body = (await live.http.get("/admin/playbooks", headers=AUTH)).json()
    assert any(
        issue.startswith("default.yaml:") and "quiet_hours.end" in issue for issue in body["issues"]
    )
    assert body["version"] == version
    ready = (await live.http.get("/readyz")).json()
    assert ready["checks"]["templates"].startswith("stale")
    assert "欢迎 wmA 加入" in await welcome_text(live, emulator, clock, "wmA")  # old behaviour

    default.write_text(original.replace(OLD_LINE, "热烈欢迎 {{ names }} 🎉"), encoding="utf-8")
    await wait_for(lambda: live.runtime.playbooks.version > version, within=10)
    assert (await live.http.get("/admin/playbooks", headers=AUTH)).json()["issues"] == []
    assert (await welcome_text(live, emulator, clock, "wmB")).startswith("热烈欢迎 wmB")


async def test_validate_and_reload_endpoints(live: LiveApp, templates_dir: Path) -> None:
    ok = await live.http.post("/admin/playbooks/validate", headers=AUTH, json={})
    assert ok.json()["ok"] is True and "default" in ok.json()["playbooks"]
    proposed = {"files": {"camp.yaml": "extends: default\nwelcome:\n  max_names: 0\n"}}
    bad = (await live.http.post("/admin/playbooks/validate", headers=AUTH, json=proposed)).json()
    assert bad["ok"] is False and any("welcome.max_names" in i for i in bad["issues"])
    assert "max_names: 0" not in (templates_dir / "camp.yaml").read_text(encoding="utf-8")
    sneaky = {"files": {"../evil.yaml": "x: 1"}}
    assert (
        await live.http.post("/admin/playbooks/validate", headers=AUTH, json=sneaky)
    ).status_code == 422

    reloaded = await live.http.post("/admin/playbooks/reload", headers=AUTH)
    assert reloaded.status_code == 200 and reloaded.json()["ok"] is True
    (templates_dir / "lead.yaml").write_text("extends: nowhere\n", encoding="utf-8")
    refused = await live.http.post("/admin/playbooks/reload", headers=AUTH)
    assert refused.status_code == 422
    assert any(i.startswith("lead.yaml:") for i in refused.json()["issues"])
    listed = (await live.http.get("/admin/playbooks", headers=AUTH)).json()
    names = {p["name"] for p in listed["playbooks"]}
    assert {"default", "new_user", "camp", "delivery", "fans", "lead"} <= names
    detail = (await live.http.get("/admin/playbooks/camp", headers=AUTH)).json()
    assert detail["applies_to"]["tags"] == ["训练营"]
    assert (await live.http.get("/admin/playbooks/nope", headers=AUTH)).status_code == 404
