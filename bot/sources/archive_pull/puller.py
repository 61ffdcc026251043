"""The archive puller: from a persisted cursor, one replica at a time (SPEC §10).

A pull takes the lease (storage/archive_cursor.py), then page by page: fetch the
records after the cursor, write them to the inbox exactly as POST /wecom/archive
does (`normalize_archive` + `store_many`, deduplicated by msgid, in seq order),
and only then move the cursor. A crash between fetching and storing fetches the
page again; the inbox's dedup key makes that harmless, so nothing is skipped and
nothing is processed twice. Pages go on until one comes back empty.

Triggers: the interval (ARCHIVE_PULL_SECONDS) and `wake()` (msgaudit_notify
callbacks). A wake-up on a replica that does not hold the lease asks the holder
for one more pass instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.metrics import Metrics
from bot.sources.archive import ArchiveRecord, normalize_archive
from bot.sources.archive_pull.source import MAX_LIMIT, ArchiveSource, PulledRecord
from bot.sources.normalized import Incoming, store_many
from bot.workers.claims import new_token
from bot.workers.health import LoopHealth, backoff_seconds
from storage import archive_cursor
from storage.inbox_append import InboxAppender

log = logging.getLogger(__name__)

PULL_LOOP = "archive puller"
ARCHIVE_NAME = "archive"  # the cursor row: one archive per corp
UNDECRYPTABLE = "archive:undecryptable"


@dataclass
class PullReport:
    pages: int = 0
    accepted: int = 0
    duplicate: int = 0
    ignored: int = 0
    errors: int = 0
    seq: int | None = None  # the cursor after the pull (None: the lease was taken)
    busy: bool = False  # another replica held the lease

    def note(self) -> str:
        if self.busy:
            return "another replica is pulling"
        return (
            f"{self.pages} page(s): {self.accepted} new, {self.duplicate} duplicate, "
            f"{self.errors} undecryptable; cursor {self.seq}"
        )


class LeaseLost(Exception):
    """Another replica took the lease over (ours expired mid-pull)."""


class ArchivePuller:
    def __init__(
        self,
        source: ArchiveSource,
        sessions: async_sessionmaker[AsyncSession],
        appender: InboxAppender,
        *,
        metrics: Metrics,
        clock: Callable[[], datetime],
        interval: float,
        lease: timedelta,
        health: LoopHealth | None = None,
        on_stored: Callable[[], None] = lambda: None,
        page_size: int = MAX_LIMIT,
        name: str = ARCHIVE_NAME,
    ) -> None:
        self.source = source
        self.sessions = sessions
        self.appender = appender
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.lease = lease
        self.health = health
        self.on_stored = on_stored
        self.page_size = page_size
        self.name = name
        self.token = new_token()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Pull now (a msgaudit_notify callback came)."""
        self._wake.set()

    async def pull(self, stop: asyncio.Event | None = None) -> PullReport:
        """One pull: take the lease, store pages until the archive has no more, let go.
        Raises when a page cannot be fetched or stored; the cursor then stays after
        the last page stored, and the lease is given back."""
        report = PullReport()
        async with self.sessions() as session, session.begin():
            held = await archive_cursor.acquire(
                session, self.name, token=self.token, now=self.clock(), lease=self.lease
            )
            if held is None:
                await archive_cursor.request(session, self.name, now=self.clock())
        if held is None:
            report.busy = True
            self.metrics.archive_pulls.labels("busy").inc()
            return report
        seq, seen = held.seq, held.requests
        try:
            while True:
                seq = await self._pages(seq, report, stop)
                if stop is not None and stop.is_set():
                    break
                async with self.sessions() as session, session.begin():
                    again = await archive_cursor.release(
                        session, self.name, token=self.token, seen=seen
                    )
                if again is None:
                    break
                seen = again  # wake-ups came meanwhile: one more pass, lease kept
        except LeaseLost:
            log.warning("archive pull: the lease was taken over by another replica; stopping")
        except BaseException as exc:
            if isinstance(exc, Exception):
                self.metrics.archive_pulls.labels("error").inc()
            await self._give_up()
            raise
        else:
            if stop is not None and stop.is_set():
                await self._give_up()
        report.seq = seq
        self.metrics.archive_pulls.labels("ok").inc()
        self.metrics.archive_cursor.set(seq)
        return report

    async def _pages(self, seq: int, report: PullReport, stop: asyncio.Event | None) -> int:
        while stop is None or not stop.is_set():
            records = await self.source.fetch(seq, self.page_size)
            if not records:
                return seq
            records.sort(key=lambda r: r.seq)
            await self._store(records, report)
            report.pages += 1
            last = max(seq, records[-1].seq)
            async with self.sessions() as session, session.begin():
                ours = await archive_cursor.advance(
                    session,
                    self.name,
                    token=self.token,
                    seq=last,
                    now=self.clock(),
                    lease=self.lease,
                )
            if not ours:
                raise LeaseLost
            seq = last
        return seq

    async def _store(self, records: list[PulledRecord], report: PullReport) -> None:
        incoming = [self._incoming(record) for record in records]
        stored = await store_many(self.appender, incoming, now=self.clock())
        counts = {"accepted": 0, "duplicate": 0, "ignored": 0, "error": 0}
        for item, new in zip(incoming, stored, strict=True):
            if item.event_type == UNDECRYPTABLE:
                result = "error"
            elif not new:
                result = "duplicate"
            elif item.event is None:
                result = "ignored"
            else:
                result = "accepted"
            counts[result] += 1
        for result, count in counts.items():
            if count:
                self.metrics.archive_records.labels(result).inc(count)
        report.accepted += counts["accepted"] + counts["ignored"]
        report.ignored += counts["ignored"]
        report.duplicate += counts["duplicate"]
        report.errors += counts["error"]
        if counts["accepted"]:
            self.on_stored()

    def _incoming(self, pulled: PulledRecord) -> Incoming:
        problem = pulled.error
        if pulled.record is not None:
            try:
                return normalize_archive(ArchiveRecord.model_validate(pulled.record), pulled.record)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                problem = f"not an archive record: {where}: {first.get('msg')}"
        # Skipped, but never silently: logged, counted, and kept in the inbox (ignored,
        # with why) so an operator can find it. Its own key space, so the same record
        # decrypted elsewhere can still be posted to /wecom/archive later.
        log.warning(
            "archive record seq=%d msgid=%s cannot be read: %s", pulled.seq, pulled.msgid, problem
        )
        raw: dict[str, Any] = {"seq": pulled.seq, "msgid": pulled.msgid, "error": problem}
        return Incoming(
            source="archive",
            dedup_key=f"archive-error:{pulled.msgid or pulled.seq}",
            raw=json.dumps(raw, ensure_ascii=False),
            event=None,
            event_type=UNDECRYPTABLE,
        )

    async def _give_up(self) -> None:
        with contextlib.suppress(Exception):
            async with self.sessions() as session, session.begin():
                await archive_cursor.give_up(session, self.name, token=self.token)

    async def run(self, stop: asyncio.Event) -> None:
        """Pull on every wake-up and every `interval` until `stop`; a failed pull is
        logged, counted and retried with backoff, never the end of the loop."""
        while not stop.is_set():
            self._wake.clear()  # before the pull: a wake-up during it is not lost
            try:
                report = await self.pull(stop)
            except Exception as exc:
                failures = self.health.failed(PULL_LOOP, exc) if self.health else 1
                delay = backoff_seconds(failures, base=1.0, cap=min(60.0, self.interval))
                log.warning("archive pull failed (%s); retrying in %.1f s", exc, delay)
                await _wait(stop, None, delay)
                continue
            if self.health is not None:
                self.health.succeeded(PULL_LOOP)
            if report.pages:
                log.info("archive pull: %s", report.note())
            await _wait(stop, self._wake, self.interval)

    async def aclose(self) -> None:
        await self._give_up()
        await self.source.aclose()


async def _wait(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Until `stop`, `wake` (if given) or `seconds` have passed."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
