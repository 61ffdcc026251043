"""What a handler gets: the transaction, the clock, the time zone, the playbooks, and
the id of what is being handled (an inbox event or a due item), from which every
effect takes its natural idempotency key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import PlaybookSet


@dataclass
class Deferred:
    """Bookkeeping actions of a whole batch of events, applied together before its
    commit (one statement for a batch's message counters, not one per message)."""

    actions: dict[type, list[Any]] = field(default_factory=dict)

    def add(self, action: Any) -> None:
        self.actions.setdefault(type(action), []).append(action)


@dataclass
class Context:
    session: AsyncSession
    now: datetime
    tz: ZoneInfo
    playbooks: PlaybookSet
    source_id: str | None = None  # "inbox:42", "touch_step:7": the natural key of effects
    notes: list[str] = field(default_factory=list)  # what the handlers did, for the log
    queued: list[int] = field(default_factory=list)  # outbox ids the executor wrote
    applied: set[str] = field(default_factory=set)  # kinds of actions applied (for wake-ups)
    # Shared by the contexts of one transaction's events; None: apply at once.
    deferred: Deferred | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)
