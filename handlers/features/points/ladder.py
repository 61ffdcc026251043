"""The member ladder 普通 → 活跃 → 核心 → KOL (issue 9): rungs earned by lifetime
points in the group, active weeks and answers given to other members' questions,
thresholds from the playbook (`points.roles`). 讲师 and 大咖 are nominated by admins
(member_roles), never earned.

A review reads every member's standing at once, decides each level with a pure
function, and records every promotion and demotion with a reason people can read.
It runs as a periodic job and on an admin's request; changes are never announced
in the group (members are disturbed as little as possible) — a member asks with
the playbook's query words.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook, PlaybookSet
from bot.config.playbooks.points_section import RoleThreshold
from handlers.core.playbooks import playbook_for
from handlers.features.health.signals import LoggedMessage, first_answers
from handlers.features.roles import HOST_ROLES, roles_in
from storage.models import Group, LevelChange, MemberLevel, Membership, MessageLog, PointsEntry

ORDINARY = "普通"


@dataclass(frozen=True)
class Standing:
    points: int  # lifetime, in this group
    active_weeks: int  # of the last `ladder_weeks`
    answers: int  # questions of others this member answered first, same weeks


@dataclass(frozen=True)
class Rung:
    level: str
    reason: str


def shortfall(rung: RoleThreshold, standing: Standing, weeks: int) -> str | None:
    """What the member lacks for the rung, in words; None when every condition holds."""
    if standing.points < rung.min_points:
        return f"积分 {standing.points}，{rung.name} 需要 {rung.min_points}"
    if standing.active_weeks < rung.active_weeks:
        have, need = standing.active_weeks, rung.active_weeks
        return f"近 {weeks} 周有 {have} 周发言，{rung.name} 需要 {need} 周"
    if standing.answers < rung.answers:
        have, need = standing.answers, rung.answers
        return f"近 {weeks} 周回答了 {have} 个问题，{rung.name} 需要 {need} 个"
    return None


def decide_level(rungs: Sequence[RoleThreshold], standing: Standing, weeks: int) -> Rung:
    """The highest rung (in playbook order, low to high) whose conditions all hold,
    with why; below every rung the member is 普通 with what the first rung lacks."""
    for rung in reversed(rungs):
        if shortfall(rung, standing, weeks) is None:
            parts = [f"积分 {standing.points}"]
            if rung.active_weeks:
                parts.append(f"近 {weeks} 周有 {standing.active_weeks} 周发言")
            if rung.answers:
                parts.append(f"回答了 {standing.answers} 个问题")
            return Rung(rung.name, "，".join(parts))
    lacking = shortfall(rungs[0], standing, weeks) if rungs else None
    return Rung(ORDINARY, lacking or "")


@dataclass(frozen=True)
class Move:
    member_id: str
    before: str
    after: str
    reason: str


def moves(
    current: dict[str, str], decided: dict[str, Rung], rungs: Sequence[RoleThreshold]
) -> list[Move]:
    order = {ORDINARY: -1} | {rung.name: index for index, rung in enumerate(rungs)}
    found: list[Move] = []
    for member, rung in sorted(decided.items()):
        before = current.get(member, ORDINARY)
        if before == rung.level:
            continue
        verb = "升为" if order.get(rung.level, -1) > order.get(before, -1) else "降为"
        found.append(Move(member, before, rung.level, f"{verb}{rung.level}：{rung.reason}"))
    return found


# --- reading and writing ----------------------------------------------------------


async def standings(
    session: AsyncSession,
    chat_id: str,
    members: Sequence[str],
    *,
    now: datetime,
    tz: tzinfo,
    weeks: int,
    window: timedelta,
) -> dict[str, Standing]:
    """Lifetime points in the group, and active weeks (local ISO weeks) and answers
    given over the last `weeks` weeks, from one read of the ledger and the log each."""
    since = now - timedelta(weeks=weeks)
    points = dict(
        (
            await session.execute(
                select(PointsEntry.member_id, func.sum(PointsEntry.delta))
                .where(PointsEntry.chat_id == chat_id)
                .group_by(PointsEntry.member_id)
            )
        ).all()
    )
    rows = await session.execute(
        select(
            MessageLog.member_id, MessageLog.sent_at, MessageLog.is_question, MessageLog.replies_to
        )
        .where(
            MessageLog.chat_id == chat_id,
            MessageLog.sent_at >= since,
            MessageLog.sent_at <= now,
            MessageLog.revoked_at.is_(None),
        )
        .order_by(MessageLog.sent_at, MessageLog.id)
    )
    messages = [LoggedMessage(m, at, bool(q), r) for m, at, q, r in rows]
    active: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for message in messages:
        year, week, _ = message.at.astimezone(tz).isocalendar()
        active[message.member_id].add((year, week))
    answered = Counter(
        a.answerer for a in first_answers(messages, window) if a.answerer is not None
    )
    return {
        member: Standing(
            int(points.get(member) or 0), len(active.get(member, ())), answered[member]
        )
        for member in members
    }


async def review_group(
    session: AsyncSession, group: Group, playbook: Playbook, *, now: datetime, tz: tzinfo
) -> list[Move]:
    """Decide every present member's level and record what changed."""
    present = list(
        (
            await session.execute(
                select(Membership.member_id).where(
                    Membership.chat_id == group.chat_id,
                    Membership.left_at.is_(None),
                )
            )
        ).scalars()
    )
    roles = await roles_in(session, group.chat_id, present)
    members = [m for m in present if not roles.get(m, frozenset()) & HOST_ROLES]
    section = playbook.points
    assert section is not None
    found = await standings(
        session,
        group.chat_id,
        members,
        now=now,
        tz=tz,
        weeks=section.ladder_weeks,
        window=timedelta(minutes=playbook.health.thread_minutes),
    )
    decided = {m: decide_level(section.roles, s, section.ladder_weeks) for m, s in found.items()}
    rows = {
        row.member_id: row
        for row in (
            await session.execute(select(MemberLevel).where(MemberLevel.chat_id == group.chat_id))
        ).scalars()
    }
    changes = moves({m: row.level for m, row in rows.items()}, decided, section.roles)
    for move in changes:
        row = rows.get(move.member_id)
        if move.after == ORDINARY:
            if row is not None:
                await session.delete(row)
        elif row is None:
            session.add(
                MemberLevel(
                    chat_id=group.chat_id, member_id=move.member_id, level=move.after, since=now
                )
            )
        else:
            row.level, row.since = move.after, now
        session.add(
            LevelChange(
                chat_id=group.chat_id,
                member_id=move.member_id,
                from_level=move.before,
                to_level=move.after,
                reason=move.reason,
                at=now,
            )
        )
    await session.flush()
    return changes


async def review_all(
    session: AsyncSession, playbooks: PlaybookSet, *, now: datetime, tz: tzinfo
) -> dict[str, list[Move]]:
    reviewed: dict[str, list[Move]] = {}
    for group in (await session.execute(select(Group).order_by(Group.chat_id))).scalars().all():
        playbook = playbook_for(playbooks, group)
        section = playbook.points
        if section is None or not section.enabled or not section.roles:
            continue
        reviewed[group.chat_id] = await review_group(session, group, playbook, now=now, tz=tz)
    return reviewed


async def level_of(session: AsyncSession, chat_id: str, member_id: str) -> str:
    row = await session.scalar(
        select(MemberLevel.level).where(
            MemberLevel.chat_id == chat_id, MemberLevel.member_id == member_id
        )
    )
    return row or ORDINARY


async def history(session: AsyncSession, chat_id: str, member_id: str) -> list[LevelChange]:
    rows = await session.execute(
        select(LevelChange)
        .where(LevelChange.chat_id == chat_id, LevelChange.member_id == member_id)
        .order_by(LevelChange.at.desc(), LevelChange.id.desc())
    )
    return list(rows.scalars())
