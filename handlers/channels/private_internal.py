"""A private app message (message/send) to an internal member: immediate."""

from __future__ import annotations

from typing import ClassVar

from handlers.channels.base import Capabilities, JSONDict, PrivateChannel, RatePolicy, SendClient


class PrivateInternalChannel(PrivateChannel):
    name = "private"
    capabilities: ClassVar[Capabilities] = Capabilities(True, True, True, 2048, None)
    # WeCom: an app may message one member at most 30 times a minute.
    rate_policy: ClassVar[RatePolicy | None] = RatePolicy(30, 60)
    # Over the per-member rate WeCom drops silently; a 45009 is the app's call frequency.
    limited_api: ClassVar[str | None] = "message/send"

    def payload(self, member_id: str, sender: str | None, text: str) -> JSONDict:
        return {"touser": member_id, "msgtype": "text", "text": {"content": text}}

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        return await client.message_send(dict(payload), retries=0)
