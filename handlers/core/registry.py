"""Event type → handlers, in priority groups (lower runs first; a handler may stop the rest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from handlers.core.context import Context
from handlers.core.events import Event

STOP = "stop"
Handler = Callable[[Event, Context], Awaitable[str | None]]


@dataclass(order=True)
class _Entry:
    group: int
    order: int
    name: str = field(compare=False)
    handler: Handler = field(compare=False)


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, list[_Entry]] = {}
        self._count = 0

    def add(self, event_type: str, handler: Handler, *, group: int = 50, name: str = "") -> None:
        self._count += 1
        entry = _Entry(group, self._count, name or getattr(handler, "__name__", "handler"), handler)
        self._entries.setdefault(event_type, []).append(entry)
        self._entries[event_type].sort()

    def handlers_for(self, event_type: str) -> list[str]:
        return [entry.name for entry in self._entries.get(event_type, [])]

    async def dispatch(self, event: Event, ctx: Context) -> list[str]:
        """Run the handlers for the event in order; return the names that ran."""
        ran: list[str] = []
        for entry in self._entries.get(event.type, []):
            ran.append(entry.name)
            if await entry.handler(event, ctx) == STOP:
                break
        return ran
