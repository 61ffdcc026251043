"""智能机器人 reply on the long connection: `aibot_respond_msg` echoing the callback
frame's req_id, with a finished stream (notes §4.5).

Only the replica that holds the connection can send these rows (`needs_connection`);
the others' dispatchers do not claim them (bot/workers/dispatch.py). The frame is
acknowledged on the connection; a non-zero errcode there is the row's failure.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from handlers.channels.aibot_reply import AibotReplyChannel
from handlers.channels.base import Capabilities, JSONDict, SendClient

# A stream's content may hold 20480 bytes (notes §4.5).
STREAM_BYTES = 20480


class AibotStreamChannel(AibotReplyChannel):
    name = "aibot_stream"
    capabilities: ClassVar[Capabilities] = Capabilities(True, True, True, STREAM_BYTES, None)
    needs_connection: ClassVar[bool] = True

    def body(self, text: str, handle: str, dedup_key: str | None) -> JSONDict:
        # The stream id names this reply; one frame with finish=true is the whole stream.
        stream_id = hashlib.sha256((dedup_key or handle).encode("utf-8")).hexdigest()[:24]
        return {"msgtype": "stream", "stream": {"id": stream_id, "finish": True, "content": text}}

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        return await client.aibot_respond(
            str(payload.get("reply_to") or ""), dict(payload.get("body") or {})
        )
