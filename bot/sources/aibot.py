"""智能机器人 (aibot) JSON callbacks → normalized events; only @-mentions reach us."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from bot.sources.message_parts import addresses, field, json_object
from bot.sources.normalized import Incoming
from handlers.core.events import Message, Quoted

_MENTION = re.compile(r"^\s*@\S+\s*")


def _mixed_text(body: Any) -> str:
    items = json_object(body).get("msg_item") or []
    return " ".join(
        field(json_object(item).get("text"), "content")
        for item in items
        if field(json_object(item), "msgtype") == "text"
    ).strip()


def _text_of(kind: str, body: Any) -> str:
    if kind == "mixed":
        return _mixed_text(body)
    # text, and voice: the aibot sends a voice message's transcript as its content
    return field(body, "content")


def _quote(payload: dict[str, Any]) -> Quoted | None:
    quote = payload.get("quote")
    if not isinstance(quote, dict):
        return None
    kind = field(quote, "msgtype") or "text"
    return Quoted(msgtype=kind, text=_text_of(kind, quote.get(kind)))


AIBOT_KINDS = ("text", "mixed", "image", "voice", "file")


def normalize_aibot(
    payload: dict[str, Any],
    plaintext: str,
    *,
    received_at: datetime | None = None,
    req_id: str | None = None,
) -> Incoming:
    """One 智能机器人 message, from an HTTP callback or a long-connection frame (the same
    JSON). `received_at`: when it came (the payload has no time; a response_url is valid
    an hour from then); `req_id`: the long-connection frame's, for the reply to echo."""
    msg_id = str(payload.get("msgid") or "")
    key = f"aibot:{msg_id}" if msg_id else "sha:" + hashlib.sha256(plaintext.encode()).hexdigest()
    msgtype = str(payload.get("msgtype") or "")
    event = None
    if msgtype in AIBOT_KINDS:
        text = _MENTION.sub("", _text_of(msgtype, payload.get(msgtype)), count=1).strip()
        chattype = "single" if payload.get("chattype") == "single" else "group"
        event = Message(
            source="aibot",
            chat_id=str(payload.get("chatid") or "") or None,
            occurred_at=received_at or datetime.now(UTC),
            msg_id=msg_id or None,
            sender=str((payload.get("from") or {}).get("userid") or ""),
            msgtype=msgtype,
            text=text,
            urls=addresses(text),
            quote=_quote(payload),
            chat_type=chattype,
            mentioned_bot=True,
            response_url=str(payload.get("response_url") or "") or None,
            aibot_req_id=req_id or None,
        )
    return Incoming(
        source="aibot",
        dedup_key=key,
        raw=plaintext,
        event=event,
        event_type=event.type if event else f"aibot:{msgtype or 'unknown'}",
        chat_id=event.chat_id if event else None,
    )
