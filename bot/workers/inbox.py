"""Processes the inbox: enrich events with group details, run the handlers, mark done.

Handlers and the "done" mark commit in one transaction, so an event's effects
(state changes and the outbox rows they queue) happen exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config.playbooks import PlaybookSet
from bot.directory import GroupDirectory, GroupSnapshot, enrich
from bot.metrics import Metrics
from bot.wecom.errors import WeComError
from bot.workers.claims import new_token
from bot.workers.polling import PollingWorker
from handlers.core.context import Context
from handlers.core.events import Event, GroupCreated, GroupUpdated, MemberJoined, event_from_json
from handlers.core.registry import Registry
from storage import inbox
from storage.groups import apply_snapshot
from storage.models import InboxItem

log = logging.getLogger(__name__)

# After this many transport failures, welcome with ids rather than late: the batch
# window is seconds long, and a name is worth less than a timely welcome.
ENRICH_RETRIES = 2


class ClaimLost(Exception):
    """Another worker holds the inbox row now; this worker's changes must not commit."""


def needs_snapshot(event: Event) -> bool:
    return bool(event.chat_id) and isinstance(event, MemberJoined | GroupCreated | GroupUpdated)


class InboxProcessor(PollingWorker):
    name = "inbox"

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
        on_processed: Callable[[], None] = lambda: None,
        max_attempts: int = 8,
        lease: timedelta = timedelta(seconds=60),
        batch_size: int = 10,
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
        token = new_token()
        async with self.sessions() as session, session.begin():
            ids = await inbox.claim(
                session, now=self.clock(), lease=self.lease, limit=self.batch_size, token=token
            )
        for item_id in ids:
            await self._process(item_id, token)
        if ids:
            self.on_processed()
        return len(ids)

    async def _snapshot(self, event: Event, attempts: int) -> GroupSnapshot | None:
        assert event.chat_id
        try:
            return await self.directory.snapshot(event.chat_id, event.member_version)
        except WeComError as exc:
            if exc.kind in ("retry", "rate_limited") and attempts < ENRICH_RETRIES:
                raise
            log.warning("groupchat/get %s failed (%s); going on without names", event.chat_id, exc)
            return None

    async def _process(self, item_id: int, token: str) -> None:
        async with self.sessions() as session, session.begin():
            if not await inbox.renew(
                session, item_id, token=token, now=self.clock(), lease=self.lease
            ):
                return  # our lease ran out before we got here; another worker has it
            item = await session.get(InboxItem, item_id)
        if item is None:
            return
        now = self.clock()
        if item.event is None:
            async with self.sessions() as session, session.begin():
                await inbox.mark(session, item_id, status="ignored", now=now, token=token)
            self.metrics.inbox_processed.labels("ignored").inc()
            return
        try:
            event = event_from_json(item.event)
            snapshot = await self._snapshot(event, item.attempts) if needs_snapshot(event) else None
            if snapshot is not None:
                event = enrich(event, snapshot)
            async with self.sessions() as session, session.begin():
                if snapshot is not None and event.chat_id:
                    channel_type, channel_config = self.default_channel(snapshot)
                    await apply_snapshot(
                        session,
                        chat_id=event.chat_id,
                        name=snapshot.name,
                        owner=snapshot.owner,
                        member_version=snapshot.member_version,
                        notice=snapshot.notice,
                        channel_type=channel_type,
                        channel_config=channel_config,
                        now=now,
                    )
                ctx = Context(session=session, now=now, tz=self.tz, playbooks=self.playbooks())
                ran = await self.registry.dispatch(event, ctx)
                if not await inbox.mark(session, item_id, status="done", now=now, token=token):
                    # Lost the claim while working: roll back, the holder will do it.
                    raise ClaimLost(item_id)
            log.info("inbox %s %s → %s %s", item_id, event.type, ran, "; ".join(ctx.notes))
            self.metrics.inbox_processed.labels("done").inc()
        except ClaimLost:
            log.warning("inbox %s: claim lost to another worker; rolled back", item_id)
        except Exception as exc:
            await self._failed(item, exc, token)

    async def _failed(self, item: InboxItem, exc: Exception, token: str) -> None:
        now = self.clock()
        error = f"{type(exc).__name__}: {exc}"
        final = item.attempts >= self.max_attempts
        async with self.sessions() as session, session.begin():
            await inbox.mark(
                session,
                item.id,
                status="failed" if final else "pending",
                now=now,
                error=error[:2000],
                retry_at=None
                if final
                else now + timedelta(seconds=min(300, 2 ** (item.attempts - 1))),
                token=token,
            )
        self.metrics.inbox_processed.labels("failed" if final else "retry").inc()
        if final:
            log.error("inbox %s failed for good: %s", item.id, error)
        else:
            log.warning("inbox %s attempt %s failed: %s", item.id, item.attempts, error)
