"""Channels: one module per way a message reaches WeCom (SPEC §8).

Each channel says what it can do (post at once or owner-confirmed, daily quota,
length limit, markdown), which rate window it counts against, how a text becomes
outbox rows and how a row is sent. WeCom cannot post into a customer group at
once, so features ask the group's channel and degrade honestly.
"""

from handlers.channels.base import (
    CannotPost,
    Capabilities,
    Channel,
    GroupChannel,
    PrivateChannel,
    RatePolicy,
    SendClient,
    split_text,
)
from handlers.channels.customer_group import customer_sender
from handlers.channels.registry import (
    CAPABILITIES,
    CHANNEL_TYPES,
    CHANNELS,
    CONNECTION_CHANNELS,
    GROUP_CHANNELS,
    channel_named,
    compose_aibot_reply,
    compose_group_text,
    compose_private_text,
    group_channel,
    is_external_id,
    private_channel,
    rate_limit_for,
    rate_policy_for,
)

__all__ = [
    "CAPABILITIES",
    "CHANNELS",
    "CHANNEL_TYPES",
    "CONNECTION_CHANNELS",
    "GROUP_CHANNELS",
    "CannotPost",
    "Capabilities",
    "Channel",
    "GroupChannel",
    "PrivateChannel",
    "RatePolicy",
    "SendClient",
    "channel_named",
    "compose_aibot_reply",
    "compose_group_text",
    "compose_private_text",
    "customer_sender",
    "group_channel",
    "is_external_id",
    "private_channel",
    "rate_limit_for",
    "rate_policy_for",
    "split_text",
]
