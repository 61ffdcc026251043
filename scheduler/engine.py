"""One engine for everything scheduled: claim what is due, run each item alone, record.

Every kind of scheduled work (a welcome batch, a touch step, the 早报 of a group for
a day, a periodic job such as retention) is a table of rows with a status and a
`due_at`. The engine claims due rows of each kind with the shared claim (SKIP
LOCKED on PostgreSQL, so replicas take disjoint rows), runs each in its own
savepoint so one bad row fails alone, and records the outcome in the transaction
that claimed it: a restart or a second replica neither loses nor doubles an item.

A kind whose work talks to the outside world (WeCom APIs, long deletes) returns an
`after_commit` follow-up: its row was claimed with a lease (its `due_at` moved to
the lease's end), so a crash during the follow-up makes it due again.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from storage.claim import claim_ids

log = logging.getLogger(__name__)

FollowUp = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class Outcome:
    """What running one due item came to. `deferred` puts it back with a new `due_at`."""

    status: str  # sent | skipped | deferred | done | failed | ...
    note: str = ""
    outbox_ids: tuple[int, ...] = ()
    due_again_at: datetime | None = None  # for deferred
    after_commit: FollowUp | None = None


def flushed(row: Any, *, status: str, note: str, queued: list[int], now: datetime) -> Outcome:
    """Record on a batch row (welcome batch, owner digest) how its flush went, and say
    so to the engine."""
    row.status = status
    row.flushed_at = now
    row.note = note
    row.outbox_id = queued[0] if queued else None
    return Outcome(status, note, tuple(queued))


@dataclass(frozen=True)
class DueContext:
    """What every kind may read: `at` is the instant judged (a `tick --at` may look
    ahead), `now` the real clock that stamps what is queued."""

    at: datetime
    now: datetime
    tz: Any
    playbooks: Any  # bot.config.playbooks.PlaybookSet; Any keeps the engine feature-free
    services: dict[str, Any] = field(default_factory=dict)


class DueKind(ABC):
    """A kind of scheduled work. Subclasses say where the rows are and how to run one."""

    name: ClassVar[str]
    model: ClassVar[Any]  # a mapped class with id, status and due_at
    ready_status: ClassVar[str] = "pending"
    claimed_status: ClassVar[str] = "claimed"
    # Which clock makes a row due: "at" (the judged instant, for member-facing work that
    # a `tick --at` rehearses) or "now" (housekeeping, which must never run ahead).
    due_by: ClassVar[Literal["at", "now"]] = "at"

    def order_by(self) -> Sequence[InstrumentedAttribute[Any]]:
        return (self.model.due_at, self.model.id)

    def due_condition(self, instant: datetime) -> ColumnElement[bool]:
        condition: ColumnElement[bool] = (self.model.status == self.ready_status) & (
            self.model.due_at <= instant
        )
        return condition

    def claim_values(self, ctx: DueContext) -> dict[str, Any]:
        return {"status": self.claimed_status}

    async def prepare(self, session: AsyncSession, ctx: DueContext) -> None:
        """Called before each claim (e.g. to create the rows of periodic jobs once)."""
        return None

    @abstractmethod
    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        """Decide and record one claimed row inside the claim's transaction."""

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        """Columns written when `run` raised (its savepoint is rolled back)."""
        return {"status": "failed"}

    async def after_failure(self, session: AsyncSession, row_id: int, ctx: DueContext) -> None:
        """Bookkeeping after a failed row (e.g. an enrollment whose last step failed)."""
        return None

    def defer(self, row: Any, outcome: Outcome) -> None:
        row.status = self.ready_status
        if outcome.due_again_at is not None:
            row.due_at = outcome.due_again_at


@dataclass
class DueReport:
    at: datetime
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    outbox_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, kind: str, status: str) -> None:
        bucket = self.by_kind.setdefault(kind, {})
        bucket[status] = bucket.get(status, 0) + 1

    @property
    def queued(self) -> int:
        return len(self.outbox_ids)

    # The two kinds people ask about most, by their old names (CLI, tests).
    @property
    def welcomes(self) -> dict[str, int]:
        return self.by_kind.get("welcome_batch", {})

    @property
    def steps(self) -> dict[str, int]:
        return self.by_kind.get("touch_step", {})


class DueEngine:
    def __init__(self, kinds: Sequence[DueKind], *, batch_size: int = 200) -> None:
        self.kinds = list(kinds)
        self.batch_size = batch_size

    async def run(self, sessions: async_sessionmaker[AsyncSession], ctx: DueContext) -> DueReport:
        """Run everything due, kind by kind, batch by batch."""
        report = DueReport(at=ctx.at)
        for kind in self.kinds:
            while True:
                follow_ups: list[tuple[int, FollowUp]] = []
                async with sessions() as session, session.begin():
                    claimed = await self._run_batch(session, kind, ctx, report, follow_ups)
                for row_id, follow_up in follow_ups:
                    await self._follow_up(kind, row_id, follow_up, report)
                if claimed < self.batch_size:
                    break
        return report

    async def _run_batch(
        self,
        session: AsyncSession,
        kind: DueKind,
        ctx: DueContext,
        report: DueReport,
        follow_ups: list[tuple[int, FollowUp]],
    ) -> int:
        instant = ctx.at if kind.due_by == "at" else ctx.now
        await kind.prepare(session, ctx)
        ids = await claim_ids(
            session,
            kind.model,
            kind.due_condition(instant),
            kind.order_by(),
            self.batch_size,
            kind.claim_values(ctx),
        )
        if not ids:
            return 0
        rows = (
            await session.execute(
                select(kind.model).where(kind.model.id.in_(ids)).order_by(*kind.order_by())
            )
        ).scalars()
        for row in list(rows):
            row_id: int = row.id
            try:
                # One broken row (a template that fails on real data) must not hold back
                # every other group's work: contain it in a savepoint.
                async with session.begin_nested():
                    outcome = await kind.run(session, row, ctx)
                    if outcome.status == "deferred":
                        kind.defer(row, outcome)
            except Exception as exc:
                log.exception("%s %s failed", kind.name, row_id)
                error = f"{type(exc).__name__}: {exc}"[:2000]
                await session.execute(
                    update(kind.model)
                    .where(kind.model.id == row_id)
                    .values(**kind.failed_values(error, ctx))
                )
                await kind.after_failure(session, row_id, ctx)
                report.count(kind.name, "failed")
                continue
            report.count(kind.name, outcome.status)
            report.outbox_ids.extend(outcome.outbox_ids)
            if outcome.after_commit is not None:
                follow_ups.append((row_id, outcome.after_commit))
            if outcome.note:
                log.info("%s %s: %s (%s)", kind.name, row_id, outcome.status, outcome.note)
        return len(ids)

    async def _follow_up(
        self, kind: DueKind, row_id: int, follow_up: FollowUp, report: DueReport
    ) -> None:
        """Work outside the claim's transaction; a failure leaves the lease to expire,
        and the item is due again then."""
        try:
            note = await follow_up()
        except Exception as exc:
            log.exception("%s %s: follow-up failed", kind.name, row_id)
            report.notes.append(f"{kind.name} {row_id}: {type(exc).__name__}: {exc}")
            report.count(kind.name, "failed")
            return
        if note:
            report.notes.append(f"{kind.name}: {note}")
