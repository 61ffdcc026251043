"""Keeps groups and memberships current; runs before every other handler."""

from __future__ import annotations

from handlers.core.context import Context
from handlers.core.events import (
    Event,
    GroupCreated,
    GroupDismissed,
    GroupUpdated,
    MemberJoined,
    MemberLeft,
    Message,
)
from storage.members import get_membership
from storage.models import Group, Membership


async def get_or_create_group(ctx: Context, chat_id: str) -> Group:
    group = await ctx.session.get(Group, chat_id)
    if group is None:
        group = Group(
            chat_id=chat_id,
            name="",
            tags=[],
            channel_type="none",
            channel_config={},
            origin="callback",
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        ctx.session.add(group)
        await ctx.session.flush()
    return group


async def record_joins(event: Event, ctx: Context) -> str | None:
    assert isinstance(event, MemberJoined) and event.chat_id
    await get_or_create_group(ctx, event.chat_id)
    for info in event.members:
        row = await get_membership(ctx.session, event.chat_id, info.id)
        joined_at = info.join_time or event.occurred_at
        if row is None:
            ctx.session.add(
                Membership(
                    chat_id=event.chat_id,
                    member_id=info.id,
                    name=info.name,
                    member_type=info.member_type,
                    joined_at=joined_at,
                    join_scene=info.join_scene,
                    invitor=info.invitor,
                    join_count=1,
                    message_count=0,
                    opted_out=False,
                )
            )
            continue
        if row.left_at is None and row.joined_at >= joined_at:
            continue  # a late duplicate of a join we already have
        if row.left_at is not None and joined_at <= row.left_at:
            continue  # a join that happened before the leave we already recorded
        row.previous_left_at = row.left_at
        row.left_at = None
        row.quit_scene = None
        row.joined_at = joined_at
        row.join_count += 1
        row.name = info.name or row.name
        row.member_type = info.member_type or row.member_type
        row.join_scene = info.join_scene
        row.invitor = info.invitor or row.invitor
    await ctx.session.flush()
    return None


async def record_leaves(event: Event, ctx: Context) -> str | None:
    assert isinstance(event, MemberLeft) and event.chat_id
    for member_id in event.member_ids:
        row = await get_membership(ctx.session, event.chat_id, member_id)
        if row is None:
            ctx.session.add(
                Membership(
                    chat_id=event.chat_id,
                    member_id=member_id,
                    joined_at=event.occurred_at,
                    left_at=event.occurred_at,
                    quit_scene=event.quit_scene,
                    join_count=0,
                    message_count=0,
                    opted_out=False,
                )
            )
        elif row.left_at is None:
            row.left_at = event.occurred_at
            row.quit_scene = event.quit_scene
    await ctx.session.flush()
    return None


async def record_message(event: Event, ctx: Context) -> str | None:
    assert isinstance(event, Message)
    if not event.chat_id or event.chat_type != "group":
        return None
    row = await get_membership(ctx.session, event.chat_id, event.sender)
    if row is not None:
        row.message_count += 1
        row.last_message_at = event.occurred_at
    return None


async def record_group_change(event: Event, ctx: Context) -> str | None:
    if not event.chat_id:
        return None
    group = await get_or_create_group(ctx, event.chat_id)
    if isinstance(event, GroupDismissed):
        group.dismissed_at = event.occurred_at
    elif isinstance(event, GroupCreated):
        group.dismissed_at = None
    elif isinstance(event, GroupUpdated):
        if event.name:
            group.name = event.name
        if event.owner:
            group.owner = event.owner
    return None
