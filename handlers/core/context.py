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
from storage.models import Group


@dataclass
class Deferred:
    """Bookkeeping actions of a whole batch of events, applied together before its
    commit (one statement for a batch's message counters, not one per message)."""

    actions: dict[type, list[Any]] = field(default_factory=dict)

    def add(self, action: Any) -> None:
        self.actions.setdefault(type(action), []).append(action)


@dataclass
class BatchMemo:
    """What the events of one batch (one transaction) look up alike, remembered for
    the batch: each group's row (None: the bot does not know the group). The session's
    identity map holds rows weakly, so without this every message of a busy group
    would query its group again, and a missing row is never cached at all (the
    archive carries every group of the corp, registered or not). Whoever creates or
    replaces a remembered row in the batch updates the memo."""

    groups: dict[str, Group | None] = field(default_factory=dict)
    # Feature-owned lookups, by the feature's own key (e.g. the rules' raid state).
    extra: dict[tuple[str, str], Any] = field(default_factory=dict)


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
    memo: BatchMemo = field(default_factory=BatchMemo)  # shared by a batch's events

    def note(self, text: str) -> None:
        self.notes.append(text)

    async def group(self, chat_id: str) -> Group | None:
        """The group's row, or None when the bot does not know the group."""
        if chat_id not in self.memo.groups:
            self.memo.groups[chat_id] = await self.session.get(Group, chat_id)
        return self.memo.groups[chat_id]
