"""Every channel by name: the group channels a group can be set to, and the private ones."""

from __future__ import annotations

from datetime import datetime

from handlers.channels.aibot_reply import AibotReplyChannel
from handlers.channels.aibot_response import AibotResponseChannel
from handlers.channels.aibot_stream import AibotStreamChannel
from handlers.channels.appchat import AppchatChannel
from handlers.channels.appchat_members import AppchatMembersChannel
from handlers.channels.base import (
    CannotPost,
    Capabilities,
    Channel,
    GroupChannel,
    JSONDict,
    PrivateChannel,
    RatePolicy,
)
from handlers.channels.customer_group import CustomerGroupChannel, customer_sender
from handlers.channels.none import NoChannel
from handlers.channels.private_customer import PrivateCustomerChannel
from handlers.channels.private_internal import PrivateInternalChannel
from handlers.channels.webhook import WebhookChannel
from storage.outbox import NewMessage

GROUP_CHANNELS: dict[str, GroupChannel] = {
    channel.name: channel
    for channel in (WebhookChannel(), AppchatChannel(), CustomerGroupChannel(), NoChannel())
}
PRIVATE_INTERNAL = PrivateInternalChannel()
PRIVATE_CUSTOMER = PrivateCustomerChannel()
APPCHAT_MEMBERS = AppchatMembersChannel()
AIBOT_RESPONSE = AibotResponseChannel()
AIBOT_STREAM = AibotStreamChannel()
CHANNELS: dict[str, Channel] = {
    **GROUP_CHANNELS,
    APPCHAT_MEMBERS.name: APPCHAT_MEMBERS,
    PRIVATE_INTERNAL.name: PRIVATE_INTERNAL,
    PRIVATE_CUSTOMER.name: PRIVATE_CUSTOMER,
    AIBOT_RESPONSE.name: AIBOT_RESPONSE,
    AIBOT_STREAM.name: AIBOT_STREAM,
}
# Channels whose rows only the process holding their connection can send.
CONNECTION_CHANNELS: frozenset[str] = frozenset(
    name for name, channel in CHANNELS.items() if channel.needs_connection
)
CHANNEL_TYPES: tuple[str, ...] = tuple(GROUP_CHANNELS)
CAPABILITIES: dict[str, Capabilities] = {
    name: channel.capabilities for name, channel in GROUP_CHANNELS.items()
}


def group_channel(channel_type: str) -> GroupChannel:
    """The group's channel; an unknown type (an old row, a typo) cannot post."""
    return GROUP_CHANNELS.get(channel_type, GROUP_CHANNELS["none"])


def channel_named(name: str) -> Channel:
    channel = CHANNELS.get(name)
    if channel is None:
        raise CannotPost(f"unknown outbox channel {name!r}")
    return channel


def rate_policy_for(rate_key: str) -> RatePolicy | None:
    """The policy of the channel a rate key belongs to (`<channel>:<target>`)."""
    channel = CHANNELS.get(rate_key.split(":", 1)[0])
    return channel.rate_policy if channel is not None else None


def rate_limit_for(rate_key: str) -> tuple[int, int] | None:
    policy = rate_policy_for(rate_key)
    return (policy.messages, policy.seconds) if policy is not None else None


def is_external_id(member_id: str) -> bool:
    return member_id.startswith(("wm", "wo"))


def private_channel(member_id: str, member_type: int | None) -> PrivateChannel:
    """Internal members by message/send; customers by an owner-confirmed single task."""
    external = member_type == 2 or (member_type is None and is_external_id(member_id))
    return PRIVATE_CUSTOMER if external else PRIVATE_INTERNAL


def compose_group_text(
    *,
    chat_id: str,
    channel_type: str,
    channel_config: JSONDict,
    text: str,
    origin: str,
    dedup_key: str | None,
    owner: str | None = None,
    member_id: str | None = None,
) -> list[NewMessage]:
    config = dict(channel_config)
    if channel_type == "customer_group":
        # An admin-set sender wins; otherwise whoever owns the group now (owners change).
        config["sender"] = customer_sender(config, owner)
    if channel_type not in GROUP_CHANNELS:
        raise CannotPost(f"unknown channel type {channel_type!r}")
    return group_channel(channel_type).compose(
        chat_id=chat_id,
        config=config,
        text=text,
        origin=origin,
        dedup_key=dedup_key,
        member_id=member_id,
    )


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
    return private_channel(member_id, member_type).compose(
        member_id=member_id,
        sender=sender,
        text=text,
        origin=origin,
        chat_id=chat_id,
        dedup_key=dedup_key,
    )


def compose_aibot_reply(
    *,
    req_id: str | None,
    response_url: str | None,
    received_at: datetime,
    text: str,
    origin: str,
    chat_id: str | None,
    member_id: str,
    dedup_key: str | None,
) -> NewMessage:
    """A 智能机器人 reply: on the long connection when the message came on it, else once
    through its response_url."""
    channel: AibotReplyChannel
    if req_id:
        channel, handle = AIBOT_STREAM, req_id
    elif response_url:
        channel, handle = AIBOT_RESPONSE, response_url
    else:
        raise CannotPost("the 智能机器人 message has neither a req_id nor a response_url")
    return channel.compose(
        handle=handle,
        received_at=received_at,
        text=text,
        origin=origin,
        chat_id=chat_id,
        member_id=member_id,
        dedup_key=dedup_key,
    )
