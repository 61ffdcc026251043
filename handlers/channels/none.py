"""A group the bot cannot post into (no robot, not ours, not a customer group)."""

from __future__ import annotations

from typing import ClassVar

from handlers.channels.base import CannotPost, Capabilities, GroupChannel, JSONDict, SendClient


class NoChannel(GroupChannel):
    name = "none"
    capabilities: ClassVar[Capabilities] = Capabilities(False, False, False, 0, None)

    def payload(self, chat_id: str, config: JSONDict, text: str) -> tuple[str, JSONDict]:
        raise CannotPost("this group has no channel the bot can post through")

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        raise CannotPost("this group has no channel the bot can post through")
