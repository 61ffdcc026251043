"""The long connection's JSON frames (notes §4.5), built and read purely.

Client → server: `aibot_subscribe` (bot_id, secret), `ping`, `aibot_respond_msg`
(echoing a callback's req_id). Server → client: acks (no `cmd`; `headers.req_id`,
`errcode`, `errmsg`), `aibot_msg_callback` (the body is a message, the same JSON an
HTTP callback decrypts to) and `aibot_event_callback` (`body.event.eventtype`).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

SUBSCRIBE = "aibot_subscribe"
PING = "ping"
RESPOND = "aibot_respond_msg"
MESSAGE = "aibot_msg_callback"
EVENT = "aibot_event_callback"
DISCONNECTED_EVENT = "disconnected_event"  # a newer connection for the bot took over


@dataclass(frozen=True)
class Frame:
    cmd: str | None  # None: an ack of a frame we sent
    req_id: str
    body: dict[str, Any] = field(default_factory=dict)
    errcode: int | None = None
    errmsg: str = ""

    @property
    def event_type(self) -> str | None:
        event = self.body.get("event")
        kind = event.get("eventtype") if isinstance(event, dict) else None
        return str(kind) if kind else None


def new_req_id(prefix: str) -> str:
    """Unique per frame, shaped like the official SDK's (`prefix_ms_random`)."""
    return f"{prefix}_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


def _dump(cmd: str, req_id: str, body: dict[str, Any] | None = None) -> str:
    frame: dict[str, Any] = {"cmd": cmd, "headers": {"req_id": req_id}}
    if body is not None:
        frame["body"] = body
    return json.dumps(frame, ensure_ascii=False)


def subscribe(req_id: str, bot_id: str, secret: str) -> str:
    return _dump(SUBSCRIBE, req_id, {"bot_id": bot_id, "secret": secret})


def ping(req_id: str) -> str:
    return _dump(PING, req_id)


def respond(req_id: str, body: dict[str, Any]) -> str:
    return _dump(RESPOND, req_id, body)


def parse(raw: str | bytes) -> Frame | None:
    """A frame, or None for anything that is not one (it is logged and skipped)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    headers = data.get("headers")
    req_id = headers.get("req_id") if isinstance(headers, dict) else None
    body = data.get("body")
    errcode = data.get("errcode")
    cmd = data.get("cmd")
    return Frame(
        cmd=str(cmd) if cmd else None,
        req_id=str(req_id or ""),
        body=body if isinstance(body, dict) else {},
        errcode=errcode if isinstance(errcode, int) else None,
        errmsg=str(data.get("errmsg") or ""),
    )
