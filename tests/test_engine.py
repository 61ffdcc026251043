"""The due-work engine and the executor, on their own: periodic jobs, failures, Stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config.playbooks import load_playbooks
from handlers.core.actions import Action, Note, QueueGroupText, Stop
from handlers.core.context import Context
from handlers.core.events import GroupCreated
from handlers.core.executor import Executor
from handlers.core.registry import Registry
from scheduler.engine import DueContext, DueEngine
from scheduler.periodic import FAILED_RETRY, PeriodicJob, PeriodicKind
from storage.models import Group, OutboxItem, ScheduledJob
from tests.helpers import Clock

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def due_ctx(clock: Clock, templates_dir: Path) -> DueContext:
    return DueContext(at=clock(), now=clock(), tz=SH, playbooks=load_playbooks(templates_dir))


async def job_row(sessions: async_sessionmaker[AsyncSession], name: str) -> ScheduledJob:
    async with sessions() as session:
        row = (
            await session.execute(select(ScheduledJob).where(ScheduledJob.name == name))
        ).scalar_one()
    return row


async def test_a_periodic_job_runs_once_across_replicas_and_then_waits(
    sessions: async_sessionmaker[AsyncSession], templates_dir: Path
) -> None:
    clock = Clock(START)
    runs: list[str] = []

    async def work() -> str:
        runs.append("ran")
        await asyncio.sleep(0)
        return "did it"

    def replica() -> DueEngine:
        job = PeriodicJob("retention", timedelta(hours=1), work)
        return DueEngine([PeriodicKind([job], sessions, clock)])

    one, two = replica(), replica()
    ctx = due_ctx(clock, templates_dir)
    await asyncio.gather(one.run(sessions, ctx), two.run(sessions, ctx))
    assert runs == ["ran"]
    row = await job_row(sessions, "retention")
    assert row.status == "idle" and row.last_result == "did it"
    assert row.due_at == START + timedelta(hours=1)
    clock.advance(1800)
    await one.run(sessions, due_ctx(clock, templates_dir))
    assert runs == ["ran"]  # not due yet
    clock.advance(1800)
    await two.run(sessions, due_ctx(clock, templates_dir))
    assert runs == ["ran", "ran"]


async def test_a_tick_ahead_never_runs_housekeeping_early(
    sessions: async_sessionmaker[AsyncSession], templates_dir: Path
) -> None:
    clock = Clock(START)
    runs: list[datetime] = []

    async def work() -> str:
        runs.append(clock())
        return ""

    engine = DueEngine(
        [PeriodicKind([PeriodicJob("retention", timedelta(hours=1), work)], sessions, clock)]
    )
    await engine.run(sessions, due_ctx(clock, templates_dir))
    ahead = DueContext(
        at=clock() + timedelta(days=3),
        now=clock(),
        tz=SH,
        playbooks=load_playbooks(templates_dir),
    )
    await engine.run(sessions, ahead)
    assert runs == [START]


async def test_a_failing_job_is_retried_soon_and_its_error_kept(
    sessions: async_sessionmaker[AsyncSession], templates_dir: Path
) -> None:
    clock = Clock(START)
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database was busy")
        return "ok"

    engine = DueEngine(
        [PeriodicKind([PeriodicJob("sync", timedelta(hours=6), flaky)], sessions, clock)]
    )
    report = await engine.run(sessions, due_ctx(clock, templates_dir))
    assert report.by_kind["periodic"]["failed"] == 1
    row = await job_row(sessions, "sync")
    assert row.last_error == "RuntimeError: database was busy"
    assert row.due_at == START + FAILED_RETRY
    clock.advance(FAILED_RETRY.total_seconds())
    await engine.run(sessions, due_ctx(clock, templates_dir))
    row = await job_row(sessions, "sync")
    assert len(calls) == 2 and row.last_error is None and row.last_result == "ok"


async def test_a_job_whose_runner_died_is_due_again_when_its_lease_ends(
    sessions: async_sessionmaker[AsyncSession], templates_dir: Path
) -> None:
    clock = Clock(START)
    runs: list[int] = []

    async def work() -> str:
        runs.append(1)
        return ""

    job = PeriodicJob("sync", timedelta(hours=6), work, lease=timedelta(minutes=10))
    kind = PeriodicKind([job], sessions, clock)
    ctx = due_ctx(clock, templates_dir)
    async with sessions() as session, session.begin():  # claimed, then the process died
        await kind.prepare(session, ctx)
        row = (await session.execute(select(ScheduledJob))).scalar_one()
        row.status, row.due_at = "running", START + timedelta(minutes=10)
    engine = DueEngine([kind])
    await engine.run(sessions, ctx)
    assert runs == []  # still leased
    clock.advance(601)
    await engine.run(sessions, due_ctx(clock, templates_dir))
    assert runs == [1]


async def test_the_executor_applies_a_stopping_handlers_effects_then_stops(
    sessions: async_sessionmaker[AsyncSession], templates_dir: Path
) -> None:
    executor = Executor()
    registry = Registry(executor)
    seen: list[str] = []

    async def first(event: Any, ctx: Context) -> list[Action]:
        seen.append("first")
        return [Stop("a rule took it"), QueueGroupText("wrE", "注意群规", origin="rules")]

    async def later(event: Any, ctx: Context) -> list[Action]:
        seen.append("later")
        return [Note("never")]

    registry.add("group_created", later, group=20)
    registry.add("group_created", first, group=10)
    now = START
    async with sessions() as session, session.begin():
        session.add(
            Group(
                chat_id="wrE",
                name="E",
                tags=[],
                channel_type="webhook",
                channel_config={"key": "k"},
                origin="admin",
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
        ctx = Context(
            session=session,
            now=now,
            tz=SH,
            playbooks=load_playbooks(templates_dir),
            source_id="inbox:9",
        )
        ran = await registry.dispatch(
            GroupCreated(source="app", chat_id="wrE", occurred_at=now), ctx
        )
    assert ran == ["first"] and seen == ["first"]
    async with sessions() as session:
        (row,) = (await session.execute(select(OutboxItem))).scalars().all()
    assert row.dedup_key == "inbox:9:rules"  # the source event gives the natural key
    assert "stopped: a rule took it" in ctx.notes


def test_the_executor_refuses_actions_it_does_not_know() -> None:
    executor = Executor()
    with pytest.raises(ValueError, match="already has an applier"):
        executor.register(Note, lambda action, ctx: asyncio.sleep(0))

    class Unknown(Action):
        pass

    with pytest.raises(TypeError, match="no applier registered for Unknown"):
        asyncio.run(executor.execute([Unknown()], None))  # type: ignore[arg-type]
