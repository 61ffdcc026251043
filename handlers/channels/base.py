"""What every channel is: capabilities, a rate policy, composition and a send.

A channel is one way a message reaches WeCom. Features never switch on channel
names: they ask the channel what it can do (post at once? a daily quota? how
long?) and let it build the outbox rows; the dispatcher asks the same object
how to send a row and which rate window it counts against.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from storage.outbox import NewMessage

JSONDict = dict[str, Any]


class CannotPost(Exception):
    """The channel cannot carry this message; the reason is operator-facing."""


@dataclass(frozen=True)
class Capabilities:
    can_post: bool
    immediate: bool  # False: the owner must confirm in the client (add_msg_template)
    markdown: bool
    max_text_bytes: int
    daily_quota: int | None


@dataclass(frozen=True)
class RatePolicy:
    """At most `messages` per `seconds` through one rate key (WeCom's own limits)."""

    messages: int
    seconds: int


class SendClient(Protocol):
    """The part of the WeCom client channels use (bot/wecom/client.py implements it)."""

    async def webhook_send(
        self, key: str, message: JSONDict, *, retries: int | None = None
    ) -> JSONDict: ...

    async def appchat_send(self, message: JSONDict, *, retries: int | None = None) -> JSONDict: ...

    async def message_send(self, message: JSONDict, *, retries: int | None = None) -> JSONDict: ...

    async def appchat_update(self, body: JSONDict, *, retries: int | None = None) -> JSONDict: ...

    async def add_msg_template(self, body: JSONDict, *, retries: int | None = None) -> JSONDict: ...

    async def aibot_response(
        self, url: str, message: JSONDict, *, retries: int | None = None
    ) -> JSONDict: ...

    async def aibot_respond(self, req_id: str, body: JSONDict) -> JSONDict: ...


class Channel(ABC):
    """One outbound channel. Subclasses are stateless singletons (see registry.py)."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    rate_policy: ClassVar[RatePolicy | None] = None
    # The server API whose corp-wide call frequency WeCom limits for this channel: a
    # 45009 from it pauses every send through that API, whatever the target. None: the
    # limit is the target's own (a webhook robot key), so a 45009 pauses that key alone.
    limited_api: ClassVar[str | None] = None
    # True: only the process holding the channel's connection (the 智能机器人 long
    # connection) can send its rows; every other dispatcher leaves them alone.
    needs_connection: ClassVar[bool] = False

    def stale_reason(self, payload: JSONDict, now: datetime) -> str | None:
        """Why a row can no longer be sent at all (a reply whose response_url expired),
        or None. The dispatcher asks right before a send and fails such a row."""
        return None

    @abstractmethod
    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        """One attempt, no retries: the dispatcher owns retries, backoff and pauses."""

    def rate_key(self, target: str) -> str:
        return f"{self.name}:{target}"

    def pause_key(self, target: str) -> str:
        """The scope a 45009 through this channel and target pauses (see `limited_api`)."""
        return self.rate_key(target) if self.limited_api is None else f"api:{self.limited_api}"


class GroupChannel(Channel):
    """A channel that posts into a group chat."""

    @abstractmethod
    def payload(self, chat_id: str, config: JSONDict, text: str) -> tuple[str, JSONDict]:
        """(target, request body) for one text part; raises CannotPost when misconfigured."""

    def compose(
        self,
        *,
        chat_id: str,
        config: JSONDict,
        text: str,
        origin: str,
        dedup_key: str | None,
        member_id: str | None = None,
    ) -> list[NewMessage]:
        """One outbox row per part that fits the channel's length limit, in order."""
        if not self.capabilities.can_post:
            raise CannotPost("this group has no channel the bot can post through")
        messages: list[NewMessage] = []
        for index, part in enumerate(split_text(text, self.capabilities.max_text_bytes)):
            target, body = self.payload(chat_id, config, part)
            key = (
                None if dedup_key is None else (dedup_key if index == 0 else f"{dedup_key}#{index}")
            )
            messages.append(
                NewMessage(
                    channel=self.name,
                    target=target,
                    payload=body,
                    rate_key=self.rate_key(target),
                    order_key=f"group:{chat_id}",
                    origin=origin,
                    chat_id=chat_id,
                    dedup_key=key,
                    member_id=member_id,
                )
            )
        return messages


class PrivateChannel(Channel):
    """A channel that reaches one member privately."""

    @abstractmethod
    def payload(self, member_id: str, sender: str | None, text: str) -> JSONDict:
        """The request body; raises CannotPost when this member cannot be reached."""

    def compose(
        self,
        *,
        member_id: str,
        sender: str | None,
        text: str,
        origin: str,
        chat_id: str | None,
        dedup_key: str | None,
    ) -> NewMessage:
        return NewMessage(
            channel=self.name,
            target=member_id,
            payload=self.payload(member_id, sender, text),
            rate_key=self.rate_key(member_id),
            order_key=f"private:{member_id}",
            origin=origin,
            chat_id=chat_id,
            dedup_key=dedup_key,
            member_id=member_id,
        )


def split_text(text: str, max_bytes: int) -> list[str]:
    """Split on line boundaries so each part fits WeCom's byte limit."""
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode("utf-8")) > max_bytes:  # one over-long line: cut by characters
            cut = line
            while len(cut.encode("utf-8")) > max_bytes:
                cut = cut[: max(1, len(cut) * 9 // 10)]
            if current:
                parts.append(current)
                current = ""
            parts.append(cut)
            line = line[len(cut) :]
        if len((current + line).encode("utf-8")) > max_bytes:
            parts.append(current)
            current = line
        else:
            current += line
    if current:
        parts.append(current)
    return [p.rstrip("\n") for p in parts if p.strip()]
