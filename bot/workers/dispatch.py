"""The outbox dispatcher: claim due rows, respect shared rate limits, send, mark.

Crash safety: a row is claimed with a lease ("sending" until locked_until). A
process killed before marking leaves the row to be re-claimed after the lease, so
nothing queued is lost and a message is re-sent at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.metrics import Metrics
from bot.timefmt import local_iso
from bot.wecom.client import WeComClient
from bot.wecom.errors import TransportError, WeComError
from bot.workers.claims import new_token
from bot.workers.polling import PollingWorker
from handlers.channels import CannotPost, SendClient, channel_named, rate_policy_for
from storage import outbox
from storage.db import lock_keys
from storage.models import OutboxItem

log = logging.getLogger(__name__)

RATE_LOCK_SPACE = 71003  # advisory locks of rate keys (storage/heads.py has 71001-2)
RATE_LIMITED_PAUSE = timedelta(seconds=65)  # WeCom asks for at least a minute on 45009
# A rate window is judged as the receiver sees it. Each send counts until the latest
# instant WeCom may have received it (its answer; while in flight, its start plus
# SEND_TIME_LIMIT), and a new send, which WeCom receives after it starts, may start only
# when the policy's n-th latest send counts until more than `seconds + RATE_MARGIN` ago.
# The margin covers clock differences between replicas and the receiver's own rounding.
RATE_MARGIN = timedelta(seconds=2)
# The longest one send may take (token fetch included); cut off beyond it, so a send
# still in flight has a known worst-case receive time.
SEND_TIME_LIMIT = timedelta(seconds=60)


@dataclass(frozen=True)
class Reservation:
    wait_until: datetime | None = None  # not now: a pause or a full window until then
    event_id: int | None = None  # the recorded send, settled when it is answered


def backoff(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> timedelta:
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return timedelta(seconds=delay * random.uniform(0.8, 1.0))


def pause_key(item: OutboxItem) -> str:
    """The scope WeCom limited when a send of this row answers 45009: a webhook robot's
    own key, or the corp-wide API the channel calls (appchat/send, message/send, …)."""
    try:
        return channel_named(item.channel).pause_key(item.target)
    except CannotPost:  # an unknown channel never reaches WeCom; its own key will do
        return item.rate_key


async def send_row(client: SendClient, item: OutboxItem) -> dict[str, Any]:
    """One attempt through the row's channel object (retries are the dispatcher's)."""
    try:
        channel = channel_named(item.channel)
    except CannotPost as exc:
        raise WeComError(-3, str(exc), kind="permanent") from None
    return await channel.send(client, item.target, dict(item.payload))


Unwanted = Callable[[AsyncSession, OutboxItem], Awaitable[str | None]]


async def always_wanted(session: AsyncSession, item: OutboxItem) -> str | None:
    return None


def stale_reason(item: OutboxItem, now: datetime) -> str | None:
    """Why the row's channel can no longer send it (an expired 智能机器人 reply)."""
    try:
        channel = channel_named(item.channel)
    except CannotPost:
        return None  # send_row fails it with the reason
    return channel.stale_reason(dict(item.payload), now)


def nothing_unavailable() -> Collection[str]:
    return ()


