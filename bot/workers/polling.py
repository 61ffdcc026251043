"""The loop both background workers share: work in rounds, sleep until woken or due."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class PollingWorker:
    """Subclasses implement `run_once` (handle one batch, return how many) and may
    override `idle_wait` (seconds to sleep when there is nothing to do)."""

    name = "worker"

    def __init__(self) -> None:
        self._wake = asyncio.Event()

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

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                handled = await self.run_once()
                await self.after_round()
            except Exception:  # keep the loop alive; the next round retries
                log.exception("%s round failed", self.name)
                handled = 0
            if handled:
                continue
            self._wake.clear()
            timeout = await self.idle_wait()  # before wait(): no orphaned coroutine on cancel
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
