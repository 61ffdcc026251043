"""Which background loops are alive: the last good round of each, for /readyz and /metrics.

A loop that dies, or keeps failing (its database is gone), must not look healthy:
the service would acknowledge callbacks and never process them. Each loop reports
its successful rounds and its failures here; readiness asks whether every loop
has had a good round recently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.metrics import Metrics


@dataclass
class LoopState:
    started_at: datetime
    rounds: bool  # False: a loop that waits on outside events (the file watcher)
    running: bool = True
    last_success: datetime | None = None
    failures_in_a_row: int = 0
    errors: int = 0
    last_error: str | None = None


class LoopHealth:
    def __init__(self, clock: Callable[[], datetime], metrics: Metrics | None = None) -> None:
        self.clock = clock
        self.metrics = metrics
        self.loops: dict[str, LoopState] = {}

    def started(self, name: str, *, rounds: bool = True) -> None:
        self.loops[name] = LoopState(started_at=self.clock(), rounds=rounds)

    def succeeded(self, name: str) -> None:
        state = self._state(name)
        state.last_success = self.clock()
        state.failures_in_a_row = 0
        state.running = True

    def failed(self, name: str, exc: BaseException) -> int:
        """Record a failed round; returns how many failed in a row (for the backoff)."""
        state = self._state(name)
        state.errors += 1
        state.failures_in_a_row += 1
        state.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.metrics is not None:
            self.metrics.loop_errors.labels(name).inc()
        return state.failures_in_a_row

    def stopped(self, name: str) -> None:
        self._state(name).running = False

    def age(self, name: str, now: datetime) -> float:
        """Seconds since the loop's last good round (or its start, before the first)."""
        state = self.loops[name]
        since = state.last_success or state.started_at
        return max(0.0, (now - since).total_seconds())

    def problems(self, *, stale_after: float) -> dict[str, str]:
        """Loop name → what is wrong, for every loop that is not doing its work."""
        now = self.clock()
        found: dict[str, str] = {}
        for name, state in self.loops.items():
            if not state.running:
                found[name] = "not running"
            elif state.rounds and self.age(name, now) > stale_after:
                detail = f"; last error: {state.last_error}" if state.last_error else ""
                found[name] = f"no good round for {self.age(name, now):.0f} s{detail}"
        return found

    def export(self) -> None:
        """Set the age gauges (called when /metrics is scraped)."""
        if self.metrics is None:
            return
        now = self.clock()
        for name, state in self.loops.items():
            self.metrics.loop_age.labels(name).set(self.age(name, now))
            self.metrics.loop_running.labels(name).set(1 if state.running else 0)

    def _state(self, name: str) -> LoopState:
        if name not in self.loops:
            self.started(name)
        return self.loops[name]


def backoff_seconds(failures_in_a_row: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    return float(min(cap, base * 2.0 ** max(0, failures_in_a_row - 1)))
