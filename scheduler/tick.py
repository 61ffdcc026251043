"""One tick: claim the scheduled work due at an instant and turn it into outbox rows.

The database is the source of truth: the tick reads only due rows (indexed by
status and due time), claims them inside the transaction that records the result,
and so a restart or a second replica neither loses nor doubles a step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config.playbooks import PlaybookSet
from handlers.features.touch import run_step
from handlers.features.welcome import flush_batch
from storage.claim import claim_ids
from storage.models import TouchStep, WelcomeBatch

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    at: datetime
    welcomes: dict[str, int] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    outbox_ids: list[int] = field(default_factory=list)

    def count(self, bucket: dict[str, int], status: str) -> None:
        bucket[status] = bucket.get(status, 0) + 1

    @property
    def queued(self) -> int:
        return len(self.outbox_ids)


async def _welcomes(
    session: AsyncSession,
    report: TickReport,
    playbooks: PlaybookSet,
    now: datetime,
    tz: Any,
    limit: int,
) -> int:
    ids = await claim_ids(
        session,
        WelcomeBatch,
        (WelcomeBatch.status == "open") & (WelcomeBatch.due_at <= report.at),
        [WelcomeBatch.due_at, WelcomeBatch.id],
        limit,
        {"status": "flushing"},
    )
    for batch in (
        await session.execute(select(WelcomeBatch).where(WelcomeBatch.id.in_(ids)))
    ).scalars():
        batch_id = batch.id
        try:
            # One broken batch (a template that fails on real data) must not hold back
            # every other group's welcome and touch steps: contain it in a savepoint.
            async with session.begin_nested():
                result = await flush_batch(
                    session, batch, playbooks=playbooks, now=now, at=report.at, tz=tz
                )
                if result.status == "deferred":
                    batch.status = "open"
        except Exception as exc:
            log.exception("welcome batch %s failed", batch_id)
            await session.execute(
                update(WelcomeBatch)
                .where(WelcomeBatch.id == batch_id)
                .values(status="failed", flushed_at=now, note=f"{type(exc).__name__}: {exc}"[:2000])
            )
            report.count(report.welcomes, "failed")
            continue
        report.count(report.welcomes, result.status)
        report.outbox_ids.extend(result.outbox_ids)
        log.info("welcome batch %s: %s (%s)", batch_id, result.status, result.note)
    return len(ids)


async def _steps(
    session: AsyncSession,
    report: TickReport,
    playbooks: PlaybookSet,
    now: datetime,
    tz: Any,
    limit: int,
) -> int:
    ids = await claim_ids(
        session,
        TouchStep,
        (TouchStep.status == "pending") & (TouchStep.due_at <= report.at),
        [TouchStep.due_at, TouchStep.step_index, TouchStep.id],
        limit,
        {"status": "claimed"},
    )
    if not ids:
        return 0
    steps = (
        await session.execute(
            select(TouchStep)
            .where(TouchStep.id.in_(ids))
            .order_by(TouchStep.due_at, TouchStep.step_index, TouchStep.id)
        )
    ).scalars()
    for step in list(steps):
        step_id = step.id
        try:
            async with session.begin_nested():  # see _welcomes: one bad step stays one
                outcome = await run_step(
                    session, step, playbooks=playbooks, at=report.at, now=now, tz=tz
                )
                if outcome.status == "deferred":
                    step.status = "pending"
        except Exception as exc:
            log.exception("touch step %s failed", step_id)
            await session.execute(
                update(TouchStep)
                .where(TouchStep.id == step_id)
                .values(status="failed", done_at=now, reason=f"{type(exc).__name__}: {exc}"[:2000])
            )
            report.count(report.steps, "failed")
            continue
        if outcome.status == "sent" and step.outbox_id is not None:
            report.outbox_ids.append(step.outbox_id)
        report.count(report.steps, outcome.status)
    return len(ids)


async def run_tick(
    sessions: async_sessionmaker[AsyncSession],
    playbooks: PlaybookSet,
    *,
    at: datetime,
    now: datetime,
    tz: Any,
    batch_size: int = 200,
) -> TickReport:
    """Run everything due at `at` (the real clock `now` stamps what is queued)."""
    report = TickReport(at=at)
    for work in (_welcomes, _steps):
        while True:
            async with sessions() as session, session.begin():
                claimed = await work(session, report, playbooks, now, tz, batch_size)
            if claimed < batch_size:
                break
    return report
