"""Processes the inbox: enrich events with group details, run the handlers, mark done.

A batch of events (the heads of chats, and runs of busy chats) runs in one
transaction with its "done" marks, so an event's effects (state changes and the
outbox rows they queue) happen exactly once, and a busy group costs a handful of
transactions per hundred events instead of three per event.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config.playbooks import PlaybookSet
from bot.directory import GroupDirectory, GroupSnapshot, enrich
from bot.metrics import Metrics
from bot.wecom.errors import WeComError
from bot.workers.claims import new_token
from bot.workers.polling import PollingWorker
from handlers.core.context import BatchMemo, Context, Deferred
from handlers.core.events import Event, GroupCreated, GroupUpdated, MemberJoined, event_from_json
from handlers.core.registry import Registry
from storage import inbox
from storage.groups import apply_snapshot
from storage.inbox import COLS

log = logging.getLogger(__name__)

# After this many transport failures, welcome with ids rather than late: the batch
# window is seconds long, and a name is worth less than a timely welcome.
ENRICH_RETRIES = 2


# A handler that fails makes the batch run again without that event (and what follows
# it in its chat); after this many re-runs the rest goes one event per transaction, so
# a handler bug that fails every event costs a little more, never O(batch²).
MAX_BATCH_RERUNS = 2


class ClaimLost(Exception):
    """Another worker holds the inbox row now; this worker's changes must not commit."""


class HandlerFailed(Exception):
    def __init__(self, item_id: int, cause: Exception) -> None:
        super().__init__(item_id, cause)
        self.item_id = item_id
        self.cause = cause


@dataclass(frozen=True)
class BatchOutcome:
    """What a processed batch changed, so only the loops that care are woken."""

    events: int
    queued: int  # outbox rows written
    applied: frozenset[str]  # kinds of actions applied

    def __add__(self, other: BatchOutcome) -> BatchOutcome:
        return BatchOutcome(
            self.events + other.events, self.queued + other.queued, self.applied | other.applied
        )


NOTHING = BatchOutcome(0, 0, frozenset())


def needs_snapshot(event: Event) -> bool:
    return bool(event.chat_id) and isinstance(event, MemberJoined | GroupCreated | GroupUpdated)


@dataclass(frozen=True)
class Claimed:
    """What the worker needs of a claimed inbox row (not the raw payload)."""

    id: int
    chat_id: str | None
    attempts: int
    event: dict[str, Any] | None


@dataclass
class Work:
    """One claimed event, ready to run: parsed, with its group's details if it needs them."""

    item: Claimed
    event: Event | None = None
    snapshot: GroupSnapshot | None = None
    error: Exception | None = None  # preparing it failed: it is retried later


@dataclass
class Plan:
    """What one transaction does with a batch: run these events, record these failures,
    give back these rows (they wait in a chat behind a failure)."""

    run: list[Work] = field(default_factory=list)
    failed: list[tuple[Work, Exception]] = field(default_factory=list)
    release: list[int] = field(default_factory=list)


def plan_batch(work: Sequence[Work], failures: dict[int, Exception]) -> Plan:
    """Keep each chat's order: once an event of a chat fails, the chat's later events
    of this batch are not run (they are given back and wait for it)."""
    plan = Plan()
    blocked: set[str] = set()
    for entry in work:
        chat = entry.item.chat_id
        if chat is not None and chat in blocked:
            plan.release.append(entry.item.id)
            continue
        error = failures.get(entry.item.id, entry.error)
        if error is not None:
            plan.failed.append((entry, error))
            if chat is not None:
                blocked.add(chat)
            continue
        plan.run.append(entry)
    return plan


