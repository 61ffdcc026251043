"""Membership changes of a group our app created (appchat/update): the one place the
platform lets the bot remove a member. Queued like a message, so a removal commits
with the decision that caused it and is sent once."""

from __future__ import annotations

from typing import ClassVar

from handlers.channels.base import Capabilities, Channel, JSONDict, RatePolicy, SendClient
from storage.outbox import NewMessage


class AppchatMembersChannel(Channel):
    name = "appchat_members"
    capabilities: ClassVar[Capabilities] = Capabilities(False, True, False, 0, None)
    rate_policy: ClassVar[RatePolicy | None] = RatePolicy(20, 60)
    limited_api: ClassVar[str | None] = "appchat/update"

    async def send(self, client: SendClient, target: str, payload: JSONDict) -> JSONDict:
        return await client.appchat_update(dict(payload), retries=0)

    def removal(
        self, *, chat_id: str, member_id: str, origin: str, dedup_key: str | None
    ) -> NewMessage:
        return NewMessage(
            channel=self.name,
            target=chat_id,
            payload={"chatid": chat_id, "del_user_list": [member_id]},
            rate_key=self.rate_key(chat_id),
            # After the group's own messages (the notice explaining it goes first).
            order_key=f"group:{chat_id}",
            origin=origin,
            chat_id=chat_id,
            dedup_key=dedup_key,
            member_id=member_id,  # moot once they left: the dispatcher cancels it
        )
