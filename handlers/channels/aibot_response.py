"""智能机器人 reply over HTTP: one POST of markdown to the message's response_url.

WeCom gives each callback message a response_url that takes one call within an hour
(notes §4.6). The client only ever POSTs to a URL on WECOM_API_BASE's host
(bot/wecom/client.py), so a payload can never make the service call elsewhere.
Whatever error WeCom answers (a used or expired url) is final: the url cannot be
used again, so the row fails instead of retrying; only transport errors and WeCom's
"busy" codes are retried (a retry of a call that did arrive is refused as used).
"""

from __future__ import annotations

from typing import ClassVar

from handlers.channels.aibot_reply import AibotReplyChannel
from handlers.channels.base import JSONDict, SendClient


class AibotResponseChannel(AibotReplyChannel):
    name = "aibot_response"
    limited_api: ClassVar[str | None] = "aibot/response"

    def body(self, text: str, handle: str, dedup_key: str | None) -> JSONDict:
        return {"msgtype": "markdown", "markdown": {"content": text}}

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        # The client refuses a foreign host and makes WeCom's refusals final.
        return await client.aibot_response(
            str(payload.get("reply_to") or ""), dict(payload.get("body") or {}), retries=0
        )
