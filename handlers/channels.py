"""What each group channel can do, and how a text becomes outbox rows (pure).

WeCom cannot post into a customer group at once, so every feature asks the
group's channel what it can do and degrades honestly (SPEC §8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from storage.outbox import NewMessage

ChannelType = Literal["webhook", "appchat", "customer_group", "none"]
CHANNEL_TYPES: tuple[str, ...] = ("webhook", "appchat", "customer_group", "none")


@dataclass(frozen=True)
class Capabilities:
    can_post: bool
    immediate: bool  # False: the owner must confirm in the client (add_msg_template)
    markdown: bool
    max_text_bytes: int
    daily_quota: int | None


CAPABILITIES: dict[str, Capabilities] = {
    "webhook": Capabilities(True, True, True, 2048, None),
    "appchat": Capabilities(True, True, True, 2048, None),
    "customer_group": Capabilities(True, False, False, 4000, 1),
    "none": Capabilities(False, False, False, 0, None),
}

# (messages, seconds) per rate key prefix. Robot webhook and private limits are
# WeCom's own (excess is refused or silently dropped). A customer group gets
# about one owner-confirmed post a day. A customer may receive as many
# enterprise mass messages a month as the month has days (notes §5.4), so we
# stay under the shortest month; a message past it waits instead of vanishing.
DAY = 86400
RATE_LIMITS: dict[str, tuple[int, int]] = {
    "webhook": (20, 60),
    "appchat": (20, 60),
    "private": (30, 60),
    "customer_group": (1, DAY),
    "private_customer": (28, 30 * DAY),
}


def rate_limit_for(rate_key: str) -> tuple[int, int] | None:
    return RATE_LIMITS.get(rate_key.split(":", 1)[0])


class CannotPost(Exception):
    """The group's channel cannot carry this message; the reason is user-facing."""


def is_external_id(member_id: str) -> bool:
    return member_id.startswith(("wm", "wo"))


def customer_sender(channel_config: dict[str, Any], owner: str | None) -> str | None:
    """Who asks WeCom to message a customer for this group: the channel's sender, else the owner."""
    return str(channel_config.get("sender") or owner or "") or None


def split_text(text: str, max_bytes: int) -> list[str]:
    """Split on line boundaries so each part fits WeCom's byte limit."""
    if len(text.encode("utf-8")) <= max_bytes:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode("utf-8")) > max_bytes:  # one over-long line: cut by characters
            cut = line
            while len(cut.encode("utf-8")) > max_bytes:
                cut = cut[: max(1, len(cut) * 9 // 10)]
            if current:
                parts.append(current)
                current = ""
            parts.append(cut)
            line = line[len(cut) :]
        if len((current + line).encode("utf-8")) > max_bytes:
            parts.append(current)
            current = line
        else:
            current += line
    if current:
        parts.append(current)
    return [p.rstrip("\n") for p in parts if p.strip()]


def compose_group_text(
    *,
    chat_id: str,
    channel_type: str,
    channel_config: dict[str, Any],
    text: str,
    origin: str,
    dedup_key: str | None,
    owner: str | None = None,
) -> list[NewMessage]:
    caps = CAPABILITIES.get(channel_type, CAPABILITIES["none"])
    if channel_type == "customer_group":
        # An admin-set sender wins; otherwise whoever owns the group now (owners change).
        channel_config = {**channel_config, "sender": customer_sender(channel_config, owner)}
    if not caps.can_post:
        raise CannotPost("this group has no channel the bot can post through")
    parts = split_text(text, caps.max_text_bytes)
    messages: list[NewMessage] = []
    for index, part in enumerate(parts):
        key = None if dedup_key is None else (dedup_key if index == 0 else f"{dedup_key}#{index}")
        messages.append(_group_message(chat_id, channel_type, channel_config, part, origin, key))
    return messages


def _group_message(
    chat_id: str,
    channel_type: str,
    config: dict[str, Any],
    text: str,
    origin: str,
    dedup_key: str | None,
) -> NewMessage:
    if channel_type == "webhook":
        key = str(config.get("key") or "")
        if not key:
            raise CannotPost("webhook channel has no robot key")
        return NewMessage(
            channel="webhook",
            target=key,
            payload={"msgtype": "text", "text": {"content": text}},
            rate_key=f"webhook:{key}",
            order_key=f"group:{chat_id}",
            origin=origin,
            chat_id=chat_id,
            dedup_key=dedup_key,
        )
    if channel_type == "appchat":
        return NewMessage(
            channel="appchat",
            target=chat_id,
            payload={"chatid": chat_id, "msgtype": "text", "text": {"content": text}},
            rate_key=f"appchat:{chat_id}",
            order_key=f"group:{chat_id}",
            origin=origin,
            chat_id=chat_id,
            dedup_key=dedup_key,
        )
    if channel_type == "customer_group":
        sender = str(config.get("sender") or "")
        if not sender:
            raise CannotPost("customer_group channel has no sender (the group owner's userid)")
        return NewMessage(
            channel="customer_group",
            target=chat_id,
            payload={
                "chat_type": "group",
                "sender": sender,
                "chat_id_list": [chat_id],
                "text": {"content": text},
            },
            rate_key=f"customer_group:{chat_id}",
            order_key=f"group:{chat_id}",
            origin=origin,
            chat_id=chat_id,
            dedup_key=dedup_key,
        )
    raise CannotPost(f"unknown channel type {channel_type!r}")


def compose_private_text(
    *,
    member_id: str,
    member_type: int | None,
    sender: str | None,
    text: str,
    origin: str,
    chat_id: str | None,
    dedup_key: str | None,
) -> NewMessage:
    """Internal members by message/send; customers by an owner-confirmed single task."""
    external = member_type == 2 or (member_type is None and is_external_id(member_id))
    if not external:
        return NewMessage(
            channel="private",
            target=member_id,
            payload={"touser": member_id, "msgtype": "text", "text": {"content": text}},
            rate_key=f"private:{member_id}",
            order_key=f"private:{member_id}",
            origin=origin,
            chat_id=chat_id,
            dedup_key=dedup_key,
        )
    if not sender:
        raise CannotPost("a customer can only be messaged through its group owner; none is known")
    return NewMessage(
        channel="private_customer",
        target=member_id,
        payload={
            "chat_type": "single",
            "external_userid": [member_id],
            "sender": sender,
            "text": {"content": text},
        },
        rate_key=f"private_customer:{member_id}",
        order_key=f"private:{member_id}",
        origin=origin,
        chat_id=chat_id,
        dedup_key=dedup_key,
    )
