"""Decrypted callback XML (customer-contact and self-built app) → normalized events."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from bot.sources.message_parts import addresses, joined
from bot.sources.normalized import Incoming
from handlers.core.events import (
    Event,
    GroupCreated,
    GroupDismissed,
    GroupUpdated,
    MemberInfo,
    MemberJoined,
    MemberLeft,
    Message,
)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _when(fields: dict[str, Any]) -> datetime:
    stamp = _int(fields.get("CreateTime")) or _int(fields.get("TimeStamp"))
    if stamp is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(stamp, UTC)


def _items(value: Any) -> list[str]:
    # <MemChangeList><Item>a</Item>…</MemChangeList> arrives as a list; tolerate a
    # comma string too, since some gateways re-serialize it that way.
    if isinstance(value, list):
        return [v for v in value if v]
    if isinstance(value, str) and value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return []


def dedup_key(fields: dict[str, Any], plaintext: str) -> str:
    msg_id = fields.get("MsgId")
    if msg_id:
        return f"msg:{msg_id}"
    # Events have no MsgId: the same decrypted payload is the same event (SPEC §4).
    return "sha:" + hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _external_chat_event(fields: dict[str, Any], when: datetime) -> Event | None:
    chat_id = fields.get("ChatId") or None
    change = fields.get("ChangeType", "")
    base: dict[str, Any] = {
        "source": "change_external_chat",
        "chat_id": chat_id,
        "occurred_at": when,
        "member_version": fields.get("CurMemVer") or None,
    }
    if change == "create":
        return GroupCreated(**base)
    if change == "dismiss":
        return GroupDismissed(**base)
    if change != "update":
        return None
    detail = fields.get("UpdateDetail", "")
    members = _items(fields.get("MemChangeList"))
    if detail == "add_member":
        return MemberJoined(
            **base,
            members=[MemberInfo(id=m) for m in members],
            event_join_scene=_int(fields.get("JoinScene")),
        )
    if detail == "del_member":
        return MemberLeft(**base, member_ids=members, quit_scene=_int(fields.get("QuitScene")))
    return GroupUpdated(**base, detail=detail or "unknown")


# What a member sends the self-built app privately, in the archive's vocabulary.
APP_KINDS = {"text": "text", "link": "link", "image": "image", "voice": "voice", "video": "video"}


def _app_message(fields: dict[str, Any], when: datetime) -> Message:
    kind = APP_KINDS[fields["MsgType"]]
    title = str(fields.get("Title") or "") or None
    text = str(fields.get("Content") or "") or joined(
        title or "", str(fields.get("Description") or "")
    )
    return Message(
        source="app",
        chat_id=None,
        occurred_at=when,
        msg_id=str(fields.get("MsgId") or "") or None,
        sender=fields.get("FromUserName", ""),
        msgtype=kind,
        text=text,
        title=title,
        urls=addresses(text, str(fields.get("Url") or "")),
        chat_type="single",
    )


ARCHIVE_NOTIFY = "msgaudit_notify"


def is_archive_notify(fields: dict[str, Any]) -> bool:
    """会话内容存档's "new messages, pull now" signal (no content, no seq): it wakes
    the archive puller and is not stored (it comes every 15 s while people chat)."""
    return fields.get("Event") == ARCHIVE_NOTIFY


def normalize_callback(fields: dict[str, Any], plaintext: str) -> Incoming:
    when = _when(fields)
    key = dedup_key(fields, plaintext)
    kind = fields.get("Event") or fields.get("InfoType") or fields.get("MsgType") or "unknown"
    event: Event | None = None
    if kind == "change_external_chat":
        event = _external_chat_event(fields, when)
    elif fields.get("MsgType") in APP_KINDS:
        event = _app_message(fields, when)
    return Incoming(
        source="callback",
        dedup_key=key,
        raw=plaintext,
        event=event,
        event_type=event.type if event else str(kind),
        chat_id=event.chat_id if event else (fields.get("ChatId") or None),
    )
