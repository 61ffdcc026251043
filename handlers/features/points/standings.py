"""Who earned most in a group over a period, as members may be shown it: the
贡献之星 candidates and the 早报's leaderboard read the same standings, with the
hosts (owner, admins, staff) and members who left set apart and each member's name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.features.points.ledger import Standing, leaderboard
from handlers.features.roles import HOST_ROLES, roles_in
from storage.models import Membership


@dataclass(frozen=True)
class Contributors:
    standings: list[Standing]  # everyone, hosts included, best first
    excluded: frozenset[str]  # hosts and members who left: never shown as contributors
    names: dict[str, str | None]  # as the group knows them (None: unknown)


async def contributors(
    session: AsyncSession, chat_id: str, *, start: datetime, end: datetime, limit: int
) -> Contributors:
    """The group's standings in [start, end) (`limit` rows, so leave room for the hosts
    who may rank above the members), with who is left out and the names."""
    standings = await leaderboard(session, chat_id, start=start, end=end, limit=limit)
    ids = [s.member_id for s in standings]
    roles = await roles_in(session, chat_id, ids)
    rows = (
        await session.execute(
            select(Membership.member_id, Membership.name, Membership.left_at).where(
                Membership.chat_id == chat_id, Membership.member_id.in_(ids)
            )
        )
    ).all()
    excluded = {member for member, found in roles.items() if found & HOST_ROLES}
    excluded |= {str(member) for member, _, left_at in rows if left_at is not None}
    return Contributors(
        standings, frozenset(excluded), {str(member): name for member, name, _ in rows}
    )
