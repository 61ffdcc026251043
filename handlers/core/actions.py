"""What features decide: plain data. The executor (executor.py) carries it out.

A feature's `decide` returns a list of these; it never writes to the database or
calls WeCom itself. Actions that queue a message carry an idempotency key, or get
one from the source event (`Context.source_id`), so replaying an event or a due
item can never queue a second copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.core.events import Message


@dataclass(frozen=True)
class Action:
    """Base of every action."""


@dataclass(frozen=True)
class Note(Action):
    """A line for the log of what happened to this event or due item."""

    text: str


@dataclass(frozen=True)
class Stop(Action):
    """Later handlers (lower priority groups) do not run for this event."""

    reason: str


@dataclass(frozen=True)
class QueueGroupText(Action):
    """Post a text into a group through the group's channel (split to fit)."""

    chat_id: str
    text: str
    origin: str
    key: str | None = None  # None: derived from the source event
    member_id: str | None = None  # the member it is about, if any (cancelled if they leave)


@dataclass(frozen=True)
class QueuePrivateText(Action):
    """Message one member privately: app message inside, owner-confirmed task outside."""

    chat_id: str
    member_id: str
    text: str
    origin: str
    key: str | None = None


@dataclass(frozen=True)
class AibotReplyTo:
    """How a 智能机器人 message is answered through the bot: the long connection's
    callback req_id, else its response_url; `received_at` starts the reply's hour."""

    req_id: str | None
    response_url: str | None
    received_at: datetime

    @classmethod
    def of(cls, event: Message) -> AibotReplyTo | None:
        """None unless the message came through the 智能机器人 with a way to answer it."""
        if event.source != "aibot" or not (event.aibot_req_id or event.response_url):
            return None
        return cls(event.aibot_req_id, event.response_url, event.occurred_at)


@dataclass(frozen=True)
class QueueAibotReply(Action):
    """Answer a 智能机器人 message through the bot itself (markdown): on its long
    connection or once through its response_url. In a group the reply shows there."""

    reply_to: AibotReplyTo
    chat_id: str | None  # None: 单聊 with the member
    member_id: str
    text: str
    origin: str
    key: str | None = None


@dataclass(frozen=True)
class CancelQueued(Action):
    """Queued messages about a member that must not go out any more."""

    member_id: str
    chat_id: str | None  # None: in every group (a private 退订)
    reason: str


@dataclass(frozen=True)
class AddToWelcomeBatch(Action):
    """Newcomers join the group's open welcome batch (opened, due at `due_at`, if none)."""

    chat_id: str
    members: tuple[dict[str, Any], ...]
    due_at: datetime


@dataclass(frozen=True)
class PlannedStep:
    key: str
    index: int
    due_at: datetime


@dataclass(frozen=True)
class Enroll(Action):
    """Start a member's touch sequence with its steps planned."""

    chat_id: str
    member_id: str
    playbook: str
    steps: tuple[PlannedStep, ...]


@dataclass(frozen=True)
class EndEnrollments(Action):
    """Stop a member's active sequences; their pending steps are skipped with the reason."""

    member_id: str
    chat_id: str | None
    status: str  # stopped | cancelled
    reason: str


@dataclass(frozen=True)
class OptOut(Action):
    """The member said 退订: no more touches (in one group, or everywhere)."""

    member_id: str
    chat_id: str | None


@dataclass(frozen=True)
class DueDecision:
    """What a feature's pure decide() says about one due item (a welcome batch, a
    touch step): the engine records the status and reason, the executor applies the
    actions, and a deferred item is due again at `due_again_at`."""

    status: str  # sent | skipped | deferred
    reason: str
    actions: tuple[Action, ...] = ()
    due_again_at: datetime | None = None
