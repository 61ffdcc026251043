"""Daily check-in (打卡) points for camps (playbook `points.checkin`).

A member's message in the day's window that starts with a check-in word counts once
per local day (ledger line `checkin`, key `checkin:<day>`). The streak is the run of
consecutive check-in days ending with that day, read from the member's own recent
check-in lines; reaching a `streak_bonus` length adds that bonus once per streak
(`checkin_streak`, keyed by the streak's first day and length). The bot says nothing
back: members are disturbed as little as possible; admins see the streak in
`GET /admin/members/{id}/points`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks.points_section import CheckinPoints, CheckinWindow
from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.core.events import Event, Message
from handlers.features.points.ledger import WRITTEN_KINDS, AddPoints, points_group
from storage.models import PointsEntry

CHECKIN, CHECKIN_STREAK = "checkin", "checkin_streak"
KEY_PREFIX = "checkin:"
ROBOT_PREFIX = "wb"
# How far back the admin view looks for a streak: a camp is weeks, not years.
SHOWN_STREAK_DAYS = 366


# --- pure decisions ---------------------------------------------------------------


def checkin_day(local: datetime, window: CheckinWindow) -> date | None:
    """The day a check-in at local time `local` counts for, or None outside the window.
    A window past midnight (22:00–02:00) belongs to the day it opens on."""
    now = local.time().replace(tzinfo=None)
    if not window.covers(now):
        return None
    if window.start > window.end and now < window.end:
        return local.date() - timedelta(days=1)
    return local.date()


def is_checkin(text: str, words: Iterable[str]) -> bool:
    stripped = text.strip()
    return any(stripped.startswith(word) for word in words)


def streak_ending(days: set[date], day: date) -> int:
    """Consecutive check-in days ending with `day` (0 if `day` has none)."""
    length = 0
    while day - timedelta(days=length) in days:
        length += 1
    return length


@dataclass(frozen=True)
class Earning:
    reason: str
    points: int
    key: str


def checkin_earnings(day: date, earlier: set[date], rule: CheckinPoints) -> list[Earning]:
    """What checking in on `day` earns, given the member's earlier check-in days: the
    day's points, and a streak bonus on the day a streak reaches a bonus length. The
    day's line is written even at 0 points: it is what the streak is counted from."""
    if day in earlier:
        return []
    earnings = [Earning(CHECKIN, rule.points, f"{KEY_PREFIX}{day.isoformat()}")]
    streak = streak_ending(earlier | {day}, day)
    bonus = rule.streak_bonus.get(streak, 0)
    if bonus > 0:
        first = day - timedelta(days=streak - 1)
        earnings.append(Earning(CHECKIN_STREAK, bonus, f"streak:{first.isoformat()}:{streak}"))
    return earnings


def day_of_key(key: str) -> date | None:
    if not key.startswith(KEY_PREFIX):
        return None
    try:
        return date.fromisoformat(key.removeprefix(KEY_PREFIX))
    except ValueError:
        return None


# --- facts ---------------------------------------------------------------------------


async def checkin_days(
    session: AsyncSession, chat_id: str, member_id: str, *, since: date
) -> set[date]:
    """The member's check-in days in the group from `since` on (the day is in the key;
    a line is written at most a day after its day, so `created_at` bounds the read)."""
    lower = datetime.combine(since - timedelta(days=1), time(0), tzinfo=UTC)
    rows = await session.execute(
        select(PointsEntry.source_key).where(
            PointsEntry.chat_id == chat_id,
            PointsEntry.member_id == member_id,
            PointsEntry.reason == CHECKIN,
            PointsEntry.created_at >= lower,
        )
    )
    days = {day_of_key(key) for key in rows.scalars()}
    return {day for day in days if day is not None and day >= since}


async def known_days(
    ctx: Context, chat_id: str, member_id: str, day: date, rule: CheckinPoints
) -> set[date]:
    """The member's check-in days that matter for `day`, kept for the batch: ledger
    lines are written at the batch's end, so a backfilled week in one archive page
    must see its own earlier days here."""
    key = ("points_checkin", f"{chat_id}|{member_id}")
    days: set[date] | None = ctx.memo.extra.get(key)
    if days is None:
        # One day more than the longest bonus: a streak reaches a length only if the
        # day before it began had no check-in.
        reach = max(rule.streak_bonus, default=1) + 1
        days = await checkin_days(
            ctx.session, chat_id, member_id, since=day - timedelta(days=reach)
        )
        ctx.memo.extra[key] = days
    return days


# --- handler -------------------------------------------------------------------------


async def on_message(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, Message)
    if event.sender.startswith(ROBOT_PREFIX) or event.msgtype not in WRITTEN_KINDS:
        return []
    found = await points_group(event, ctx)
    if found is None or not found.points.checkin.enabled:
        return []
    assert event.chat_id
    rule = found.points.checkin
    if not is_checkin(event.text, rule.words):
        return []
    day = checkin_day(event.occurred_at.astimezone(ctx.tz), rule.window)
    if day is None:
        return []
    days = await known_days(ctx, event.chat_id, event.sender, day, rule)
    earnings = checkin_earnings(day, days, rule)
    days.add(day)  # a second check-in of the day, later in this batch, earns nothing
    return [
        AddPoints(event.chat_id, event.sender, e.points, e.reason, e.key, event.occurred_at)
        for e in earnings
    ]


# --- reading -------------------------------------------------------------------------


async def current_streak(
    session: AsyncSession, chat_id: str, member_id: str, *, today: date
) -> int:
    """The member's running streak: consecutive check-in days ending today, or ending
    yesterday while today's check-in may still come."""
    days = await checkin_days(
        session, chat_id, member_id, since=today - timedelta(days=SHOWN_STREAK_DAYS)
    )
    return streak_ending(days, today) or streak_ending(days, today - timedelta(days=1))
