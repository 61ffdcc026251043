"""Internal group created by our app (appchat/send): posts at once."""

from __future__ import annotations

from typing import ClassVar

from handlers.channels.base import Capabilities, GroupChannel, JSONDict, RatePolicy, SendClient


class AppchatChannel(GroupChannel):
    name = "appchat"
    capabilities: ClassVar[Capabilities] = Capabilities(True, True, True, 2048, None)
    rate_policy: ClassVar[RatePolicy | None] = RatePolicy(20, 60)
    limited_api: ClassVar[str | None] = "appchat/send"

    def payload(self, chat_id: str, config: JSONDict, text: str) -> tuple[str, JSONDict]:
        return chat_id, {"chatid": chat_id, "msgtype": "text", "text": {"content": text}}

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        return await client.appchat_send(dict(payload), retries=0)
