"""Event type → handlers, in priority groups (lower runs first).

A handler reads the facts it needs and returns actions; the executor applies them
before the next handler runs, so a later group sees what an earlier one recorded
(the welcome sees the membership bookkeeping wrote). A `Stop` action ends the
event's handling after the handler that returned it (moderation will use it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.core.events import Event
from handlers.core.executor import Executor

Handler = Callable[[Event, Context], Awaitable[Sequence[Action]]]


@dataclass(order=True)
class _Entry:
    group: int
    order: int
    name: str = field(compare=False)
    handler: Handler = field(compare=False)


class Registry:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
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
            actions = await entry.handler(event, ctx)
            if (await self.executor.execute(actions, ctx)).stopped:
                break
        return ran
