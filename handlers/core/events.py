"""The one internal event vocabulary (SPEC §5.1). Handlers only ever see these.

Raw XML/JSON lives in bot/sources; by the time an event gets here it is plain data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

Source = Literal["change_external_chat", "app", "archive", "aibot", "unknown"]


class MemberInfo(BaseModel):
    id: str
    name: str | None = None
    member_type: int | None = None  # 1 internal member, 2 external contact
    invitor: str | None = None
    invitor_name: str | None = None
    join_scene: int | None = None  # groupchat/get code space: 1 invite, 2 link, 3 QR
    join_time: datetime | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.id


class _EventBase(BaseModel):
    source: Source
    chat_id: str | None = None
    occurred_at: datetime
    member_version: str | None = None  # CurMemVer: lets the bot skip a groupchat/get


class MemberJoined(_EventBase):
    type: Literal["member_joined"] = "member_joined"
    members: list[MemberInfo]
    event_join_scene: int | None = None  # callback code space: 0 invited, 3 QR


class MemberLeft(_EventBase):
    type: Literal["member_left"] = "member_left"
    member_ids: list[str]
    quit_scene: int | None = None  # 0 left, 1 removed by owner/admin


# Message kinds in the archive's vocabulary; a source maps its own types onto these.
MESSAGE_KINDS = (
    "text",
    "markdown",
    "link",
    "weapp",  # mini-program card
    "card",  # 名片: a shared contact
    "image",
    "file",
    "voice",
    "video",
    "emotion",
    "location",
    "mixed",  # text and images in one message
    "news",
    "docmsg",
    "chatrecord",  # forwarded chat history
    "revoke",  # a member took a message back
)


class Quoted(BaseModel):
    """The message a reply quotes, as far as the source tells."""

    msgtype: str = "text"
    text: str = ""
    sender: str | None = None
    msg_id: str | None = None


class Message(_EventBase):
    type: Literal["message"] = "message"
    msg_id: str | None = None
    sender: str
    msgtype: str = "text"  # one of MESSAGE_KINDS
    # What a person reads: the text; a link's or mini-program's title and
    # description; a file's name; the text parts of a mixed message.
    text: str = ""
    title: str | None = None  # link, mini-program, file, news, document
    urls: list[str] = Field(default_factory=list)  # a link card's address and those in the text
    weapp: str | None = None  # the mini-program's display name
    card_user: str | None = None  # 名片: the shared contact's id
    revokes: str | None = None  # revoke: the msg_id taken back
    quote: Quoted | None = None
    mentions: list[str] = Field(default_factory=list)  # ids mentioned, where the source says
    chat_type: Literal["group", "single"] = "group"
    mentioned_bot: bool = False
    # How a 智能机器人 message is answered through the bot itself: its response_url (HTTP
    # callbacks: one POST within an hour), or the long connection's callback frame
    # req_id, which the reply on that connection echoes.
    response_url: str | None = None
    aibot_req_id: str | None = None


class GroupCreated(_EventBase):
    type: Literal["group_created"] = "group_created"


class GroupDismissed(_EventBase):
    type: Literal["group_dismissed"] = "group_dismissed"


class GroupUpdated(_EventBase):
    type: Literal["group_updated"] = "group_updated"
    detail: str  # change_name | change_owner | change_notice | ...
    name: str | None = None
    owner: str | None = None


Event = Annotated[
    MemberJoined | MemberLeft | Message | GroupCreated | GroupDismissed | GroupUpdated,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EventType = Literal[
    "member_joined", "member_left", "message", "group_created", "group_dismissed", "group_updated"
]


def event_from_json(data: object) -> Event:
    return EVENT_ADAPTER.validate_python(data)
