"""PlaybookStore: a broken edit never replaces the last good set; file changes reload."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config.playbooks import PlaybookLoadError, PlaybookStore

GOOD = 'welcome:\n  text: "欢迎 {{ names }}"\n'
EDITED = 'welcome:\n  text: "欢迎新朋友 {{ names }}"\n'
BROKEN = 'welcome:\n  text: "欢迎 {{ names }}"\n  max_names: 0\n'


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "default.yaml").write_text(GOOD, encoding="utf-8")
    return tmp_path


def welcome_text(store: PlaybookStore) -> str:
    welcome = store.current.playbooks["default"].welcome
    assert welcome is not None
    return welcome.text


def test_first_load_failure_propagates(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(BROKEN, encoding="utf-8")
    with pytest.raises(PlaybookLoadError):
        PlaybookStore(tmp_path)


def test_broken_edit_keeps_the_last_good_set(directory: Path) -> None:
    clock = Clock()
    store = PlaybookStore(directory, clock=clock)
    good = store.current
    assert (store.version, store.loaded_at, store.last_error_at) == (1, clock.now, None)

    (directory / "default.yaml").write_text(BROKEN, encoding="utf-8")
    clock.now = clock.now.replace(hour=13)
    result = store.reload()

    assert not result.ok
    assert [str(i) for i in result.issues] == [
        "default.yaml:3:welcome.max_names: Input should be greater than or equal to 1 (got 0)"
    ]
    assert result.version == 1 and result.loaded_at.hour == 12
    assert store.current is good
    assert store.last_issues == result.issues
    assert store.last_error_at == clock.now


def test_valid_edit_is_picked_up(directory: Path) -> None:
    clock = Clock()
    store = PlaybookStore(directory, clock=clock)
    (directory / "default.yaml").write_text(BROKEN, encoding="utf-8")
    store.reload()

    (directory / "default.yaml").write_text(EDITED, encoding="utf-8")
    clock.now = clock.now.replace(hour=14)
    result = store.reload()

    assert result.ok and result.issues == []
    assert (result.version, store.version) == (2, 2)
    assert result.loaded_at == clock.now
    assert welcome_text(store) == "欢迎新朋友 {{ names }}"
    assert store.last_issues == []
    assert store.last_error_at is not None  # the history of the refusal stays


async def write(path: Path, text: str) -> None:
    await asyncio.to_thread(path.write_text, text, encoding="utf-8")


async def wait_for_version(store: PlaybookStore, version: int, path: Path, text: str) -> None:
    # The watcher may not be listening yet when the first write lands: rewrite
    # until it notices, instead of sleeping for a guessed start-up time.
    for attempt in range(100):
        if attempt % 10 == 0:
            await write(path, text + f"# {attempt}\n")
        await asyncio.sleep(0.05)
        if store.version >= version:
            return
    raise AssertionError(f"no reload to version {version}; still {store.version}")


async def test_watch_reloads_after_a_file_change(directory: Path) -> None:
    store = PlaybookStore(directory)
    stop = asyncio.Event()
    task = asyncio.create_task(store.watch(stop, debounce_ms=50))
    try:
        await asyncio.wait_for(
            wait_for_version(store, 2, directory / "default.yaml", EDITED), timeout=10
        )
        assert welcome_text(store) == "欢迎新朋友 {{ names }}"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_watch_refuses_a_broken_change_and_logs_it(
    directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = PlaybookStore(directory)
    stop = asyncio.Event()
    task = asyncio.create_task(store.watch(stop, debounce_ms=50))
    caplog.set_level(logging.WARNING, logger="bot.config.playbooks.loader")
    try:
        async with asyncio.timeout(10):
            while not store.last_issues:
                await write(directory / "default.yaml", BROKEN)
                await asyncio.sleep(0.2)
        assert store.version == 1
        assert welcome_text(store) == "欢迎 {{ names }}"
        assert "welcome.max_names" in caplog.text and "still serving version 1" in caplog.text
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_watch_ignores_files_that_are_not_playbooks(directory: Path) -> None:
    store = PlaybookStore(directory)
    stop = asyncio.Event()
    task = asyncio.create_task(store.watch(stop, debounce_ms=50))
    try:
        for _ in range(5):
            await write(directory / "notes.txt", "x")
            await write(directory / ".default.yaml.swp", "x")
            await asyncio.sleep(0.1)
        await wait_for_version(store, 2, directory / "default.yaml", EDITED)
        assert store.version == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
