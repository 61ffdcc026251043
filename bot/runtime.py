"""Everything the service runs on, built from one Settings object.

`serve` builds it inside the FastAPI lifespan; `tick` and the tests build it on
their own. Nothing here is a module-level global.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config.playbooks import PlaybookSet, PlaybookStore
from bot.config.settings import Settings
from bot.daily_report_confirmations import follow_confirmations
from bot.directory import GroupDirectory, GroupSnapshot
from bot.metrics import Metrics
from bot.sources.aibot_link.link import LINK_LOOP, AibotLink
from bot.sources.archive_pull.emulator import EmulatorArchiveSource
from bot.sources.archive_pull.puller import PULL_LOOP, ArchivePuller
from bot.sources.archive_pull.source import ArchiveSource
from bot.sources.group_commit import InboxWriter
from bot.wecom.client import WeComClient
from bot.welcome_templates import sync_welcome_templates
from bot.workers.claims import holder_is_gone
from bot.workers.dispatch import Dispatcher
from bot.workers.health import LoopHealth, backoff_seconds
from bot.workers.inbox import BatchOutcome, InboxProcessor
from handlers.channels import CONNECTION_CHANNELS
from handlers.core.actions import Action, AddToWelcomeBatch
from handlers.core.context import Context
from handlers.core.executor import Executor
from handlers.features.daily_report.mass_send import follow_mass_sends
from handlers.features.health.digest import digest_actions
from handlers.features.points.ladder import review_all
from handlers.features.relevance import unwanted_reason
from handlers.features.touch import close_finished_enrollments
from handlers.wiring import build_features
from scheduler.engine import DueContext, DueEngine, DueReport
from scheduler.periodic import PeriodicJob, PeriodicKind, make_due_now
from storage import archive_cursor, db, inbox, leases, outbox
from storage.inbox_append import InboxAppender, appender_for
from storage.models import WelcomeBatch
from storage.retention import apply_retention

log = logging.getLogger(__name__)

SANDBOX_WEBHOOK_KEY = "sandbox-robot"
SCHEDULER_LOOP = "scheduler"
# Actions after which the earliest welcome batch may be due sooner than the timer says.
WELCOME_TIMER_ACTIONS = frozenset({AddToWelcomeBatch.__name__})


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    client: WeComClient
    playbooks: PlaybookStore
    dispatcher: Dispatcher
    inbox: InboxProcessor
    appender: InboxAppender  # new inbox rows, at driver level
    writer: InboxWriter  # callbacks' group commit into the inbox, through `appender`
    metrics: Metrics
    clock: Callable[[], datetime] = utc_now
    executor: Executor = field(default_factory=Executor)  # for admin actions (overturn …)
    puller: ArchivePuller | None = None  # SPEC §10: with an archive secret, or in sandbox
    link: AibotLink | None = None  # SPEC §10: the 智能机器人 long connection, when configured
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    health: LoopHealth = field(default_factory=lambda: LoopHealth(utc_now))
    engine_all: DueEngine = field(default_factory=lambda: DueEngine([]))
    engine_items: DueEngine = field(default_factory=lambda: DueEngine([]))
    _welcome_timer: asyncio.TimerHandle | None = None
    _timed_ticks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def playbook_set(self) -> PlaybookSet:
        current = self.playbooks.current
        assert current is not None
        return current

    async def tick(self, at: datetime | None = None, *, periodic: bool = True) -> DueReport:
        """Run the scheduled work due at `at` (default: now). `periodic=False` leaves
        the housekeeping jobs to the server (the `tick` command)."""
        now = self.clock()
        engine = self.engine_all if periodic else self.engine_items
        ctx = DueContext(at=at or now, now=now, tz=self.settings.tz, playbooks=self.playbook_set)
        try:
            report = await engine.run(self.sessions, ctx)
        except Exception:
            self.metrics.job_runs.labels("tick", "error").inc()
            raise
        self.metrics.job_runs.labels("tick", "ok").inc()
        if report.queued:
            self.dispatcher.wake()
        return report

    async def playbooks_changed(self) -> None:
        """Templates follow the playbooks: make their sync due now."""
        async with self.sessions() as session, session.begin():
            await make_due_now(session, "welcome_templates", now=self.clock())

    async def sync_templates(self) -> dict[str, str]:
        """Bring WeCom's welcome templates in line with the playbooks and the customer
        groups we know (cheap when nothing differs: hashes are compared first)."""
        outcome = await sync_welcome_templates(
            self.sessions, self.client, self.playbook_set, now=self.clock()
        )
        if outcome:
            log.info("welcome templates: %s", outcome)
        return outcome

    async def housekeeping(self) -> str:
        async with self.sessions() as session, session.begin():
            # Keep the longest window (customers: 30 days) or its cap stops counting.
            await outbox.prune_rate_events(session, before=self.clock() - timedelta(days=31))
            closed = await close_finished_enrollments(session, now=self.clock())
        return f"{closed} finished enrollment(s) closed" if closed else ""

    async def retention(self) -> str:
        """RETENTION_RAW_DAYS / RETENTION_SENT_DAYS / RETENTION_LOG_DAYS
        (storage/retention.py)."""
        now = self.clock()
        result = await apply_retention(
            self.sessions,
            raw_before=now - timedelta(days=self.settings.retention_raw_days),
            sent_before=now - timedelta(days=self.settings.retention_sent_days),
            log_before=now - timedelta(days=self.settings.retention_log_days),
        )
        return result.note()

    async def review_ladders(self) -> str:
        """Promotions and demotions on every group's ladder (handlers/features/points/ladder.py)."""
        async with self.sessions() as session, session.begin():
            reviewed = await review_all(
                session, self.playbook_set, now=self.clock(), tz=self.settings.tz
            )
        moved = sum(len(changes) for changes in reviewed.values())
        return f"{moved} level change(s) in {len(reviewed)} group(s)" if moved else ""

    async def send_health_digests(self) -> str:
        """Monday's health digests (handlers/features/health/digest.py), once a week."""
        async with self.sessions() as session:
            actions = await digest_actions(
                session, self.playbook_set, now=self.clock(), tz=self.settings.tz
            )
            if actions:
                await self.apply_actions(session, actions, source_id="health_digest")
        return f"{len(actions)} health digest(s)" if actions else ""

    async def follow_daily_report_mass_sends(self) -> str:
        """Customer groups' 早报: what WeCom answered to the mass send (its msgid), then
        whether the owner confirmed it (bot/daily_report_confirmations.py)."""
        async with self.sessions() as session, session.begin():
            changed = await follow_mass_sends(session)
        confirmations = await follow_confirmations(
            self.sessions, self.client, now=self.clock(), tz=self.settings.tz
        )
        notes = [f"{changed} 早报 mass send(s) followed"] if changed else []
        notes += [f"{count} {state}" for state, count in sorted(confirmations.items())]
        return ", ".join(notes)

    def periodic_jobs(self) -> list[PeriodicJob]:
        async def templates() -> str:
            outcome = await self.sync_templates()
            return ", ".join(f"{name}: {result}" for name, result in outcome.items())

        return [
            PeriodicJob(
                "welcome_templates", timedelta(seconds=30), self._counted("templates", templates)
            ),
            PeriodicJob(
                "housekeeping",
                timedelta(minutes=5),
                self._counted("housekeeping", self.housekeeping),
            ),
            PeriodicJob(
                "retention", timedelta(hours=1), self._counted("retention", self.retention)
            ),
            PeriodicJob("ladder", timedelta(hours=6), self._counted("ladder", self.review_ladders)),
            PeriodicJob(
                "health_digest",
                timedelta(minutes=15),
                self._counted("health_digest", self.send_health_digests),
            ),
            PeriodicJob(
                "daily_report_mass_sends",
                timedelta(minutes=1),
                self._counted("daily_report_mass_sends", self.follow_daily_report_mass_sends),
            ),
        ]

    def _counted(self, job: str, run: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[str]]:
        async def counted() -> str:
            try:
                note = await run()
            except Exception:
                self.metrics.job_runs.labels(job, "error").inc()
                raise
            self.metrics.job_runs.labels(job, "ok").inc()
            return note

        return counted

    async def recover(self) -> None:
        """After a crash: SQLite means one process, so its old claims are ours to release;
        on PostgreSQL other replicas may hold claims, which expire with their lease."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            if self.engine.dialect.name == "sqlite":
                released = await outbox.release_leases(session, holder_is_gone=holder_is_gone)
                released += await inbox.release_leases(session, holder_is_gone=holder_is_gone)
                if self.puller is not None and await archive_cursor.release_dead_holder(
                    session, self.puller.name, holder_is_gone=holder_is_gone
                ):
                    released += 1
                if self.link is not None and await leases.release_dead_holder(
                    session, self.link.name, holder_is_gone=holder_is_gone
                ):
                    released += 1
                if released:
                    log.info("released %d claim(s) left by a previous run", released)
            woken = await outbox.wake_network_failures(session, now=now)
        if woken:
            log.info("retrying %d message(s) that failed on transport before the restart", woken)

    async def apply_actions(
        self, session: AsyncSession, actions: Sequence[Action], *, source_id: str
    ) -> Context:
        """Apply what an admin's request decided, in `session`'s transaction, and commit:
        the same executor as the inbox and the engine; queued messages go out at once."""
        ctx = Context(
            session=session,
            now=self.clock(),
            tz=self.settings.tz,
            playbooks=self.playbook_set,
            source_id=source_id,
        )
        await self.executor.execute(actions, ctx)
        await session.commit()
        if ctx.queued:
            self.dispatcher.wake()
        return ctx

    async def ping_db(self) -> None:
        async with self.sessions() as session:
            await session.execute(text("SELECT 1"))

    def wake_archive(self) -> None:
        """A msgaudit_notify callback: pull the archive now (no-op when not pulling)."""
        if self.puller is not None:
            self.puller.wake()

    def after_inbox_round(self, outcome: BatchOutcome) -> None:
        """Wake only what the batch gave work to: a batch of plain chat messages costs
        no outbox or welcome-batch queries."""
        if outcome.queued:
            self.dispatcher.wake()
        if not outcome.applied & WELCOME_TIMER_ACTIONS:
            return
        task = asyncio.create_task(self._arm_welcome_timer())
        self._timed_ticks.add(task)
        task.add_done_callback(self._timed_ticks.discard)

    async def _arm_welcome_timer(self) -> None:
        """Tick exactly when the earliest welcome batch is due, not up to a tick later.
        A failure here costs at most a second: the scheduler's tick flushes it too."""
        try:
            async with self.sessions() as session:
                due = await session.scalar(
                    select(func.min(WelcomeBatch.due_at)).where(WelcomeBatch.status == "open")
                )
        except Exception:
            log.warning("cannot arm the welcome timer", exc_info=True)
            return
        if due is None or self.stop_event.is_set():
            return
        delay = max(0.0, (due - self.clock()).total_seconds()) + 0.05
        if self._welcome_timer is not None:
            self._welcome_timer.cancel()
        self._welcome_timer = asyncio.get_running_loop().call_later(delay, self._timed_tick)

    def _timed_tick(self) -> None:
        async def run() -> None:
            try:
                await self.tick()
            except Exception:
                log.exception("timed tick failed")

        task = asyncio.create_task(run())
        self._timed_ticks.add(task)
        task.add_done_callback(self._timed_ticks.discard)

    async def scheduled_tick(self) -> None:
        """The scheduler's job: a tick whose success or failure the health check sees.
        APScheduler keeps the job running after an exception; this records it."""
        try:
            await self.tick()
        except Exception as exc:
            self.health.failed(SCHEDULER_LOOP, exc)
            log.exception("scheduled tick failed")
            return
        self.health.succeeded(SCHEDULER_LOOP)

    def start_background(self, *, scheduler: bool = True) -> None:
        self.inbox.on_processed = self.after_inbox_round
        self.inbox.health = self.health
        self.dispatcher.health = self.health
        if scheduler:
            self.health.started(SCHEDULER_LOOP)
        loop_tasks = [
            self.inbox.run_forever(self.stop_event),
            self.dispatcher.run_forever(self.stop_event),
            self._supervised("playbook watcher", lambda: self.playbooks.watch(self.stop_event)),
        ]
        puller = self.puller
        if puller is not None:
            puller.health = self.health
            loop_tasks.append(self._supervised(PULL_LOOP, lambda: puller.run(self.stop_event)))
        link = self.link
        if link is not None:
            link.health = self.health
            loop_tasks.append(self._supervised(LINK_LOOP, lambda: link.run(self.stop_event)))
        self.tasks = [asyncio.create_task(coro) for coro in loop_tasks]

    async def _supervised(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Keep a long-lived loop that has no rounds of its own running: restart it,
        with backoff, whenever it raises or ends before the service stops."""
        self.health.started(name, rounds=False)
        while not self.stop_event.is_set():
            try:
                await run()
                if self.stop_event.is_set():
                    break
                raise RuntimeError(f"{name} ended on its own")
            except Exception as exc:
                delay = backoff_seconds(self.health.failed(name, exc))
                log.exception("%s failed; restarting in %.1f s", name, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), timeout=delay)
        self.health.stopped(name)

    async def aclose(self) -> None:
        self.stop_event.set()
        if self._welcome_timer is not None:
            self._welcome_timer.cancel()
        for pending in list(self._timed_ticks):
            pending.cancel()
        self.inbox.wake()
        self.dispatcher.wake()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.puller is not None:
            await self.puller.aclose()
        if self.link is not None:
            await self.link.aclose()
        await self.client.aclose()
        await self.appender.aclose()
        await self.engine.dispose()


def default_channel_for(
    settings: Settings,
) -> Callable[[GroupSnapshot], tuple[str, dict[str, Any]]]:
    """A group first seen in a change_external_chat callback is a customer group.

    In sandbox mode it gets the emulator's robot instead, so a newcomer trying the
    service sees the welcome happen for any chat id they invent.
    """

    def choose(snapshot: GroupSnapshot) -> tuple[str, dict[str, Any]]:
        if settings.sandbox:
            return "webhook", {"key": SANDBOX_WEBHOOK_KEY}
        # No stored sender: messages go through whoever owns the group at send time.
        return "customer_group", {}

    return choose


def archive_source_for(
    settings: Settings, *, api_base: str, http: httpx.AsyncClient | None
) -> ArchiveSource | None:
    """SPEC §10: the emulator's archive in sandbox (or when asked for), else Tencent's SDK."""
    if not settings.archive_pulling:
        return None
    if settings.sandbox or settings.archive_source == "emulator":
        return EmulatorArchiveSource(
            api_base=api_base, corp_id=settings.corp_id, secret=settings.archive_secret, http=http
        )
    from bot.sources.archive_pull.sdk import SdkArchiveSource  # the optional extra's world

    return SdkArchiveSource(
        corp_id=settings.corp_id,
        secret=settings.archive_secret,
        keys=settings.archive_keys(),
        proxy=settings.wecom_archive_proxy,
    )


def aibot_link_for(
    settings: Settings,
    ws_url: str | None,
    *,
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    metrics: Metrics,
    clock: Callable[[], datetime],
    on_stored: Callable[[], None],
    on_live: Callable[[], None],
) -> AibotLink | None:
    """SPEC §10: the long connection with the bot's credentials; in sandbox, to the
    emulator's endpoint (`ws_url`) with the emulator's credentials."""
    if not settings.aibot_linking:
        return None
    url = ws_url or (None if settings.sandbox else settings.wecom_aibot_ws_url)
    if url is None:
        return None  # sandbox without its emulator's endpoint (the `tick` command)
    return AibotLink(
        url=url,
        bot_id=settings.aibot_id,
        secret=settings.aibot_secret,
        sessions=sessions,
        appender=appender,
        clock=clock,
        heartbeat=settings.aibot_heartbeat_seconds,
        metrics=metrics,
        on_stored=on_stored,
        on_live=on_live,
    )


async def build_runtime(
    settings: Settings,
    *,
    api_base: str,
    http: httpx.AsyncClient | None = None,
    migrate: bool = True,
    clock: Callable[[], datetime] = utc_now,
    aibot_ws_url: str | None = None,
) -> Runtime:
    """`aibot_ws_url`: where the 智能机器人 long connection goes instead of
    WECOM_AIBOT_WS_URL (the sandbox's emulator)."""
    engine = db.make_engine(settings.database_url)
    if migrate:
        await db.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    store = PlaybookStore(settings.sop_templates_dir)  # raises PlaybookLoadError if broken
    metrics = Metrics()
    client = WeComClient(
        api_base=api_base,
        corp_id=settings.corp_id,
        corp_secret=settings.corp_secret,
        agent_id=settings.agent_id,
        http=http,
    )
    features = build_features()
    dispatcher = Dispatcher(
        sessions,
        client,
        unwanted=unwanted_reason,
        metrics=metrics,
        max_attempts=settings.outbox_max_attempts,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
        clock=clock,
        tz=settings.tz,
    )
    processor = InboxProcessor(
        sessions,
        features.registry,
        GroupDirectory(client, max_groups=settings.group_cache_size),
        playbooks=lambda: store.current,
        tz=settings.tz,
        metrics=metrics,
        clock=clock,
        default_channel=default_channel_for(settings),
        on_processed=lambda outcome: dispatcher.wake() if outcome.queued else None,
        max_attempts=settings.inbox_max_attempts,
        lease=timedelta(seconds=settings.inbox_lease_seconds),
    )
    appender = appender_for(engine)
    runtime = Runtime(
        health=LoopHealth(clock, metrics),
        settings=settings,
        engine=engine,
        sessions=sessions,
        client=client,
        playbooks=store,
        dispatcher=dispatcher,
        inbox=processor,
        appender=appender,
        writer=InboxWriter(appender, clock),
        metrics=metrics,
        clock=clock,
        executor=features.executor,
    )
    source = archive_source_for(settings, api_base=api_base, http=http)
    if source is not None:
        runtime.puller = ArchivePuller(
            source,
            sessions,
            appender,
            metrics=metrics,
            clock=clock,
            interval=settings.archive_pull_seconds,
            lease=timedelta(seconds=settings.archive_lease_seconds),
            on_stored=processor.wake,
        )
    link = aibot_link_for(
        settings,
        aibot_ws_url,
        sessions=sessions,
        appender=appender,
        metrics=metrics,
        clock=clock,
        on_stored=processor.wake,
        on_live=dispatcher.wake,
    )
    if link is not None:
        runtime.link = link
        client.aibot_link = link
    # Replies on the long connection go out only where it is up (docs/architecture.md).
    dispatcher.unavailable = lambda: () if link is not None and link.live else CONNECTION_CHANNELS
    periodic = PeriodicKind(runtime.periodic_jobs(), sessions, clock)
    runtime.engine_items = DueEngine(features.due_kinds)
    runtime.engine_all = DueEngine([*features.due_kinds, periodic])
    return runtime
