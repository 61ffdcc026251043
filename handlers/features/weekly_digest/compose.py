"""What a week's 群刊 says, or why there is none: pure functions over the highlights
(handlers/features/highlights.py) and the playbook's `weekly_digest` section."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from bot.config.playbooks import GroupVars, render_text
from bot.config.playbooks.render import weekday_cn
from bot.config.playbooks.weekly_digest_section import (
    ResourceVars,
    ThreadVars,
    WeeklyDigestSection,
    weekly_digest_variables,
)
from handlers.features.health.read import Week, week_of
from handlers.features.highlights import Resource, Thread

ORIGIN = "weekly_digest"


def digest_key(chat_id: str, week: str) -> str:
    """The outbox (and owner task) key: one 群刊 per group and week, however asked."""
    return f"{ORIGIN}:{chat_id}:{week}"


def week_words(week: Week) -> str:
    """第49周（11月30日–12月6日）: the week as members read it."""
    last = week.monday + timedelta(days=6)
    number = int(week.label.rsplit("W", 1)[1])
    return f"第{number}周（{week.monday.month}月{week.monday.day}日–{last.month}月{last.day}日）"


def week_before(at: datetime, tz: tzinfo) -> Week:
    """The last whole local week before the one `at` falls in: what a 群刊 sent then
    looks back on."""
    return week_of(at.astimezone(tz).date() - timedelta(days=7), tz)


def due_at(week: Week, section: WeeklyDigestSection, tz: tzinfo) -> datetime:
    """When the 群刊 of `week` goes out: the section's weekday and time of the week after."""
    day = week.monday + timedelta(days=7 + section.weekday_index())
    return datetime.combine(day, section.at, tzinfo=tz).astimezone(UTC)


def overdue(due: datetime, at: datetime, tz: tzinfo) -> str | None:
    """A late start sends on the due day itself; a later day is too late: last week's
    news on a Thursday reads like a mistake."""
    if at.astimezone(tz).date() <= due.astimezone(tz).date():
        return None
    return (
        f"overdue: it was due {due.astimezone(tz):%Y-%m-%d %H:%M} and the service only "
        f"got to it on {at.astimezone(tz):%Y-%m-%d %H:%M}; a 群刊 goes out on its day or not at all"
    )


def thread_vars(threads: Sequence[Thread], tz: tzinfo) -> list[ThreadVars]:
    return [
        {
            "rank": rank,
            "name": t.starter_name,
            "text": t.text,
            "replies": t.replies,
            "participants": t.participants,
            "essence": t.essence,
            "question": t.question,
            "answered": t.answered,
            "day": weekday_cn(t.started_at.astimezone(tz).date()),
        }
        for rank, t in enumerate(threads, start=1)
    ]


def resource_vars(resources: Sequence[Resource]) -> list[ResourceVars]:
    return [
        {
            "kind": r.kind,
            "title": r.title,
            "url": r.url,
            "summary": r.summary,
            "author": r.author_name,
        }
        for r in resources
    ]


@dataclass(frozen=True)
class Draft:
    """A week's 群刊: its text, or the reason there is none (`skip`)."""

    week: Week
    threads: tuple[Thread, ...]
    resources: tuple[Resource, ...]
    text: str | None
    skip: str | None

    def threads_json(self, tz: tzinfo) -> list[dict[str, Any]]:
        return [
            {
                "msg_id": t.msg_id,
                "starter_id": t.starter_id,
                "name": t.starter_name,
                "text": t.text,
                "replies": t.replies,
                "participants": t.participants,
                "essence": t.essence,
                "question": t.question,
                "answered": t.answered,
                "started_at": t.started_at.astimezone(tz).isoformat(),
            }
            for t in self.threads
        ]

    def resources_json(self, tz: tzinfo) -> list[dict[str, Any]]:
        return [
            {
                "kind": r.kind,
                "title": r.title,
                "url": r.url,
                "summary": r.summary,
                "item_id": r.item_id,
                "msg_id": r.msg_id,
                "author_id": r.author_id,
                "author": r.author_name,
                "at": r.at.astimezone(tz).isoformat(),
            }
            for r in self.resources
        ]


def compose(
    section: WeeklyDigestSection,
    week: Week,
    group: GroupVars,
    threads: Sequence[Thread],
    resources: Sequence[Resource],
    *,
    today: date,
    tz: tzinfo,
) -> Draft:
    """The 群刊 of `week`, or the reason to skip it: fewer than `min_threads` threads
    worth a line (no empty 群刊)."""
    kept_threads, kept_resources = tuple(threads), tuple(resources)
    if len(threads) < section.min_threads:
        reason = (
            f"too quiet: {len(threads)} thread(s) with member replies or 精华 marks in "
            f"{week.label}, fewer than min_threads {section.min_threads}"
        )
        return Draft(week, kept_threads, kept_resources, None, reason)
    variables = weekly_digest_variables(
        week=week_words(week),
        week_id=week.label,
        threads=thread_vars(threads, tz),
        resources=resource_vars(resources),
        group=group,
        today=today,
    )
    return Draft(week, kept_threads, kept_resources, render_text(section.text, variables), None)


def owner_task_summary(week: Week) -> str:
    return (
        f"{week_words(week)}的群刊已整理好，但机器人不能在本群直接发言："
        "请把下面这段发到群里，让错过的好讨论被大家看到。"
    )
