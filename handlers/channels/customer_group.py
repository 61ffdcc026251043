"""Customer group (客户群): an owner-confirmed mass send, about one a day per group.

Nothing reaches a customer group at once: add_msg_template asks the sender (the
group owner) to confirm in the client, and a group receives about one such post
a day. Features that need an immediate answer degrade to an owner task.
"""

from __future__ import annotations

from typing import ClassVar

from handlers.channels.base import (
    CannotPost,
    Capabilities,
    GroupChannel,
    JSONDict,
    RatePolicy,
    SendClient,
)

DAY = 86400


class CustomerGroupChannel(GroupChannel):
    name = "customer_group"
    capabilities: ClassVar[Capabilities] = Capabilities(True, False, False, 4000, 1)
    rate_policy: ClassVar[RatePolicy | None] = RatePolicy(1, DAY)
    limited_api: ClassVar[str | None] = "externalcontact/add_msg_template"

    def payload(self, chat_id: str, config: JSONDict, text: str) -> tuple[str, JSONDict]:
        sender = str(config.get("sender") or "")
        if not sender:
            raise CannotPost("customer_group channel has no sender (the group owner's userid)")
        return chat_id, {
            "chat_type": "group",
            "sender": sender,
            "chat_id_list": [chat_id],
            "text": {"content": text},
        }

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        return await client.add_msg_template(dict(payload), retries=0)


def customer_sender(channel_config: JSONDict, owner: str | None) -> str | None:
    """Who asks WeCom to message a customer for this group: the channel's sender, else the owner."""
    return str(channel_config.get("sender") or owner or "") or None
