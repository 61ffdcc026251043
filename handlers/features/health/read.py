"""Reading a group's week from the database into `WeekFacts` (the thin I/O side)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks.health_section import HealthSection
from handlers.features.growth.leads import lead_stage_counts
from handlers.features.health.figures import Join, WeekFacts
from handlers.features.health.signals import LoggedMessage
from handlers.features.roles import HOST_ROLES, roles_in
from storage.models import MemberLevel, MemberRole, Membership, MessageLog

ISO_WEEK = re.compile(r"^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$")


class BadWeek(ValueError):
    pass


@dataclass(frozen=True)
class Week:
    label: str  # 2026-W48
    monday: date
    start: datetime  # local Monday 00:00, aware
    end: datetime  # the next Monday 00:00


def parse_week(label: str, tz: tzinfo) -> Week:
    found = ISO_WEEK.match(label)
    if not found:
        raise BadWeek(f"week must look like 2026-W48 (ISO year and week), got {label!r}")
    try:
        monday = date.fromisocalendar(int(found[1]), int(found[2]), 1)
    except ValueError as exc:
        raise BadWeek(f"{label} is not a week of that year") from exc
    return week_of(monday, tz)


def week_of(day: date, tz: tzinfo) -> Week:
    monday = day - timedelta(days=day.weekday())
    year, number, _ = monday.isocalendar()
    start = datetime.combine(monday, time(0), tzinfo=tz)
    return Week(f"{year}-W{number:02d}", monday, start, start + timedelta(days=7))


async def week_facts(
    session: AsyncSession, chat_id: str, week: Week, goals: HealthSection
) -> WeekFacts:
    messages = [
        LoggedMessage(member, at, bool(question), replies_to)
        for member, at, question, replies_to in await session.execute(
            select(
                MessageLog.member_id,
                MessageLog.sent_at,
                MessageLog.is_question,
                MessageLog.replies_to,
            )
            .where(
                MessageLog.chat_id == chat_id,
                MessageLog.sent_at >= week.start,
                MessageLog.sent_at < week.end,
                MessageLog.revoked_at.is_(None),
            )
            .order_by(MessageLog.sent_at, MessageLog.id)
        )
    ]
    present = frozenset(
        (
            await session.execute(
                select(Membership.member_id).where(
                    Membership.chat_id == chat_id,
                    Membership.joined_at < week.end,
                    or_(Membership.left_at.is_(None), Membership.left_at >= week.end),
                )
            )
        ).scalars()
    )
    joined = (
        await session.execute(
            select(Membership.member_id, Membership.invitor).where(
                Membership.chat_id == chat_id,
                Membership.joined_at >= week.start,
                Membership.joined_at < week.end,
            )
        )
    ).all()
    leaves = len(
        (
            await session.execute(
                select(Membership.id).where(
                    Membership.chat_id == chat_id,
                    and_(Membership.left_at >= week.start, Membership.left_at < week.end),
                )
            )
        ).all()
    )
    people = present | {m.member_id for m in messages} | {i for _, i in joined if i}
    leads = await lead_stage_counts(session, chat_id)
    roles = await roles_in(session, chat_id, people)
    hosts = frozenset(m for m, found in roles.items() if found & HOST_ROLES)
    return WeekFacts(
        messages=messages,
        hosts=hosts,
        present=present,
        tiers=await tiers_of(session, chat_id, present - hosts, goals),
        joins=[Join(m, i, bool(i) and i in hosts) for m, i in joined],
        leaves=leaves,
        # The marks as they stand now (a lead mark keeps no weekly history of its own).
        leads=leads if any(leads.values()) else None,
    )


async def tiers_of(
    session: AsyncSession, chat_id: str, members: frozenset[str], goals: HealthSection
) -> dict[str, str]:
    """Each member's highest pyramid tier: a role admins gave (讲师, 大咖) or the
    ladder's level (活跃, 核心, KOL), whichever stands higher in the playbook's pyramid."""
    order = {tier.tier: index for index, tier in enumerate(goals.pyramid)}
    held: dict[str, list[str]] = {}
    for member, name in await session.execute(
        select(MemberRole.member_id, MemberRole.role).where(MemberRole.chat_id == chat_id)
    ):
        held.setdefault(member, []).append(name)
    for member, name in await session.execute(
        select(MemberLevel.member_id, MemberLevel.level).where(MemberLevel.chat_id == chat_id)
    ):
        held.setdefault(member, []).append(name)
    tiers: dict[str, str] = {}
    for member in members:
        ranked = sorted((order[n], n) for n in held.get(member, ()) if n in order)
        if ranked:
            tiers[member] = ranked[0][1]
    return tiers
