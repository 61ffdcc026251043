"""Periodic jobs (retention, welcome-template sync, housekeeping) as due work.

Each job is a row in `scheduled_jobs` with the time it is next due. The engine
claims it like any other due item, so exactly one replica runs a job at a time,
and the claim moves `due_at` to the end of a lease: if the process dies during
the job, the job is due again when the lease ends. Jobs are judged by the real
clock (`due_by = "now"`): a `tick --at` next week must not run retention early.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.engine import DueContext, DueKind, Outcome
from storage.models import ScheduledJob

log = logging.getLogger(__name__)

FAILED_RETRY = timedelta(minutes=1)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every: timedelta
    run: Callable[[], Awaitable[str]]  # returns a short note of what it did
    lease: timedelta = timedelta(minutes=10)  # longer than the job can take


class PeriodicKind(DueKind):
    name = "periodic"
    model = ScheduledJob
    ready_status = "idle"
    claimed_status = "running"
    due_by = "now"

    def __init__(
        self,
        jobs: Sequence[PeriodicJob],
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
    ) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.sessions = sessions
        self.clock = clock
        self._rows_ensured = False

    def due_condition(self, instant: datetime) -> ColumnElement[bool]:
        # Any status: a `running` row whose lease ran out (its holder died) is due again.
        condition: ColumnElement[bool] = (self.model.due_at <= instant) & self.model.name.in_(
            list(self.jobs)
        )
        return condition

    def claim_values(self, ctx: DueContext) -> dict[str, Any]:
        lease = max((job.lease for job in self.jobs.values()), default=timedelta(minutes=10))
        return {"status": self.claimed_status, "due_at": ctx.now + lease}

    async def prepare(self, session: AsyncSession, ctx: DueContext) -> None:
        """A row per registered job, due at once the first time."""
        if self._rows_ensured:
            return
        existing = set((await session.execute(select(ScheduledJob.name))).scalars())
        for name in self.jobs:
            if name in existing:
                continue
            try:
                async with session.begin_nested():
                    session.add(ScheduledJob(name=name, status="idle", due_at=ctx.now))
            except IntegrityError:
                pass  # another replica created it at the same moment
        self._rows_ensured = True

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        job = self.jobs[row.name]
        row.last_started_at = ctx.now
        row_id: int = row.id

        async def execute() -> str:
            return await self._execute(job, row_id)

        return Outcome("started", after_commit=execute)

    async def _execute(self, job: PeriodicJob, row_id: int) -> str:
        try:
            note = await job.run()
        except Exception as exc:
            await self._finish(
                row_id,
                due_at=self.clock() + min(job.every, FAILED_RETRY),
                result=None,
                error=f"{type(exc).__name__}: {exc}"[:2000],
            )
            raise
        await self._finish(row_id, due_at=self.clock() + job.every, result=note, error=None)
        return f"{job.name}: {note}" if note else ""

    async def _finish(
        self, row_id: int, *, due_at: datetime, result: str | None, error: str | None
    ) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(ScheduledJob)
                .where(ScheduledJob.id == row_id)
                .values(
                    status=self.ready_status,
                    due_at=due_at,
                    last_finished_at=self.clock(),
                    last_result=result,
                    last_error=error,
                )
            )

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": self.ready_status, "due_at": ctx.now + FAILED_RETRY, "last_error": error}


async def make_due_now(session: AsyncSession, name: str, *, now: datetime) -> None:
    """Run a job at the next tick (e.g. template sync after a playbook reload)."""
    await session.execute(
        update(ScheduledJob)
        .where(ScheduledJob.name == name, ScheduledJob.status == "idle")
        .values(due_at=now)
    )
