"""Internal group robot (群机器人): posts at once through its webhook key."""

from __future__ import annotations

from typing import ClassVar

from handlers.channels.base import (
    CannotPost,
    Capabilities,
    GroupChannel,
    JSONDict,
    RatePolicy,
    SendClient,
)


class WebhookChannel(GroupChannel):
    name = "webhook"
    capabilities: ClassVar[Capabilities] = Capabilities(True, True, True, 2048, None)
    # WeCom refuses (45009) or silently drops a robot's 21st message within a minute.
    rate_policy: ClassVar[RatePolicy | None] = RatePolicy(20, 60)

    def payload(self, chat_id: str, config: JSONDict, text: str) -> tuple[str, JSONDict]:
        key = str(config.get("key") or "")
        if not key:
            raise CannotPost("webhook channel has no robot key")
        return key, {"msgtype": "text", "text": {"content": text}}

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        return await client.webhook_send(target, dict(payload), retries=0)
