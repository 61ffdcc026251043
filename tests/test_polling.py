"""The polling loop's pacing: work that trickles in is taken in batches."""

from __future__ import annotations

import asyncio

import pytest

from bot.workers import polling
from bot.workers.polling import PollingWorker


class Scripted(PollingWorker):
    """Handles the counts it is given, one per round, then stops the loop."""

    pace_seconds = 0.1
    batch_size = 10

    def __init__(self, counts: list[int], stop: asyncio.Event) -> None:
        super().__init__()
        self.counts = counts
        self.stop = stop

    async def run_once(self) -> int:
        if not self.counts:
            self.stop.set()
            return 0
        return self.counts.pop(0)

    async def idle_wait(self) -> float:
        return 0.0


async def test_a_partial_batch_waits_before_the_next_round_and_a_full_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    async def record(stop: asyncio.Event, seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(polling, "_sleep_unless_stopped", record)
    stop = asyncio.Event()
    worker = Scripted([10, 10, 3, 10, 1], stop)
    await worker.run_forever(stop)
    # Only the rounds that found some work but less than a batch are paced.
    assert waits == [0.1, 0.1]
