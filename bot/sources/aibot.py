"""智能机器人 (aibot) JSON callbacks → normalized events; only @-mentions reach us."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from bot.sources.normalized import Incoming
from handlers.core.events import Message

_MENTION = re.compile(r"^\s*@\S+\s*")


def normalize_aibot(payload: dict[str, Any], plaintext: str) -> Incoming:
    msg_id = str(payload.get("msgid") or "")
    key = f"aibot:{msg_id}" if msg_id else "sha:" + hashlib.sha256(plaintext.encode()).hexdigest()
    msgtype = str(payload.get("msgtype") or "")
    event = None
    if msgtype in ("text", "mixed"):
        if msgtype == "text":
            text = str((payload.get("text") or {}).get("content") or "")
        else:
            items = (payload.get("mixed") or {}).get("msg_item") or []
            text = " ".join(
                str((item.get("text") or {}).get("content") or "")
                for item in items
                if isinstance(item, dict) and item.get("msgtype") == "text"
            )
        chattype = "single" if payload.get("chattype") == "single" else "group"
        event = Message(
            source="aibot",
            chat_id=str(payload.get("chatid") or "") or None,
            occurred_at=datetime.now(UTC),
            msg_id=msg_id or None,
            sender=str((payload.get("from") or {}).get("userid") or ""),
            msgtype="text",
            text=_MENTION.sub("", text, count=1).strip(),
            chat_type=chattype,
            mentioned_bot=True,
            response_url=payload.get("response_url") or None,
        )
    return Incoming(
        source="aibot",
        dedup_key=key,
        raw=plaintext,
        event=event,
        event_type=event.type if event else f"aibot:{msgtype or 'unknown'}",
        chat_id=event.chat_id if event else None,
    )
