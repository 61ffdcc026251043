"""What a source adapter hands to the inbox: an event (or None) plus its dedup key."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from handlers.core.events import Event
from storage import inbox
from storage.inbox_append import InboxAppender

MAX_DEDUP_KEY = 200  # the inbox column's width


@dataclass(frozen=True)
class Incoming:
    source: str
    dedup_key: str
    raw: str
    event: Event | None  # None: stored and acknowledged, but nothing handles it
    event_type: str  # the event's type, or the raw kind for unknown events
    chat_id: str | None = None

    @property
    def stored_key(self) -> str:
        """The dedup key as stored: an outsized MsgId still dedups, by its hash."""
        key = self.dedup_key
        if len(key) > MAX_DEDUP_KEY:
            key = "sha:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
        return key

    def row(self) -> inbox.NewInboxRow:
        return inbox.NewInboxRow(
            source=self.source,
            dedup_key=self.stored_key,
            raw=self.raw,
            event_type=self.event_type,
            event=self.event.model_dump(mode="json") if self.event else None,
            chat_id=self.chat_id,
            status="pending" if self.event else "ignored",
        )


async def store_many(
    appender: InboxAppender, incoming: Sequence[Incoming], *, now: datetime
) -> list[bool]:
    """Many into the inbox in one transaction; for each, True when this call stored it
    (a dedup key seen twice in the batch is stored by its first occurrence)."""
    first: dict[str, int] = {}
    for index, item in enumerate(incoming):
        first.setdefault(item.stored_key, index)
    rows = [incoming[index].row() for index in sorted(first.values())]
    stored = await appender.append(rows, now=now)
    return [
        first[item.stored_key] == index and item.stored_key in stored
        for index, item in enumerate(incoming)
    ]
