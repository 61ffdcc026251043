"""A private message to a customer: an owner-confirmed single task (add_msg_template)."""

from __future__ import annotations

from typing import ClassVar

from handlers.channels.base import (
    CannotPost,
    Capabilities,
    JSONDict,
    PrivateChannel,
    RatePolicy,
    SendClient,
)
from handlers.channels.customer_group import DAY


class PrivateCustomerChannel(PrivateChannel):
    name = "private_customer"
    capabilities: ClassVar[Capabilities] = Capabilities(True, False, False, 4000, None)
    # A customer may receive as many enterprise mass messages a month as the month has
    # days (notes §5.4): stay under the shortest month; a message past it waits.
    rate_policy: ClassVar[RatePolicy | None] = RatePolicy(28, 30 * DAY)
    # Same API as the customer group's mass send: one 45009 pauses both.
    limited_api: ClassVar[str | None] = "externalcontact/add_msg_template"

    def payload(self, member_id: str, sender: str | None, text: str) -> JSONDict:
        if not sender:
            raise CannotPost(
                "a customer can only be messaged through its group owner; none is known"
            )
        return {
            "chat_type": "single",
            "external_userid": [member_id],
            "sender": sender,
            "text": {"content": text},
        }

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        return await client.add_msg_template(dict(payload), retries=0)
