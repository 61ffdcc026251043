"""Group rows: registered by admins, or first seen in a callback."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Group


async def upsert_group(
    session: AsyncSession,
    chat_id: str,
    *,
    label: str | None,
    tags: list[str] | None,
    channel_type: str | None,
    channel_config: dict[str, Any] | None,
    now: datetime,
    wecom_name: str | None = None,
) -> tuple[Group, bool]:
    """An admin registers or updates a group. `label` is the operator's name for it;
    `wecom_name` only where the caller knows WeCom's name (the sandbox's demo group)."""
    group = await session.get(Group, chat_id)
    created = group is None
    if group is None:
        group = Group(
            chat_id=chat_id,
            name=wecom_name or "",
            label=label or None,
            tags=tags or [],
            channel_type=channel_type or "none",
            channel_config=channel_config or {},
            origin="admin",
            created_at=now,
            updated_at=now,
        )
        session.add(group)
    else:
        if label is not None:
            group.label = label or None
        if wecom_name:
            group.name = wecom_name
        if tags is not None:
            group.tags = tags
        if channel_type is not None:
            group.channel_type = channel_type
            group.channel_config = channel_config or {}
            group.origin = "admin"  # an admin's choice, even "none", is never overridden
        group.updated_at = now
    await session.flush()
    return group, created


async def apply_snapshot(
    session: AsyncSession,
    *,
    chat_id: str,
    name: str,
    owner: str | None,
    member_version: str | None,
    notice: str | None,
    channel_type: str,
    channel_config: dict[str, Any],
    now: datetime,
    admins: Sequence[str] | None = None,
) -> Group:
    """Refresh details from WeCom; the channel is only chosen for a group seen first here."""
    group = await session.get(Group, chat_id)
    if group is None:
        group = Group(
            chat_id=chat_id,
            name=name,
            owner=owner,
            tags=[],
            channel_type=channel_type,
            channel_config=channel_config,
            member_version=member_version,
            notice=notice,
            admins=list(admins or []),
            origin="callback",
            created_at=now,
            updated_at=now,
        )
        session.add(group)
    else:
        group.name = name or group.name
        group.owner = owner or group.owner
        group.member_version = member_version or group.member_version
        group.notice = notice if notice is not None else group.notice
        if admins is not None:
            group.admins = list(admins)
        if group.channel_type == "none" and group.origin == "callback":
            group.channel_type = channel_type
            group.channel_config = channel_config
        group.updated_at = now
    await session.flush()
    return group


async def list_groups(session: AsyncSession) -> list[Group]:
    return list((await session.execute(select(Group).order_by(Group.chat_id))).scalars())
