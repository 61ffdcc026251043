"""What a handler gets: the transaction, the clock, the time zone, the playbooks, and
the id of what is being handled (an inbox event or a due item), from which every
effect takes its natural idempotency key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import PlaybookSet


@dataclass
class Context:
    session: AsyncSession
    now: datetime
    tz: ZoneInfo
    playbooks: PlaybookSet
    source_id: str | None = None  # "inbox:42", "touch_step:7": the natural key of effects
    notes: list[str] = field(default_factory=list)  # what the handlers did, for the log
    queued: list[int] = field(default_factory=list)  # outbox ids the executor wrote

    def note(self, text: str) -> None:
        self.notes.append(text)
