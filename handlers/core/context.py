"""What a handler gets: the transaction, the clock, the time zone and the playbooks."""

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
    notes: list[str] = field(default_factory=list)  # what the handlers did, for the log

    def note(self, text: str) -> None:
        self.notes.append(text)
