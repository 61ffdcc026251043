"""会话内容存档 records (SPEC §6) → normalized events.

Every message kind handlers care about becomes one `message` event (kind, text,
title, addresses, mini-program, shared contact, revoked id); other kinds (red
packets, votes, meeting notices, …) are stored and acknowledged with no event.
Field names follow Tencent's record format (document 91774).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.sources.message_parts import addresses, field, joined, json_object
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


# What a kind's body says, as Message fields (text, title, urls, weapp, card_user, revokes).
Parts = dict[str, Any]


def _text(body: Any) -> Parts:
    return {"text": field(body, "content")}


def _markdown(body: Any) -> Parts:
    # Older records put the content under "info".
    return {"text": field(body, "content") or field(json_object(body).get("info"), "content")}


def _link(body: Any) -> Parts:
    title, url = field(body, "title"), field(body, "link_url")
    return {"text": joined(title, field(body, "description")), "title": title, "urls": [url]}


def _weapp(body: Any) -> Parts:
    title = field(body, "title")
    return {
        "text": joined(title, field(body, "description")),
        "title": title,
        "weapp": field(body, "displayname") or field(body, "username"),
    }


def _card(body: Any) -> Parts:
    return {"text": field(body, "corpname"), "card_user": field(body, "userid")}


def _file(body: Any) -> Parts:
    name = field(body, "filename")
    return {"text": name, "title": name}


def _location(body: Any) -> Parts:
    return {"text": joined(field(body, "title"), field(body, "address"))}


def _news(body: Any) -> Parts:
    items = json_object(json_object(body).get("info")).get("item") or []
    items = [json_object(item) for item in items if isinstance(item, dict | str)]
    return {
        "text": joined(*(joined(field(i, "title"), field(i, "description")) for i in items)),
        "title": field(items[0], "title") if items else None,
        "urls": [field(i, "url") for i in items],
    }


def _docmsg(body: Any) -> Parts:
    title = field(body, "title")
    return {"text": title, "title": title, "urls": [field(body, "link_url")]}


def _chatrecord(body: Any) -> Parts:
    title = field(body, "title")
    return {"text": title, "title": title}


def _mixed(body: Any) -> Parts:
    texts = []
    for item in json_object(body).get("item") or []:
        item = json_object(item)
        if field(item, "type") in ("text", "markdown"):
            texts.append(field(json_object(item.get("content")), "content"))
    return {"text": joined(*texts)}


def _revoke(body: Any) -> Parts:
    return {"revokes": field(body, "pre_msgid") or None}


def _nothing(body: Any) -> Parts:
    return {}


KINDS: dict[str, Callable[[Any], Parts]] = {
    "text": _text,
    "markdown": _markdown,
    "link": _link,
    "weapp": _weapp,
    "card": _card,
    "image": _nothing,
    "file": _file,
    "voice": _nothing,
    "video": _nothing,
    "emotion": _nothing,
    "location": _location,
    "mixed": _mixed,
    "news": _news,
    "docmsg": _docmsg,
    "chatrecord": _chatrecord,
    "revoke": _revoke,
}


def message_from(record: ArchiveRecord, raw: dict[str, Any]) -> Message | None:
    """The record as a message event; None for what handlers do not read."""
    read = KINDS.get(record.msgtype)
    if read is None or record.action not in ("send", "recall"):
        return None
    parts = read(raw.get(record.msgtype))
    text = str(parts.pop("text", "") or "")
    given = parts.pop("urls", [])
    return Message(
        source="archive",
        chat_id=record.roomid or None,
        occurred_at=datetime.fromtimestamp(record.msgtime / 1000, UTC)
        if record.msgtime
        else datetime.now(UTC),
        msg_id=record.msgid,
        sender=record.sender,
        msgtype=record.msgtype,
        text=text,
        urls=addresses(text, *given),
        chat_type="group" if record.roomid else "single",
        **{key: value or None for key, value in parts.items()},
    )


def normalize_archive(record: ArchiveRecord, raw: dict[str, Any]) -> Incoming:
    event = message_from(record, raw)
    return Incoming(
        source="archive",
        dedup_key=f"archive:{record.msgid}",
        raw=json.dumps(raw, ensure_ascii=False),
        event=event,
        event_type=event.type if event else f"archive:{record.msgtype or record.action}",
        chat_id=record.roomid or None,
    )
