"""Membership lookups shared by the handlers and the admin API."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Membership


async def get_membership(session: AsyncSession, chat_id: str, member_id: str) -> Membership | None:
    result = await session.execute(
        select(Membership).where(Membership.chat_id == chat_id, Membership.member_id == member_id)
    )
    return result.scalar_one_or_none()


async def memberships_of(
    session: AsyncSession, chat_id: str, member_ids: Sequence[str]
) -> dict[str, Membership]:
    """The rows for several members of one group, in one query, by member id."""
    if not member_ids:
        return {}
    result = await session.execute(
        select(Membership).where(
            Membership.chat_id == chat_id, Membership.member_id.in_(list(member_ids))
        )
    )
    return {row.member_id: row for row in result.scalars()}