class InboxProcessor(PollingWorker):
    name = "inbox"
    # Events that trickle in (callbacks arriving while a batch runs) are taken a
    # quarter of a second later in one batch instead of a few at a time: the batch's
    # transactions and commits are paid once for all of them (measured: +10-15%
    # callbacks acknowledged under load against 0.1 s). Welcome batches wait seconds
    # anyway; an idle worker is woken at once.
    pace_seconds = 0.25

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: Registry,
        directory: GroupDirectory,
        *,
        playbooks: Callable[[], PlaybookSet],
        tz: Any,
        metrics: Metrics,
        clock: Callable[[], datetime],
        default_channel: Callable[[GroupSnapshot], tuple[str, dict[str, Any]]],
        on_processed: Callable[[BatchOutcome], None] = lambda outcome: None,
        max_attempts: int = 8,
        lease: timedelta = timedelta(seconds=60),
        batch_size: int = 200,
    ) -> None:
        super().__init__()
        self.sessions = sessions
        self.registry = registry
        self.directory = directory
        self.playbooks = playbooks
        self.tz = tz
        self.metrics = metrics
        self.clock = clock
        self.default_channel = default_channel
        self.on_processed = on_processed
        self.max_attempts = max_attempts
        self.lease = lease
        self.batch_size = batch_size

    async def run_once(self) -> int:
        """Claim a batch (heads of chats, and runs behind busy chats' heads) and run it
        in one transaction, the "done" marks included."""
        token = new_token()
        async with self.sessions() as session, session.begin():
            ids = await inbox.claim(
                session, now=self.clock(), lease=self.lease, limit=self.batch_size, token=token
            )
        if not ids:
            return 0
        async with self.sessions() as session:
            found = await session.execute(
                select(COLS.id, COLS.chat_id, COLS.attempts, COLS.event)
                .where(COLS.id.in_(ids))
                .order_by(COLS.id)
            )
            items = [Claimed(*row) for row in found.all()]
        work = [await self._prepare(item) for item in items]
        try:
            outcome = await self._run(work, token)
        except ClaimLost as lost:
            log.warning("inbox %s: claim lost to another worker; batch rolled back", lost)
            outcome = NOTHING
        self.on_processed(BatchOutcome(len(ids), outcome.queued, outcome.applied))
        return len(ids)

    async def _prepare(self, item: Claimed) -> Work:
        entry = Work(item)
        if item.event is None:
            return entry
        try:
            entry.event = event_from_json(item.event)
            if needs_snapshot(entry.event):
                entry.snapshot = await self._snapshot(entry.event, item.attempts)
                if entry.snapshot is not None:
                    entry.event = enrich(entry.event, entry.snapshot)
        except Exception as exc:
            entry.error = exc
        return entry

    async def _snapshot(self, event: Event, attempts: int) -> GroupSnapshot | None:
        assert event.chat_id
        try:
            return await self.directory.snapshot(event.chat_id, event.member_version)
        except WeComError as exc:
            if exc.kind in ("retry", "rate_limited") and attempts < ENRICH_RETRIES:
                raise
            log.warning("groupchat/get %s failed (%s); going on without names", event.chat_id, exc)
            return None

    async def _run(self, work: list[Work], token: str) -> BatchOutcome:
        """Commit the batch; returns what the committed transactions did."""
        failures: dict[int, Exception] = {}
        for _ in range(MAX_BATCH_RERUNS + 1):
            try:
                return await self._commit(plan_batch(work, failures), token)
            except HandlerFailed as failed:
                failures[failed.item_id] = failed.cause
        # Many events fail: one transaction each, so each failure costs only itself.
        outcome = NOTHING
        blocked: set[str] = set()
        for entry in work:
            chat = entry.item.chat_id
            if chat is not None and chat in blocked:
                outcome += await self._commit(Plan(release=[entry.item.id]), token)
                continue
            try:
                outcome += await self._commit(plan_batch([entry], failures), token)
            except HandlerFailed as failed:
                failures[failed.item_id] = failed.cause
                outcome += await self._commit(plan_batch([entry], failures), token)
            if chat is not None and (entry.item.id in failures or entry.error is not None):
                blocked.add(chat)
        return outcome

    async def _commit(self, plan: Plan, token: str) -> BatchOutcome:
        now = self.clock()
        playbooks = self.playbooks()
        notes: list[tuple[Work, list[str], list[str]]] = []
        queued, applied = 0, set[str]()
        deferred, memo = Deferred(), BatchMemo()
        async with self.sessions() as session, session.begin():
            for entry in plan.run:
                if entry.event is None:
                    continue
                try:
                    ran, ctx = await self._handle(session, entry, now, playbooks, deferred, memo)
                except Exception as exc:
                    raise HandlerFailed(entry.item.id, exc) from exc
                notes.append((entry, ran, ctx.notes))
                queued += len(ctx.queued)
                applied |= ctx.applied
            await self.registry.executor.flush(deferred, session)
            done = [entry.item.id for entry in plan.run if entry.event is not None]
            ignored = [entry.item.id for entry in plan.run if entry.event is None]
            marked = await inbox.mark_many(session, done, status="done", now=now, token=token)
            marked += await inbox.mark_many(
                session, ignored, status="ignored", now=now, token=token
            )
            if len(marked) != len(plan.run):
                # Lost a claim while working: roll back, the holder will do it.
                raise ClaimLost(sorted({e.item.id for e in plan.run} - set(marked)))
            for entry, error in plan.failed:
                await self._record_failure(session, entry.item, error, now, token)
            await inbox.release(session, plan.release, token=token)
        self._report(notes, plan)
        return BatchOutcome(len(plan.run), queued, frozenset(applied))

    async def _handle(
        self,
        session: AsyncSession,
        entry: Work,
        now: datetime,
        playbooks: PlaybookSet,
        deferred: Deferred,
        memo: BatchMemo,
    ) -> tuple[list[str], Context]:
        event = entry.event
        assert event is not None
        snapshot = entry.snapshot
        # One savepoint-free unit per event: a failure rolls the whole batch back and
        # the batch runs again without it (see _run), so no per-event round trips.
        if snapshot is not None and event.chat_id:
            channel_type, channel_config = self.default_channel(snapshot)
            await apply_snapshot(
                session,
                chat_id=event.chat_id,
                name=snapshot.name,
                owner=snapshot.owner,
                member_version=snapshot.member_version,
                notice=snapshot.notice,
                admins=snapshot.admins,
                channel_type=channel_type,
                channel_config=channel_config,
                now=now,
            )
            memo.groups.pop(event.chat_id, None)  # created or changed: read it again
        ctx = Context(
            session=session,
            now=now,
            tz=self.tz,
            playbooks=playbooks,
            source_id=f"inbox:{entry.item.id}",
            deferred=deferred,
            memo=memo,
        )
        ran = await self.registry.dispatch(event, ctx)
        return ran, ctx

    async def _record_failure(
        self, session: AsyncSession, item: Claimed, exc: Exception, now: datetime, token: str
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        final = item.attempts >= self.max_attempts
        await inbox.mark(
            session,
            item.id,
            status="failed" if final else "pending",
            now=now,
            error=error[:2000],
            retry_at=None if final else now + timedelta(seconds=min(300, 2 ** (item.attempts - 1))),
            token=token,
        )
        if final:
            log.error("inbox %s failed for good: %s", item.id, error)
        else:
            log.warning("inbox %s attempt %s failed: %s", item.id, item.attempts, error)

    def _report(self, notes: list[tuple[Work, list[str], list[str]]], plan: Plan) -> None:
        """Metrics and log lines, after the commit: what the batch did."""
        kinds: Counter[str] = Counter()
        for entry, ran, said in notes:
            assert entry.event is not None
            kinds[entry.event.type] += 1
            if said:  # something happened beyond bookkeeping: worth a line each
                log.info(
                    "inbox %s %s → %s %s", entry.item.id, entry.event.type, ran, "; ".join(said)
                )
            else:
                log.debug("inbox %s %s → %s", entry.item.id, entry.event.type, ran)
        done = sum(kinds.values())
        ignored = len(plan.run) - done
        if done:
            self.metrics.inbox_processed.labels("done").inc(done)
        if ignored:
            self.metrics.inbox_processed.labels("ignored").inc(ignored)
        for entry, _error in plan.failed:
            final = entry.item.attempts >= self.max_attempts
            self.metrics.inbox_processed.labels("failed" if final else "retry").inc()
        if done > 1:
            summary = ", ".join(f"{kind}×{count}" for kind, count in sorted(kinds.items()))
            log.info("inbox: %s events done (%s)", done, summary)
