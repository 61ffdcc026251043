"""会话内容存档 records (SPEC §6) → normalized events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.sources.normalized import Incoming
from handlers.core.events import Message


class ArchiveRecord(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    msgid: str = Field(min_length=1, max_length=180)
    action: str = Field(default="send", max_length=40)
    sender: str = Field(default="", alias="from", max_length=128)
    tolist: list[str] = Field(default_factory=list)
    roomid: str = Field(default="", max_length=128)
    msgtime: int = Field(default=0, ge=0, le=10**14, description="milliseconds since the epoch")
    msgtype: str = Field(default="", max_length=40)


def normalize_archive(record: ArchiveRecord, raw: dict[str, Any]) -> Incoming:
    event = None
    if record.action == "send" and record.msgtype in ("text", "markdown"):
        body = raw.get(record.msgtype) or {}
        text = body.get("content", "") if isinstance(body, dict) else ""
        event = Message(
            source="archive",
            chat_id=record.roomid or None,
            occurred_at=datetime.fromtimestamp(record.msgtime / 1000, UTC)
            if record.msgtime
            else datetime.now(UTC),
            msg_id=record.msgid,
            sender=record.sender,
            msgtype=record.msgtype,
            text=str(text),
            chat_type="group" if record.roomid else "single",
        )
    return Incoming(
        source="archive",
        dedup_key=f"archive:{record.msgid}",
        raw=json.dumps(raw, ensure_ascii=False),
        event=event,
        event_type=event.type if event else f"archive:{record.msgtype or record.action}",
        chat_id=record.roomid or None,
    )
