"""What both 智能机器人 reply channels share: a reply answers one message, once.

A reply is tied to the message it answers (its response_url, or the long connection's
callback req_id), so it is one outbox row, never split: a text over the limit is cut
at a line with "…". WeCom takes it within an hour of the message (a response_url's
documented lifetime; the long connection's own limit is not documented and is held
to the same hour), so an older row is not sent: it fails with the reason.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime, timedelta
from typing import ClassVar

from handlers.channels.base import Capabilities, Channel, JSONDict
from storage.outbox import NewMessage

REPLY_TTL = timedelta(hours=1)


def fit(text: str, max_bytes: int) -> str:
    """The text, cut at a line (or, for one long line, by characters) to fit."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    budget = max_bytes - len("\n…".encode())
    kept = ""
    for line in text.splitlines(keepends=True):
        if len((kept + line).encode("utf-8")) > budget:
            break
        kept += line
    if not kept:
        kept = text
        while len(kept.encode("utf-8")) > budget:
            kept = kept[: max(1, len(kept) * 9 // 10)]
    return kept.rstrip("\n") + "\n…"


def reply_target(chat_id: str | None, member_id: str) -> str:
    """Whom a reply reaches, as people read it: the group, or the member in 单聊."""
    return (chat_id or f"single:{member_id}")[:200]


class AibotReplyChannel(Channel):
    """A reply through the 智能机器人 itself; subclasses say how it travels."""

    capabilities: ClassVar[Capabilities] = Capabilities(True, True, True, 4096, None)

    @abstractmethod
    def body(self, text: str, handle: str, dedup_key: str | None) -> JSONDict:
        """The reply as WeCom takes it (markdown over HTTP, a finished stream on the
        long connection)."""

    def compose(
        self,
        *,
        handle: str,
        received_at: datetime,
        text: str,
        origin: str,
        chat_id: str | None,
        member_id: str,
        dedup_key: str | None,
    ) -> NewMessage:
        """`handle`: the response_url, or the callback frame's req_id."""
        target = reply_target(chat_id, member_id)
        content = fit(text, self.capabilities.max_text_bytes)
        return NewMessage(
            channel=self.name,
            target=target,
            payload={
                "reply_to": handle,
                "received_at": received_at.isoformat(),
                "body": self.body(content, handle, dedup_key),
            },
            rate_key=self.rate_key(target),
            # Replies in one chat go out in the order they were decided; per channel, so
            # a reply waiting for the long connection never holds up one over HTTP.
            order_key=f"{self.name}:{target}",
            origin=origin,
            chat_id=chat_id,
            dedup_key=dedup_key,
            member_id=member_id,
        )

    def stale_reason(self, payload: JSONDict, now: datetime) -> str | None:
        try:
            received = datetime.fromisoformat(str(payload["received_at"]))
        except (KeyError, ValueError):
            return "the reply does not say when its message came; it cannot be sent"
        if now - received > REPLY_TTL:
            minutes = int((now - received).total_seconds() // 60)
            return (
                f"expired: the message came {minutes} min ago and WeCom takes its reply "
                "within an hour only (response_url / long connection); not sent"
            )
        return None
