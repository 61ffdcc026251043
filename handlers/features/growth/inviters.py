"""Growth attribution: who brought whom, and what came of it (issue 9).

The inviter report counts, per inviter, the members whose join (memberships.joined_at,
the latest join of a member who left and came back) falls in a range of local days:
invites per ISO week, how many stayed 7 and 30 days, how many became active (sent a
message that was not taken back) and how many became leads, by stage.

"Became active" reads the message log, which is kept RETENTION_LOG_DAYS: a range
older than that undercounts it.

`inviter_report` is the pure computation from rows; `read_invitees` and
`read_inviters` read those rows in two queries, whatever the number of invitees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.channels.registry import is_external_id
from handlers.features.growth.leads import STAGES
from storage.models import Lead, Membership, MessageLog

RETENTION_DAYS = (7, 30)


@dataclass(frozen=True)
class Invitee:
    """One membership with an inviter, and what became of it."""

    chat_id: str
    member_id: str
    invitor: str
    joined_at: datetime
    left_at: datetime | None
    active: bool  # sent at least one message in the group that was not taken back
    lead_stage: str | None  # its lead mark's stage, when the lead came from this group


@dataclass(frozen=True)
class InviterInfo:
    name: str | None
    staff: bool


@dataclass(frozen=True)
class Retained:
    retained: int  # still in the group N days after joining
    eligible: int  # joined at least N days before now: the ones that could be retained


@dataclass(frozen=True)
class InviterLine:
    inviter: str
    name: str | None
    staff: bool
    invites: int
    per_week: dict[str, int]  # ISO week (2026-W47) → invites, every week of the range
    retained: dict[int, Retained]  # days (7, 30) → figures
    became_active: int
    leads: dict[str, int] = field(default_factory=dict)  # stage → invitees, every stage


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_between(first: date, last: date) -> list[str]:
    """Every ISO week that has a day in [first, last], in order."""
    weeks: list[str] = []
    day = first - timedelta(days=first.weekday())  # that week's Monday
    while day <= last:
        weeks.append(iso_week(day))
        day += timedelta(days=7)
    return weeks


def local_range(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in `tz`, as UTC instants."""
    start = datetime.combine(first, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


def stayed(invitee: Invitee, days: int) -> bool:
    return invitee.left_at is None or invitee.left_at >= invitee.joined_at + timedelta(days=days)


def inviter_report(
    invitees: Iterable[Invitee],
    inviters: Mapping[str, InviterInfo],
    *,
    first: date,
    last: date,
    now: datetime,
    tz: tzinfo,
) -> list[InviterLine]:
    """Per inviter, the invitees who joined on a local day in [first, last]; most
    invites first (then by inviter id, so equal counts keep one order)."""
    start, end = local_range(first, last, tz)
    weeks = weeks_between(first, last)
    mine: dict[str, list[Invitee]] = {}
    for invitee in invitees:
        if start <= invitee.joined_at < end:
            mine.setdefault(invitee.invitor, []).append(invitee)
    lines = []
    for inviter, brought in mine.items():
        per_week = dict.fromkeys(weeks, 0)
        for invitee in brought:
            per_week[iso_week(invitee.joined_at.astimezone(tz).date())] += 1
        retained = {}
        for days in RETENTION_DAYS:
            eligible = [i for i in brought if i.joined_at + timedelta(days=days) <= now]
            retained[days] = Retained(
                retained=sum(stayed(i, days) for i in eligible), eligible=len(eligible)
            )
        leads = dict.fromkeys(STAGES, 0)
        for invitee in brought:
            if invitee.lead_stage is not None:
                leads[invitee.lead_stage] = leads.get(invitee.lead_stage, 0) + 1
        info = inviters.get(inviter) or InviterInfo(None, not is_external_id(inviter))
        lines.append(
            InviterLine(
                inviter=inviter,
                name=info.name,
                staff=info.staff,
                invites=len(brought),
                per_week=per_week,
                retained=retained,
                became_active=sum(i.active for i in brought),
                leads=leads,
            )
        )
    lines.sort(key=lambda line: (-line.invites, line.inviter))
    return lines


def describe_inviters(
    rows: Iterable[tuple[str, str, str | None, int | None]], chat_id: str | None
) -> dict[str, InviterInfo]:
    """Name and staff flag of each inviter from their memberships (chat, member, name,
    member_type): the name in the reported group first, else any name they had; staff
    when WeCom typed them internal (1) anywhere, else judged by the id's shape."""
    names: dict[str, str] = {}
    types: dict[str, set[int]] = {}
    for _chat, member, name, member_type in sorted(rows, key=lambda row: row[0] != chat_id):
        if name and member not in names:
            names[member] = name
        if member_type is not None:
            types.setdefault(member, set()).add(member_type)
    result = {}
    for member in set(names) | set(types):
        known = types.get(member, set())
        staff = 1 in known if known else not is_external_id(member)
        result[member] = InviterInfo(name=names.get(member), staff=staff)
    return result


async def read_invitees(
    session: AsyncSession, *, chat_id: str | None, start: datetime, end: datetime
) -> list[Invitee]:
    """Memberships with an inviter whose join is in [start, end), with whether the
    member spoke and their lead's stage, in one query."""
    spoke = exists().where(
        and_(
            MessageLog.chat_id == Membership.chat_id,
            MessageLog.member_id == Membership.member_id,
            MessageLog.revoked_at.is_(None),
        )
    )
    query = (
        select(
            Membership.chat_id,
            Membership.member_id,
            Membership.invitor,
            Membership.joined_at,
            Membership.left_at,
            spoke.label("active"),
            Lead.stage,
        )
        .outerjoin(
            Lead,
            and_(
                Lead.member_id == Membership.member_id,
                Lead.origin_chat_id == Membership.chat_id,
            ),
        )
        .where(
            Membership.invitor.is_not(None),
            Membership.invitor != "",
            # join_count 0: a leave whose join was never seen; no one is known to have invited it
            Membership.join_count > 0,
            Membership.joined_at >= start,
            Membership.joined_at < end,
        )
    )
    if chat_id is not None:
        query = query.where(Membership.chat_id == chat_id)
    rows = await session.execute(query)
    return [
        Invitee(
            chat_id=chat,
            member_id=member,
            invitor=invitor or "",
            joined_at=joined_at,
            left_at=left_at,
            active=bool(active),
            lead_stage=stage,
        )
        for chat, member, invitor, joined_at, left_at, active, stage in rows.all()
    ]


async def read_inviters(
    session: AsyncSession, inviters: Sequence[str], chat_id: str | None
) -> dict[str, InviterInfo]:
    wanted = sorted(set(inviters))
    found: list[tuple[str, str, str | None, int | None]] = []
    # In slices: a bound parameter list has a ceiling (SQLite 32766, asyncpg 32767).
    for at in range(0, len(wanted), 1000):
        rows = await session.execute(
            select(
                Membership.chat_id, Membership.member_id, Membership.name, Membership.member_type
            ).where(Membership.member_id.in_(wanted[at : at + 1000]))
        )
        found.extend(rows.all())
    return describe_inviters(found, chat_id)


async def inviters_report(
    session: AsyncSession,
    *,
    chat_id: str | None,
    first: date,
    last: date,
    now: datetime,
    tz: tzinfo,
) -> list[InviterLine]:
    start, end = local_range(first, last, tz)
    invitees = await read_invitees(session, chat_id=chat_id, start=start, end=end)
    inviters = await read_inviters(session, [i.invitor for i in invitees], chat_id)
    return inviter_report(invitees, inviters, first=first, last=last, now=now, tz=tz)
