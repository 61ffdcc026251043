"""/admin/playbooks/validate and /reload never hold up the event loop: parsing and dry
renders run in a worker thread, and a reload waits for another one without blocking."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.api import admin_playbooks
from bot.config.playbooks import PlaybookSet, loader
from bot.sandbox.emulator.server import RunningEmulator
from tests.helpers import AUTH, LiveApp, configured_settings, live_app

GUARD_SECONDS = 10  # only so that a regression fails instead of hanging


class Gate:
    """Wraps load_playbooks: the first call waits in its worker thread until released."""

    def __init__(self, real: Callable[[Path], PlaybookSet]) -> None:
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()
        self._first = threading.Lock()

    def __call__(self, directory: Path) -> PlaybookSet:
        if self._first.acquire(blocking=False):  # only the first call is held
            self.entered.set()
            if not self.release.wait(GUARD_SECONDS):
                raise RuntimeError("never released: the event loop was blocked")
        return self.real(directory)

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, GUARD_SECONDS)


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[LiveApp]:
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    async with live_app(settings, background=False) as app:
        yield app


async def test_the_loop_serves_requests_while_a_validation_runs(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(admin_playbooks.load_playbooks)
    monkeypatch.setattr(admin_playbooks, "load_playbooks", gate)
    validating = asyncio.create_task(
        live.http.post("/admin/playbooks/validate", headers=AUTH, json={})
    )
    await gate.wait_entered()

    health = await live.http.get("/healthz")  # served while the validation is held
    assert health.status_code == 200
    assert not validating.done()

    gate.release.set()
    result = await validating
    assert result.status_code == 200 and result.json()["ok"] is True


async def test_a_reload_waits_for_a_running_one_without_blocking_the_loop(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = live.runtime.playbooks
    gate = Gate(loader.load_playbooks)
    monkeypatch.setattr(loader, "load_playbooks", gate)
    # The file watcher's reload, held inside its load.
    watcher = asyncio.create_task(store.reload_async())
    await gate.wait_entered()

    admin = asyncio.create_task(live.http.post("/admin/playbooks/reload", headers=AUTH))
    health = await live.http.get("/healthz")  # the admin reload waits; the loop does not
    assert health.status_code == 200
    assert not watcher.done() and not admin.done()

    gate.release.set()
    first = await watcher
    response = await admin
    assert first.ok and first.version == 2
    assert response.status_code == 200 and response.json()["version"] == 3
    assert store.version == 3


async def test_a_refused_reload_off_the_loop_keeps_the_last_good_set(
    live: LiveApp, templates_dir: Path
) -> None:
    store = live.runtime.playbooks
    before = store.current
    (templates_dir / "lead.yaml").write_text("extends: nowhere\n", encoding="utf-8")
    result = await store.reload_async()
    assert not result.ok and result.version == 1
    assert store.current is before
    assert any(issue.file == "lead.yaml" for issue in store.last_issues)
