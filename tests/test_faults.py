"""Database faults: every background loop survives them, and readiness tells the truth."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select, text

from bot.metrics import Metrics
from bot.sandbox.emulator import EmulatorState
from bot.sandbox.emulator.server import start_emulator_in_thread
from bot.workers.health import LoopHealth
from bot.workers.polling import PollingWorker
from storage import db
from storage.models import InboxItem, OutboxItem
from tests.conftest import SHIPPED_TEMPLATES, TEST_CORP_ID, TEST_CORP_SECRET
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
from tests.procs import server, wait_until
from tests.test_end_to_end import configured_env


class FlakyWorker(PollingWorker):
    """Its idle wait fails like a query on a dropped connection, `failures` times."""

    name = "flaky"
    backoff_base = 0.01

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.pending = 0
        self.handled = 0
        self.done = asyncio.Event()

    async def run_once(self) -> int:
        if self.pending:
            self.pending -= 1
            self.handled += 1
            self.done.set()
            return 1
        return 0

    async def idle_wait(self) -> float:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("connection was closed in the middle of operation")
        return 0.01


async def test_a_failing_idle_wait_does_not_end_the_loop() -> None:
    health = LoopHealth(
        clock=lambda: __import__("datetime").datetime.now(__import__("datetime").UTC),
        metrics=Metrics(),
    )
    worker = FlakyWorker(failures=3)
    worker.health = health
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    await wait_for(lambda: worker.failures == 0)
    worker.pending = 1
    worker.wake()
    await asyncio.wait_for(worker.done.wait(), timeout=5)
    assert worker.handled == 1
    assert health.loops["flaky"].errors == 3
    await wait_for(lambda: health.loops["flaky"].failures_in_a_row == 0)
    stop.set()
    worker.wake()
    await asyncio.wait_for(task, timeout=5)
    assert health.problems(stale_after=60) == {"flaky": "not running"}


def test_a_loop_without_good_rounds_is_reported_stale() -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2026, 11, 25, tzinfo=UTC)]
    health = LoopHealth(clock=lambda: now[0])
    health.started("outbox dispatch")
    health.started("playbook watcher", rounds=False)
    health.succeeded("outbox dispatch")
    now[0] += timedelta(seconds=30)
    assert health.problems(stale_after=60) == {}
    health.failed("outbox dispatch", OSError("connection refused"))
    now[0] += timedelta(seconds=31)
    problems = health.problems(stale_after=60)
    assert list(problems) == ["outbox dispatch"]
    assert (
        "61 s" in problems["outbox dispatch"]
        and "connection refused" in problems["outbox dispatch"]
    )


@pytest.fixture
async def running(
    database_url: str, templates_dir: Path
) -> AsyncIterator[tuple[LiveApp, RunningClock]]:
    fake = start_emulator_in_thread(
        EmulatorState(corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET)
    )
    clock = RunningClock()
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=fake.base_url
    )
    try:
        async with live_app(settings, clock=clock) as live:
            yield live, clock
    finally:
        fake.stop()


async def test_readyz_names_a_loop_that_stopped_working(
    running: tuple[LiveApp, RunningClock],
) -> None:
    live, clock = running
    await wait_for(lambda: live.runtime.health.loops["outbox dispatch"].last_success is not None)
    assert (await live.http.get("/readyz")).status_code == 200
    dispatcher = live.runtime.dispatcher
    healthy = dispatcher.run_once

    async def broken() -> int:
        raise ConnectionRefusedError("the database is gone")

    dispatcher.run_once = broken  # type: ignore[method-assign]
    dispatcher.wake()
    await wait_for(lambda: live.runtime.health.loops["outbox dispatch"].errors > 0)
    clock.advance(61)
    answer = await live.http.get("/readyz")
    assert answer.status_code == 503
    loops = answer.json()["checks"]["loops"]
    assert "outbox dispatch" in loops and "the database is gone" in loops
    metrics = (await live.http.get("/metrics")).text
    assert 'wecom_loop_errors_total{loop="outbox dispatch"}' in metrics
    assert 'wecom_loop_last_success_age_seconds{loop="outbox dispatch"}' in metrics
    dispatcher.run_once = healthy  # type: ignore[method-assign]

    async def ready() -> bool:
        return (await live.http.get("/readyz")).status_code == 200

    await wait_for(ready, within=10)


async def _terminate_other_connections(url: str) -> int:
    engine = db.make_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


async def _rows(url: str) -> tuple[list[InboxItem], list[OutboxItem]]:
    engine = db.make_engine(url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            inbox = list((await session.execute(select(InboxItem))).scalars())
            outbox = list((await session.execute(select(OutboxItem))).scalars())
            return inbox, outbox
    finally:
        await engine.dispose()


def test_killing_the_database_connections_mid_load_loses_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """pg_terminate_backend on every server connection while callbacks flow: every
    acknowledged callback is processed, every queued welcome sent, /readyz recovers."""
    if not database_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend needs PostgreSQL (set TEST_DATABASE_URL)")
    templates = tmp_path / "sop_templates"
    shutil.copytree(SHIPPED_TEMPLATES, templates)
    default = yaml.safe_load((templates / "default.yaml").read_text(encoding="utf-8"))
    default["welcome"]["min_interval_seconds"] = 0  # one welcome per join: easy to count
    default["welcome"]["batch_window_seconds"] = 1
    default.pop("touch_sequence", None)
    (templates / "default.yaml").write_text(yaml.safe_dump(default, allow_unicode=True))
    fake = start_emulator_in_thread(
        EmulatorState(corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET)
    )
    groups = [f"wrFault{g}" for g in range(4)]
    members = {f"wmF{i:02d}": f"成员{i:02d}" for i in range(24)}
    for index, chat_id in enumerate(groups):
        fake.state.upsert_group(
            chat_id,
            name=f"故障演练群{index}",
            owner="owner1",
            members=[
                {"userid": uid, "name": name}
                for n, (uid, name) in enumerate(members.items())
                if n % len(groups) == index
            ],
        )
    env = configured_env(tmp_path, api_base=fake.base_url, database_url=database_url)
    acknowledged: list[str] = []
    try:
        with server(env, tmp_path) as srv:
            for chat_id in groups:
                put = httpx.put(
                    f"{srv.url}/admin/groups/{chat_id}",
                    headers=AUTH,
                    json={"name": chat_id, "channel": {"type": "webhook", "key": f"k-{chat_id}"}},
                )
                assert put.status_code == 200
            for n, member in enumerate(members):
                if n % 4 == 0:
                    assert asyncio.run(_terminate_other_connections(database_url)) >= 1
                params, body = join_callback(groups[n % len(groups)], [member])
                answer = httpx.post(
                    f"{srv.url}/wecom/callback", params=params, content=body, timeout=10
                )
                if answer.status_code == 200 and answer.text == "success":
                    acknowledged.append(members[member])
            assert len(acknowledged) >= len(members) // 2

            def everyone_welcomed() -> bool:
                welcomed = "\n".join(sent_texts(fake))
                return all(name in welcomed for name in acknowledged)

            wait_until(everyone_welcomed, timeout=60, interval=0.5)
            inbox, outbox = asyncio.run(_rows(database_url))
            assert len(inbox) >= len(acknowledged)
            assert {row.status for row in inbox} == {"done"}
            assert {row.status for row in outbox} == {"sent"}
            wait_until(lambda: httpx.get(f"{srv.url}/readyz").status_code == 200, timeout=30)
            ready = httpx.get(f"{srv.url}/readyz").json()
            assert ready["checks"]["loops"] == "ok", json.dumps(ready, ensure_ascii=False)
    finally:
        fake.stop()
