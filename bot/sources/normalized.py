"""What a source adapter hands to the inbox: an event (or None) plus its dedup key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.events import Event
from storage import inbox

MAX_DEDUP_KEY = 200  # the inbox column's width


@dataclass(frozen=True)
class Incoming:
    source: str
    dedup_key: str
    raw: str
    event: Event | None  # None: stored and acknowledged, but nothing handles it
    event_type: str  # the event's type, or the raw kind for unknown events
    chat_id: str | None = None

    async def store(self, session: AsyncSession, *, now: datetime) -> bool:
        """Into the inbox once per dedup key; True when this call stored it."""
        key = self.dedup_key
        if len(key) > MAX_DEDUP_KEY:  # an outsized MsgId still dedups, by its hash
            key = "sha:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
        return await inbox.insert_once(
            session,
            source=self.source,
            dedup_key=key,
            raw=self.raw,
            event_type=self.event_type,
            event=self.event.model_dump(mode="json") if self.event else None,
            chat_id=self.chat_id,
            status="pending" if self.event else "ignored",
            now=now,
        )
