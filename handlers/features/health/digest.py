"""The weekly health digest: on Monday (the playbook's `health.digest_at`), each group
owner and operator gets one app message listing their groups whose last week fell
below a goal line — nothing when every group is fine, and nothing about a group the
bot did not know for the whole week (a new group's "0 rounds" would be noise). Keyed
per person and week, so a restart or a second replica sends nothing twice."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import PlaybookSet
from handlers.core.actions import Action
from handlers.core.playbooks import playbook_for
from handlers.features.copilot import QueueStaffText, recipients_for
from handlers.features.health.figures import Report, figures
from handlers.features.health.read import Week, week_facts, week_of
from storage.models import Group, OutboxItem

ORIGIN = "health_digest"


def percent(value: float | int | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def shortfalls(report: Report) -> list[str]:
    """The figures below their goal lines, as an operator reads them."""
    lines: list[str] = []
    for name in report.below_goal:
        if name == "active_rate":
            rate = report.active_rate
            lines.append(f"周活跃率 {percent(rate.value)}（目标 {percent(rate.goal)}）")
        elif name == "interaction_rounds":
            rounds = report.interaction_rounds
            lines.append(f"群友互动 {rounds.value} 轮（目标 {rounds.goal} 轮）")
        elif name == "questions":
            q = report.questions
            lines.append(
                f"群友回答的问题占 {percent(q.value)}（目标 {percent(q.goal)}；"
                f"员工答 {q.answered_by_staff}，无人答 {q.unanswered}）"
            )
        elif name == "leads" and report.leads is not None:
            lines.append(
                f"线索转化 {percent(report.leads.value)}（目标 {percent(report.leads.goal)}）"
            )
        elif name == "size":
            size = report.size
            lines.append(f"群人数 {size.members}，已到提醒线 {size.alert_at}（上限 {size.cap}）")
    return lines


@dataclass(frozen=True)
class GroupBelow:
    chat_id: str
    name: str
    lines: list[str]


def digest_text(week: Week, groups: list[GroupBelow]) -> str:
    last_day = week.monday + timedelta(days=6)
    head = (
        f"【社群健康周报】{week.label}（{week.monday.month}月{week.monday.day}日—"
        f"{last_day.month}月{last_day.day}日），这些群有指标低于目标线："
    )
    body = [
        f"{n}. {group.name}：" + "；".join(group.lines) for n, group in enumerate(groups, start=1)
    ]
    tail = "明细见后台 GET /admin/groups/{群ID}/health?week=" + week.label
    return "\n".join([head, *body, tail])


def digest_key(person: str, week: Week) -> str:
    return f"{ORIGIN}:{week.label}:{person}"[:200]


async def digest_actions(
    session: AsyncSession, playbooks: PlaybookSet, *, now: datetime, tz: tzinfo
) -> list[Action]:
    """Last week's digests that are due (Monday at `digest_at` or later) and not sent."""
    today = now.astimezone(tz).date()
    week = week_of(today - timedelta(days=7), tz)
    monday = week.end  # this week's Monday 00:00, local
    by_person: dict[str, list[GroupBelow]] = defaultdict(list)
    for group in (await session.execute(select(Group).order_by(Group.chat_id))).scalars().all():
        playbook = playbook_for(playbooks, group)
        goals = playbook.health
        hour, minute = (int(part) for part in goals.digest_at.split(":"))
        if not goals.digest or now < monday + timedelta(hours=hour, minutes=minute):
            continue
        if group.created_at > week.start or group.dismissed_at is not None:
            continue  # a week the bot did not watch whole says nothing about the group
        report = figures(await week_facts(session, group.chat_id, week, goals), goals)
        lines = shortfalls(report)
        if not lines:
            continue
        for person in recipients_for(group, playbook):
            by_person[person].append(
                GroupBelow(group.chat_id, group.name or group.label or group.chat_id, lines)
            )
    if not by_person:
        return []
    keys = {person: digest_key(person, week) for person in by_person}
    sent = set(
        (
            await session.execute(
                select(OutboxItem.dedup_key).where(OutboxItem.dedup_key.in_(keys.values()))
            )
        ).scalars()
    )
    return [
        QueueStaffText(person, digest_text(week, groups), ORIGIN, keys[person])
        for person, groups in sorted(by_person.items())
        if keys[person] not in sent
    ]
