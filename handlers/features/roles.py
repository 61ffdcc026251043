"""Member roles, read from one place by rules and later features.

Derived roles come from WeCom: `owner` (the group's owner), `admin` (the group's
admins in groupchat/get), `staff` (an internal member of the corp, not an external
contact). Playbook roles (讲师, KOL, 核心 …) are set by admins through the API and
kept per group in `member_roles`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.channels.registry import is_external_id
from handlers.core.context import Context
from storage.models import Group, MemberRole, Membership

DERIVED_ROLES = ("owner", "admin", "staff")
# "The host" of the seeds' health signals: whoever runs the group rather than takes part.
HOST_ROLES = frozenset(DERIVED_ROLES)


def derived_roles(
    member: str, owner: str | None, admins: set[str], member_type: int | None
) -> set[str]:
    """owner and admin from groupchat/get; staff: an internal member (member_type 1),
    or, before WeCom said, an id that is not an external contact's."""
    found = set()
    if member == owner:
        found.add("owner")
    if member in admins:
        found.add("admin")
    if member_type == 1 or (member_type is None and not is_external_id(member)):
        found.add("staff")
    return found


async def roles_in(
    session: AsyncSession, chat_id: str, member_ids: Iterable[str]
) -> dict[str, frozenset[str]]:
    """Every role of each member in the group (derived and playbook roles)."""
    wanted = sorted(set(member_ids))
    roles: dict[str, set[str]] = {member: set() for member in wanted}
    if not wanted:
        return {}
    group = await session.get(Group, chat_id)
    admins = set(group.admins or []) if group is not None else set()
    types = dict(
        (
            await session.execute(
                select(Membership.member_id, Membership.member_type).where(
                    Membership.chat_id == chat_id, Membership.member_id.in_(wanted)
                )
            )
        ).all()
    )
    owner = group.owner if group is not None else None
    for member in wanted:
        roles[member] |= derived_roles(member, owner, admins, types.get(member))
    assigned = await session.execute(
        select(MemberRole.member_id, MemberRole.role).where(
            MemberRole.chat_id == chat_id, MemberRole.member_id.in_(wanted)
        )
    )
    for member, role in assigned:
        roles[member].add(role)
    return {member: frozenset(found) for member, found in roles.items()}


async def hosts_among(ctx: Context, chat_id: str, member_ids: Iterable[str]) -> frozenset[str]:
    """Which of these run the group (owner, admin, staff): the derived roles only, from
    the group's member types read once a batch — a busy group's messages ask this per
    message, and the group row is the batch's already."""
    group = await ctx.group(chat_id)
    key = ("member_types", chat_id)
    types: dict[str, int | None] | None = ctx.memo.extra.get(key)
    if types is None:  # the whole group at once: at most a few hundred rows
        types = dict(
            (
                await ctx.session.execute(
                    select(Membership.member_id, Membership.member_type).where(
                        Membership.chat_id == chat_id
                    )
                )
            ).all()
        )
        ctx.memo.extra[key] = types
    admins = set(group.admins or []) if group is not None else set()
    owner = group.owner if group is not None else None
    return frozenset(m for m in set(member_ids) if derived_roles(m, owner, admins, types.get(m)))


async def roles_of(session: AsyncSession, chat_id: str, member_id: str) -> frozenset[str]:
    return (await roles_in(session, chat_id, [member_id]))[member_id]


async def assigned_roles(session: AsyncSession, chat_id: str, member_id: str) -> list[str]:
    rows = await session.execute(
        select(MemberRole.role)
        .where(MemberRole.chat_id == chat_id, MemberRole.member_id == member_id)
        .order_by(MemberRole.role)
    )
    return list(rows.scalars())


async def set_roles(
    session: AsyncSession,
    *,
    chat_id: str,
    member_id: str,
    roles: Sequence[str],
    now: datetime,
) -> list[str]:
    """Replace the member's playbook roles in the group; returns them, sorted."""
    wanted = sorted(set(roles))
    await session.execute(
        delete(MemberRole).where(MemberRole.chat_id == chat_id, MemberRole.member_id == member_id)
    )
    session.add_all(
        MemberRole(chat_id=chat_id, member_id=member_id, role=role, set_at=now) for role in wanted
    )
    await session.flush()
    return wanted
