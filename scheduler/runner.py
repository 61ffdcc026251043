"""The in-process APScheduler 3 loop: thin jobs, the database decides what is due."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)


def build_scheduler(
    *,
    tz: Any,
    tick: Callable[[], Awaitable[Any]],
    tick_seconds: float,
    housekeeping: Callable[[], Awaitable[Any]] | None = None,
    templates: Callable[[], Awaitable[Any]] | None = None,
) -> AsyncIOScheduler:
    # misfire_grace_time: APScheduler 3 defaults to 1 s and would silently drop a
    # tick after a short stall; the tick is idempotent, so a late run is always
    # right. coalesce: after a pause run once, not once per missed interval.
    # max_instances=1: a slow tick is never overlapped by the next one.
    scheduler = AsyncIOScheduler(
        timezone=tz,
        job_defaults={"misfire_grace_time": 300, "coalesce": True, "max_instances": 1},
    )
    scheduler.add_job(
        tick, IntervalTrigger(seconds=tick_seconds, timezone=tz), id="tick", name="tick"
    )
    if templates is not None:
        # Cheap when nothing changed; picks up playbook edits and new customer groups.
        scheduler.add_job(templates, IntervalTrigger(seconds=30, timezone=tz), id="templates")
    if housekeeping is not None:
        scheduler.add_job(housekeeping, IntervalTrigger(minutes=5, timezone=tz), id="housekeeping")
    return scheduler
