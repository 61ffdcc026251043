"""Admin: groups and their channels (SPEC §8)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func, select

from bot.api.deps import AdminDep, RuntimeDep, SessionDep
from bot.timefmt import LocalTime
from handlers.channels import CAPABILITIES
from storage.groups import list_groups, upsert_group
from storage.models import Group, Membership

router = APIRouter(prefix="/admin", tags=["admin: groups"], dependencies=[AdminDep])

ChatId = Annotated[str, Path(min_length=1, max_length=128)]


class ChannelIn(BaseModel):
    type: Literal["webhook", "appchat", "customer_group", "none"]
    key: str | None = Field(default=None, max_length=150, description="robot webhook key (webhook)")
    sender: str | None = Field(
        default=None,
        max_length=128,
        description="userid who confirms the group's mass sends (customer_group); "
        "omit it to use whoever owns the group at the time",
    )

    @model_validator(mode="after")
    def _required(self) -> ChannelIn:
        if self.type == "webhook" and not self.key:
            raise ValueError("a webhook channel needs its robot key")
        return self

    def config(self) -> dict[str, Any]:
        if self.type == "webhook":
            return {"key": self.key}
        if self.type == "customer_group" and self.sender:
            return {"sender": self.sender}
        return {}


class GroupIn(BaseModel):
    name: str | None = Field(
        default=None,
        max_length=200,
        description="the operator's label for the group (kept as `label`; WeCom never "
        "overwrites it). Messages use the name members see in WeCom (groupchat/get), and "
        "the label only while WeCom has not reported one (internal groups)",
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = None
    channel: ChannelIn | None = None


class CapabilitiesOut(BaseModel):
    can_post: bool
    immediate: bool
    markdown: bool
    max_text_bytes: int
    daily_quota: int | None


class GroupOut(BaseModel):
    chat_id: str
    name: str = Field(description="the operator's label, else the name in WeCom")
    label: str | None = Field(description="the operator's label (PUT name)")
    wecom_name: str | None = Field(
        description="the name members see in WeCom (groupchat/get); what messages say"
    )
    owner: str | None
    tags: list[str]
    channel: dict[str, Any]
    capabilities: CapabilitiesOut
    playbook: str | None
    members: int
    origin: str
    created_at: LocalTime
    updated_at: LocalTime
    dismissed_at: LocalTime | None


async def _out(runtime: Any, session: Any, group: Group) -> GroupOut:
    members = await session.scalar(
        select(func.count()).where(
            Membership.chat_id == group.chat_id, Membership.left_at.is_(None)
        )
    )
    caps = CAPABILITIES.get(group.channel_type, CAPABILITIES["none"])
    current = runtime.playbooks.current
    playbook = current.for_group(group.chat_id, list(group.tags or [])).name if current else None
    return GroupOut(
        chat_id=group.chat_id,
        name=group.label or group.name,
        label=group.label,
        wecom_name=group.name or None,
        owner=group.owner,
        tags=list(group.tags or []),
        channel={"type": group.channel_type, **(group.channel_config or {})},
        capabilities=CapabilitiesOut(**caps.__dict__),
        playbook=playbook,
        members=int(members or 0),
        origin=group.origin,
        created_at=group.created_at,
        updated_at=group.updated_at,
        dismissed_at=group.dismissed_at,
    )


@router.put("/groups/{chat_id}", response_model=GroupOut)
async def put_group(
    chat_id: ChatId, body: GroupIn, runtime: RuntimeDep, session: SessionDep
) -> GroupOut:
    group, _created = await upsert_group(
        session,
        chat_id,
        label=body.name,
        tags=body.tags,
        channel_type=body.channel.type if body.channel else None,
        channel_config=body.channel.config() if body.channel else None,
        now=runtime.clock(),
    )
    out = await _out(runtime, session, group)
    await session.commit()
    return out


@router.get("/groups/{chat_id}", response_model=GroupOut)
async def get_group(chat_id: ChatId, runtime: RuntimeDep, session: SessionDep) -> GroupOut:
    group = await session.get(Group, chat_id)
    if group is None:
        raise HTTPException(status_code=404, detail=f"no group {chat_id}")
    return await _out(runtime, session, group)


@router.get("/groups", response_model=list[GroupOut])
async def get_groups(runtime: RuntimeDep, session: SessionDep) -> list[GroupOut]:
    return [await _out(runtime, session, g) for g in await list_groups(session)]


class MemberOut(BaseModel):
    member_id: str
    name: str | None
    member_type: int | None
    joined_at: LocalTime
    left_at: LocalTime | None
    join_scene: int | None
    invitor: str | None = Field(description="who brought them (groupchat/get invitor)")
    join_count: int
    message_count: int
    last_message_at: LocalTime | None
    opted_out: bool
    welcomed_at: LocalTime | None


@router.get("/groups/{chat_id}/members", response_model=list[MemberOut])
async def group_members(
    chat_id: ChatId,
    session: SessionDep,
    include_left: bool = False,
    invited_by: str | None = None,
) -> list[MemberOut]:
    """Members, newest first; `invited_by` answers "who did this person bring in?"."""
    if await session.get(Group, chat_id) is None:
        raise HTTPException(status_code=404, detail=f"no group {chat_id}")
    query = select(Membership).where(Membership.chat_id == chat_id)
    if not include_left:
        query = query.where(Membership.left_at.is_(None))
    if invited_by:
        query = query.where(Membership.invitor == invited_by)
    rows = (await session.execute(query.order_by(Membership.joined_at.desc()))).scalars()
    return [MemberOut.model_validate(row, from_attributes=True) for row in rows]
