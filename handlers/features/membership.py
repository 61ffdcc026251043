"""Bookkeeping of groups and memberships; runs before every other handler.

Later features read what this records (who is present, since when, who left), so
it is the first priority group. Decisions are pure (`join_decision`); the appliers
write them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import cast

from sqlalchemy import Table, bindparam, case, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.actions import Action, Note
from handlers.core.context import Context
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
from handlers.core.executor import Executor
from storage.members import get_membership, memberships_of
from storage.models import Group, Membership


class JoinKind(Enum):
    NEW = "new"  # first time we see them in this group
    REJOIN = "rejoin"  # they had left; this join is newer than the leave
    REJOIN_UNSEEN_LEAVE = "rejoin_unseen_leave"  # present already: WeCom dropped the leave
    DUPLICATE = "duplicate"  # a late copy of a join we have
    STALE = "stale"  # a join older than the leave we recorded


@dataclass(frozen=True)
class KnownMembership:
    joined_at: datetime
    left_at: datetime | None


def join_decision(known: KnownMembership | None, joined_at: datetime) -> JoinKind:
    if known is None:
        return JoinKind.NEW
    if known.left_at is None:
        if known.joined_at >= joined_at:
            return JoinKind.DUPLICATE
        # We hold them as present, yet WeCom says they joined again: the leave between
        # was lost (or the sandbox restarted). A rejoin, judged by the rejoin rules.
        return JoinKind.REJOIN_UNSEEN_LEAVE
    if joined_at <= known.left_at:
        return JoinKind.STALE
    return JoinKind.REJOIN


@dataclass(frozen=True)
class RecordJoin(Action):
    chat_id: str
    member: MemberInfo
    joined_at: datetime
    kind: JoinKind


@dataclass(frozen=True)
class RecordLeave(Action):
    chat_id: str
    member_id: str
    left_at: datetime
    quit_scene: int | None


@dataclass(frozen=True)
class RecordMessage(Action):
    chat_id: str
    member_id: str
    at: datetime


@dataclass(frozen=True)
class RecordGroupChange(Action):
    chat_id: str
    dismissed_at: datetime | None = None
    revived: bool = False
    name: str | None = None
    owner: str | None = None


async def get_or_create_group(ctx: Context, chat_id: str) -> Group:
    group = await ctx.group(chat_id)
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
        ctx.memo.groups[chat_id] = group
    return group


# --- handlers: facts in, actions out ----------------------------------------------------


async def record_joins(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, MemberJoined) and event.chat_id
    await get_or_create_group(ctx, event.chat_id)
    rows = await memberships_of(ctx.session, event.chat_id, [m.id for m in event.members])
    actions: list[Action] = []
    for info in event.members:
        row = rows.get(info.id)
        known = KnownMembership(row.joined_at, row.left_at) if row is not None else None
        joined_at = info.join_time or event.occurred_at
        kind = join_decision(known, joined_at)
        if kind in (JoinKind.DUPLICATE, JoinKind.STALE):
            actions.append(Note(f"join of {info.id} ignored: {kind.value}"))
            continue
        actions.append(RecordJoin(event.chat_id, info, joined_at, kind))
    return actions


async def record_leaves(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, MemberLeft) and event.chat_id
    return [
        RecordLeave(event.chat_id, member_id, event.occurred_at, event.quit_scene)
        for member_id in event.member_ids
    ]


async def record_message(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, Message)
    # Taking a message back is not activity.
    if not event.chat_id or event.chat_type != "group" or event.msgtype == "revoke":
        return []
    return [RecordMessage(event.chat_id, event.sender, event.occurred_at)]


async def record_group_change(event: Event, ctx: Context) -> list[Action]:
    if not event.chat_id:
        return []
    if isinstance(event, GroupDismissed):
        return [RecordGroupChange(event.chat_id, dismissed_at=event.occurred_at)]
    if isinstance(event, GroupCreated):
        return [RecordGroupChange(event.chat_id, revived=True)]
    if isinstance(event, GroupUpdated):
        return [RecordGroupChange(event.chat_id, name=event.name, owner=event.owner)]
    return []


# --- appliers ------------------------------------------------------------------------------


async def apply_join(action: RecordJoin, ctx: Context) -> None:
    info = action.member
    row = await get_membership(ctx.session, action.chat_id, info.id)
    if row is None:
        ctx.session.add(
            Membership(
                chat_id=action.chat_id,
                member_id=info.id,
                name=info.name,
                member_type=info.member_type,
                joined_at=action.joined_at,
                join_scene=info.join_scene,
                invitor=info.invitor,
                join_count=1,
                message_count=0,
                opted_out=False,
            )
        )
        await ctx.session.flush()
        return
    # A rejoin whose leave we never saw left at most when they joined again.
    row.previous_left_at = (
        action.joined_at if action.kind is JoinKind.REJOIN_UNSEEN_LEAVE else row.left_at
    )
    row.left_at = None
    row.quit_scene = None
    row.joined_at = action.joined_at
    row.join_count += 1
    row.name = info.name or row.name
    row.member_type = info.member_type or row.member_type
    row.join_scene = info.join_scene
    row.invitor = info.invitor or row.invitor
    await ctx.session.flush()


async def apply_leave(action: RecordLeave, ctx: Context) -> None:
    row = await get_membership(ctx.session, action.chat_id, action.member_id)
    if row is None:
        ctx.session.add(
            Membership(
                chat_id=action.chat_id,
                member_id=action.member_id,
                joined_at=action.left_at,
                left_at=action.left_at,
                quit_scene=action.quit_scene,
                join_count=0,
                message_count=0,
                opted_out=False,
            )
        )
    elif row.left_at is None:
        row.left_at = action.left_at
        row.quit_scene = action.quit_scene
    await ctx.session.flush()


async def apply_messages(actions: Sequence[RecordMessage], session: AsyncSession) -> None:
    """One UPDATE per member who spoke in the batch, sent as one executemany."""
    per_member: dict[tuple[str, str], tuple[int, datetime]] = {}
    for action in actions:
        key = (action.chat_id, action.member_id)
        count, last = per_member.get(key, (0, action.at))
        per_member[key] = (count + 1, max(last, action.at))
    if not per_member:
        return
    await session.flush()  # rows this batch created (a join) must exist for the UPDATE
    connection = await session.connection()
    table = cast(Table, Membership.__table__)
    at = bindparam("b_at", type_=table.c.last_message_at.type)
    await connection.execute(
        update(table)
        .where(
            table.c.chat_id == bindparam("b_chat"),
            table.c.member_id == bindparam("b_member"),
        )
        .values(
            message_count=table.c.message_count + bindparam("b_count"),
            last_message_at=case(
                (
                    or_(
                        table.c.last_message_at.is_(None),
                        table.c.last_message_at < at,
                    ),
                    at,
                ),
                else_=table.c.last_message_at,
            ),
        ),
        [
            {"b_chat": chat, "b_member": member, "b_count": count, "b_at": at}
            for (chat, member), (count, at) in sorted(per_member.items())
        ],
    )


async def apply_group_change(action: RecordGroupChange, ctx: Context) -> None:
    group = await get_or_create_group(ctx, action.chat_id)
    if action.dismissed_at is not None:
        group.dismissed_at = action.dismissed_at
    if action.revived:
        group.dismissed_at = None
    if action.name:
        group.name = action.name
    if action.owner:
        group.owner = action.owner


def register(executor: Executor) -> None:
    executor.register(RecordJoin, apply_join)
    executor.register(RecordLeave, apply_leave)
    executor.register_bulk(RecordMessage, apply_messages)
    executor.register(RecordGroupChange, apply_group_change)
