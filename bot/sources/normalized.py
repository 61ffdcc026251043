"""What a source adapter hands to the inbox: an event (or None) plus its dedup key."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.events import Event


@dataclass(frozen=True)
class Incoming:
    source: str
    dedup_key: str
    raw: str
    event: Event | None  # None: stored and acknowledged, but nothing handles it
    event_type: str  # the event's type, or the raw kind for unknown events
    chat_id: str | None = None