class Dispatcher(PollingWorker):
    name = "outbox dispatch"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: WeComClient,
        *,
        metrics: Metrics,
        unwanted: Unwanted = always_wanted,
        max_attempts: int,
        lease: timedelta,
        clock: Callable[[], datetime],
        batch_size: int = 20,
        tz: tzinfo = UTC,  # the zone log lines show times in (BOT_TIMEZONE)
        # Channels this process cannot send right now (a long connection another replica
        # holds, or none does): their rows are left to the process that can.
        unavailable: Callable[[], Collection[str]] = nothing_unavailable,
    ) -> None:
        super().__init__()
        self.unavailable = unavailable
        self.tz = tz
        self.sessions = sessions
        self.client = client
        self.unwanted = unwanted
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.lease = lease
        self.clock = clock
        self.batch_size = batch_size

    async def run_once(self) -> int:
        """Claim and handle one batch; returns how many rows were handled."""
        now = self.clock()
        token = new_token()
        async with self.sessions() as session, session.begin():
            ids = await outbox.claim(
                session,
                now=now,
                lease=self.lease,
                limit=self.batch_size,
                token=token,
                skip_channels=self.unavailable(),
            )
        for item_id in ids:
            await self._handle(item_id, token)
        return len(ids)

    async def idle_wait(self) -> float:
        async with self.sessions() as session:
            due = await outbox.next_due_at(session, skip_channels=self.unavailable())
        if due is None:
            return 5.0
        return max(0.05, min(5.0, (due - self.clock()).total_seconds()))

    async def after_round(self) -> None:
        async with self.sessions() as session:
            depth, age = await outbox.depth_and_age(session, now=self.clock())
        self.metrics.outbox_depth.set(depth)
        self.metrics.outbox_oldest_age.set(age)

    async def _reserve_rate(self, session: AsyncSession, item: OutboxItem) -> Reservation:
        """Record a send through the row's rate key, or say when it may go: after any
        pause over its key or its channel's API, and when the key's window has room.

        The caller's transaction has already written (the lease renewal), so on SQLite
        it holds the database's write lock: check and record are atomic there too."""
        now = self.clock()
        rate_key = item.rate_key
        # Replicas share one window per key: serialize the check-and-record until
        # this transaction commits, with the new event in it.
        await lock_keys(session, RATE_LOCK_SPACE, [rate_key])
        paused = await outbox.paused_until(session, rate_key, pause_key(item), now=now)
        if paused is not None:
            return Reservation(wait_until=paused)
        policy = rate_policy_for(rate_key)
        if policy is None:
            return Reservation()
        window = timedelta(seconds=policy.seconds) + RATE_MARGIN
        nth = await outbox.nth_latest_rate_event(session, rate_key, policy.messages)
        if nth is not None and nth + window >= now:
            return Reservation(wait_until=nth + window + timedelta(milliseconds=50))
        event_id = await outbox.record_rate_event(session, rate_key, at=now + SEND_TIME_LIMIT)
        return Reservation(event_id=event_id)

    async def _handle(self, item_id: int, token: str) -> None:
        async with self.sessions() as session, session.begin():
            # A fresh lease for this row's send: rows late in a batch may have outlived
            # the claim's lease, and then another worker may hold them now.
            if not await outbox.renew(
                session, item_id, token=token, now=self.clock(), lease=self.lease
            ):
                return
            item = await session.get(OutboxItem, item_id)
            if item is None:
                return
            # The feature that queued it may not want it any more (the member left or
            # said 退订 while it waited for a rate window or a retry).
            reason = await self.unwanted(session, item)
            if reason is not None:
                await outbox.mark_cancelled(session, item_id, reason=reason, token=token)
                self.metrics.sends.labels(item.channel, "cancelled").inc()
                log.info("outbox %s cancelled: %s", item_id, reason)
                return
            stale = stale_reason(item, self.clock())
            if stale is not None:
                await outbox.mark_failed(
                    session, item_id, error=stale, error_kind="expired", token=token
                )
                self.metrics.sends.labels(item.channel, "expired").inc()
                log.warning("outbox %s not sent: %s", item_id, stale)
                return
            reservation = await self._reserve_rate(session, item)
            if reservation.wait_until is not None:
                await outbox.mark_retry(
                    session,
                    item_id,
                    retry_at=reservation.wait_until,
                    error=None,
                    error_kind=None,
                    count_attempt=False,
                    token=token,
                )
                self.metrics.sends.labels(item.channel, "throttled").inc()
                return
        sent = reservation.event_id
        try:
            async with self._lease_held(item_id, token):
                async with asyncio.timeout(SEND_TIME_LIMIT.total_seconds()):
                    result = await send_row(self.client, item)
        except TimeoutError:
            late = TransportError(f"no answer within {SEND_TIME_LIMIT.total_seconds():.0f} s")
            await self._failed_attempt(item, late, token, sent)
            return
        except WeComError as exc:
            await self._failed_attempt(item, exc, token, sent)
            return
        except Exception as exc:  # a bug or an odd answer must not wedge the row
            log.exception("outbox %s: unexpected error while sending", item_id)
            error = WeComError(-4, f"{type(exc).__name__}: {exc}", kind="retry")
            await self._failed_attempt(item, error, token, sent)
            return
        async with self.sessions() as session, session.begin():
            now = self.clock()
            if sent is not None:
                await outbox.settle_rate_event(session, sent, answered_at=now)
            await outbox.mark_sent(session, item_id, now=now, result=result, token=token)
        self.metrics.sends.labels(item.channel, "sent").inc()

    @contextlib.asynccontextmanager
    async def _lease_held(self, item_id: int, token: str) -> AsyncIterator[None]:
        """Keep renewing the row's lease while its send is in flight: a token refetch
        plus a slow answer can outlast the lease, and then another replica would
        claim the row and send it a second time."""
        done = asyncio.Event()

        async def keep_renewing() -> None:
            interval = max(0.05, self.lease.total_seconds() / 3)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=interval)
                    return
                try:
                    async with self.sessions() as session, session.begin():
                        held = await outbox.renew(
                            session, item_id, token=token, now=self.clock(), lease=self.lease
                        )
                except Exception:  # a database hiccup: try again at the next interval
                    log.warning("outbox %s: lease renewal failed", item_id, exc_info=True)
                    continue
                if not held:
                    log.warning("outbox %s: lease lost while sending", item_id)
                    return

        renewer = asyncio.create_task(keep_renewing())
        try:
            yield
        finally:
            done.set()
            with contextlib.suppress(Exception):
                await renewer

    async def _failed_attempt(
        self, item: OutboxItem, exc: WeComError, token: str, sent: int | None
    ) -> None:
        now = self.clock()
        error = f"{exc.errcode}: {exc.errmsg}"
        attempts = item.attempts + 1
        async with self.sessions() as session, session.begin():
            if sent is not None:
                # A failed send may still have reached WeCom (a timeout, a lost answer):
                # it keeps its place in the window, counted from now.
                await outbox.settle_rate_event(session, sent, answered_at=now)
            if exc.kind == "permanent" or attempts >= self.max_attempts:
                await outbox.mark_failed(
                    session, item.id, error=error, error_kind=exc.kind, token=token
                )
                self.metrics.sends.labels(item.channel, "failed").inc()
                log.warning("outbox %s failed for good: %s", item.id, error)
                return
            retry_at = now + backoff(attempts)
            if exc.kind == "rate_limited":
                until = now + RATE_LIMITED_PAUSE
                scope = pause_key(item)
                await outbox.pause(session, scope, until=until, reason=error)
                log.warning("%s paused until %s: %s", scope, local_iso(until, self.tz), error)
                retry_at = max(retry_at, until)
            await outbox.mark_retry(
                session,
                item.id,
                retry_at=retry_at,
                error=error,
                error_kind=exc.kind,
                count_attempt=True,
                token=token,
            )
        self.metrics.sends.labels(item.channel, exc.kind).inc()
        log.info("outbox %s: %s; retry at %s", item.id, error, local_iso(retry_at, self.tz))
