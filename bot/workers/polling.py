"""The loop both background workers share: work in rounds, sleep until woken or due.

A round is `run_once` plus, when there was nothing to do, `idle_wait` (which may
itself query the database). Any exception in a round is logged, counted, and
followed by a backoff; the loop never ends until `stop` is set. Each good round
is reported to LoopHealth, so /readyz can tell a loop that no longer works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.workers.health import LoopHealth, backoff_seconds

log = logging.getLogger(__name__)


class PollingWorker:
    """Subclasses implement `run_once` (handle one batch, return how many) and may
    override `idle_wait` (seconds to sleep when there is nothing to do)."""

    name = "worker"
    backoff_base = 0.5  # seconds after the first failed round; doubles, capped at 30 s
    # After a round that found work but less than a full batch, wait this long
    # before the next one, so work that trickles in is taken in batches (the
    # per-batch cost is paid once for many rows); a full batch goes on at once.
    pace_seconds = 0.0
    batch_size = 1

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self.health: LoopHealth | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        raise NotImplementedError

    async def idle_wait(self) -> float:
        return 1.0

    async def after_round(self) -> None:
        """Hook for per-round bookkeeping (metrics)."""

    async def drain(self, *, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            handled = await self.run_once()
            total += handled
            if not handled:
                break
        return total

    async def _round(self) -> tuple[int, float]:
        """One round: (rows handled, seconds to sleep when idle)."""
        handled = await self.run_once()
        await self.after_round()
        if handled:
            return handled, 0.0
        self._wake.clear()  # before idle_wait: a wake during it is not lost
        return 0, await self.idle_wait()

    async def run_forever(self, stop: asyncio.Event) -> None:
        if self.health is not None:
            self.health.started(self.name)
        while not stop.is_set():
            try:
                handled, timeout = await self._round()
            except Exception as exc:  # the database went away, a bug: back off, go on
                failures = self.health.failed(self.name, exc) if self.health else 1
                delay = backoff_seconds(failures, base=self.backoff_base)
                log.exception("%s round failed; retrying in %.1f s", self.name, delay)
                await _sleep_unless_stopped(stop, delay)
                continue
            if self.health is not None:
                self.health.succeeded(self.name)
            if handled:
                if handled < self.batch_size and self.pace_seconds > 0:
                    await _sleep_unless_stopped(stop, self.pace_seconds)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        if self.health is not None:
            self.health.stopped(self.name)


async def _sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
