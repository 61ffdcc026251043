"""Points that reward real contribution: an append-only ledger (SPEC §5.5).

Every change of a balance is a new ledger line with an idempotency key (member,
reason, source event), so a replayed event or a retried admin call changes
nothing; a balance is the sum of the lines, never a number updated in place.

Message points are decided by a pure function from the member's recent earnings:
too short, too soon after the last earning, or over the day's cap earns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from bot.config.playbooks.points_section import MessagePoints, PointsSection
from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.core.events import Event, Message
from handlers.core.executor import Executor
from handlers.core.playbooks import playbook_for
from handlers.features.health.signals import LoggedMessage, answered_member
from handlers.features.message_log import LogMessage
from handlers.features.roles import hosts_among
from storage.db import insert_for
from storage.models import Group, MessageLog, PointsEntry

MESSAGE, MANUAL, DISCUSSION = "message", "manual", "discussion"
DAY_CAPPED = (MESSAGE, DISCUSSION)  # reasons with a daily cap, read together
# Kinds a person writes: a picture or a sticker is not a contribution by length.
WRITTEN_KINDS = frozenset({"text", "mixed", "markdown", "link"})


@dataclass(frozen=True)
class AddPoints(Action):
    chat_id: str
    member_id: str
    delta: int
    reason: str
    source_key: str
    at: datetime
    actor: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class MessageEarnings:
    """What the member earned for messages in the group on the message's local day."""

    today: int
    last_at: datetime | None


def message_points(
    length: int, earnings: MessageEarnings, *, at: datetime, rule: MessagePoints
) -> tuple[int, str]:
    """(points, why): 0 with the reason when the message earns nothing."""
    if length < rule.min_length:
        return 0, f"shorter than {rule.min_length} characters"
    if earnings.last_at is not None and at - earnings.last_at < timedelta(
        seconds=rule.cooldown_seconds
    ):
        return 0, f"earned less than {rule.cooldown_seconds} s ago"
    room = rule.daily_cap - earnings.today
    if room <= 0:
        return 0, f"daily cap of {rule.daily_cap} reached"
    return min(rule.points, room), "message"


def local_day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    return start, start + timedelta(days=1)


async def day_earnings(
    ctx: Context, chat_id: str, day: date, reason: str = MESSAGE
) -> dict[str, MessageEarnings]:
    """Earnings for one reason (message or discussion) of every member in the group on a
    local day: both reasons read in one query once a batch (a busy group's messages
    cost one query a batch, not one each) and kept current by the handler as the
    batch earns."""
    key = ("points_day", f"{chat_id}|{day.isoformat()}|{reason}")
    known: dict[str, MessageEarnings] | None = ctx.memo.extra.get(key)
    if known is None:
        start, end = local_day_bounds(day, ctx.tz)
        rows = await ctx.session.execute(
            select(
                PointsEntry.reason,
                PointsEntry.member_id,
                func.sum(PointsEntry.delta),
                func.max(PointsEntry.created_at),
            )
            .where(
                PointsEntry.chat_id == chat_id,
                PointsEntry.reason.in_(DAY_CAPPED),
                PointsEntry.created_at >= start,
                PointsEntry.created_at < end,
            )
            .group_by(PointsEntry.reason, PointsEntry.member_id)
        )
        by_reason: dict[str, dict[str, MessageEarnings]] = {r: {} for r in DAY_CAPPED}
        for why, member, total, last in rows.all():
            by_reason[str(why)][str(member)] = MessageEarnings(int(total), last)
        for why, earned in by_reason.items():
            ctx.memo.extra[("points_day", f"{chat_id}|{day.isoformat()}|{why}")] = earned
        known = by_reason[reason]
    return known


@dataclass(frozen=True)
class PointsGroup:
    group: Group
    playbook: Playbook
    points: PointsSection


async def points_group(event: Message, ctx: Context) -> PointsGroup | None:
    """The group of a member's group message with its points section; None when the
    bot does not know the group or its playbook gives no points. Every points handler
    starts here."""
    if event.chat_type != "group" or not event.chat_id or not event.sender:
        return None
    group = await ctx.group(event.chat_id)
    if group is None:
        return None
    playbook = playbook_for(ctx.playbooks, group)
    if playbook.points is None or not playbook.points.enabled:
        return None
    return PointsGroup(group, playbook, playbook.points)


async def on_message(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, Message)
    if event.msgtype not in WRITTEN_KINDS:
        return []
    found = await points_group(event, ctx)
    if found is None:
        return []
    assert event.chat_id
    group, points = found.group, found.points
    day = event.occurred_at.astimezone(ctx.tz).date()
    length = len(event.text.strip())
    source = (f"msg:{event.msg_id}" if event.msg_id else (ctx.source_id or ""))[:160]
    lines: list[Action] = []
    known = await day_earnings(ctx, event.chat_id, day)
    earnings = known.get(event.sender, MessageEarnings(0, None))
    earned, _why = message_points(length, earnings, at=event.occurred_at, rule=points.message)
    if earned:
        # The batch's later messages must see this earning before the line is written.
        known[event.sender] = MessageEarnings(earnings.today + earned, event.occurred_at)
        lines.append(
            AddPoints(event.chat_id, event.sender, earned, MESSAGE, source, event.occurred_at)
        )
    if length >= points.message.min_length and points.discussion:
        lines += await discussion_points(event, ctx, day, source, points, group)
    return lines


def discussion_award(today: int, *, points: int, daily_cap: int) -> int:
    """+`points` for taking part in a discussion, up to the day's cap."""
    return max(0, min(points, daily_cap - today))


async def discussion_points(
    event: Message, ctx: Context, day: date, source: str, points: PointsSection, group: Group
) -> list[Action]:
    """+discussion for answering another member (not the host) within the thread window:
    the member-to-member exchange group health counts as a round."""
    assert event.chat_id
    known = await day_earnings(ctx, event.chat_id, day, DISCUSSION)
    earnings = known.get(event.sender, MessageEarnings(0, None))
    award = discussion_award(
        earnings.today, points=points.discussion, daily_cap=points.discussion_daily_cap
    )
    if not award:
        return []
    window = timedelta(minutes=playbook_for(ctx.playbooks, group).health.thread_minutes)
    current = LoggedMessage(event.sender, event.occurred_at, replies_to=quoted_member(event))
    previous = await previous_in_chat(ctx, event)
    partner = answered_member(current, previous, window)
    if partner is None:
        return []
    if current.replies_to is None and previous and previous.length < points.message.min_length:
        return []  # answering "好" or "1" is no discussion
    if await hosts_among(ctx, event.chat_id, (event.sender, partner)):
        return []
    known[event.sender] = MessageEarnings(earnings.today + award, event.occurred_at)
    return [AddPoints(event.chat_id, event.sender, award, DISCUSSION, source, event.occurred_at)]


def quoted_member(event: Message) -> str | None:
    return event.quote.sender if event.quote is not None else None


async def previous_in_chat(ctx: Context, event: Message) -> LoggedMessage | None:
    """The group's message before this one, not taken back: the last of this batch's
    pending log rows (scanned once, incrementally: a batch's rows are in order), else
    the last logged row before the batch (read once a batch)."""
    assert event.chat_id
    own = (ctx.source_id or "")[:64]
    if ctx.deferred is not None:
        pending = ctx.deferred.actions.get(LogMessage, [])
        scan: PendingScan = ctx.memo.extra.setdefault(("log_pending", ""), PendingScan())
        scan.advance(pending)
        for entry in reversed(scan.last_two.get(event.chat_id, [])):
            if entry.source_id != own and entry.at <= event.occurred_at:
                return LoggedMessage(
                    entry.member_id, entry.at, replies_to=entry.replies_to, length=entry.length
                )
    key = ("last_logged", event.chat_id)
    if key not in ctx.memo.extra or ctx.deferred is None:
        row = (
            await ctx.session.execute(
                select(
                    MessageLog.member_id,
                    MessageLog.sent_at,
                    MessageLog.replies_to,
                    MessageLog.length,
                )
                .where(
                    MessageLog.chat_id == event.chat_id,
                    MessageLog.revoked_at.is_(None),
                    MessageLog.source_id != own,
                    MessageLog.sent_at <= event.occurred_at,
                )
                .order_by(MessageLog.sent_at.desc(), MessageLog.id.desc())
                .limit(1)
            )
        ).first()
        ctx.memo.extra[key] = (
            LoggedMessage(row[0], row[1], replies_to=row[2], length=row[3]) if row else None
        )
    found: LoggedMessage | None = ctx.memo.extra[key]
    return found


@dataclass
class PendingScan:
    """The batch's pending log rows read so far: each chat's last two (its newest may
    be the message being handled)."""

    seen: int = 0
    last_two: dict[str, list[LogMessage]] = field(default_factory=dict)

    def advance(self, pending: list[LogMessage]) -> None:
        for entry in pending[self.seen :]:
            if entry.revokes is None:
                kept = self.last_two.setdefault(entry.chat_id, [])
                kept.append(entry)
                del kept[:-2]
        self.seen = len(pending)


async def apply_many(actions: Sequence[AddPoints], session: AsyncSession) -> None:
    """The batch's ledger lines in one executemany; a line already there (a replay)
    is left as it is. Deferred to the batch's end: later messages of the batch read
    earlier earnings from the memo (`day_earnings`), not from the table."""
    table = cast(Table, PointsEntry.__table__)
    connection = await session.connection()
    await connection.execute(
        insert_for(session)(table).on_conflict_do_nothing(
            index_elements=["chat_id", "member_id", "reason", "source_key"]
        ),
        [
            {
                "chat_id": action.chat_id,
                "member_id": action.member_id,
                "delta": action.delta,
                "reason": action.reason,
                "source_key": action.source_key,
                "created_at": action.at,
                "actor": action.actor,
                "note": action.note,
            }
            for action in actions
        ],
    )


async def add_line(
    session: AsyncSession,
    *,
    chat_id: str,
    member_id: str,
    delta: int,
    reason: str,
    source_key: str,
    at: datetime,
    actor: str | None = None,
    note: str | None = None,
) -> bool:
    """One ledger line, written at once (admin calls, rule penalties); False when the
    line (member, reason, key) is already there, and nothing changes."""
    table = cast(Table, PointsEntry.__table__)
    result = await session.execute(
        insert_for(session)(table)
        .values(
            chat_id=chat_id,
            member_id=member_id,
            delta=delta,
            reason=reason,
            source_key=source_key,
            created_at=at,
            actor=actor,
            note=note,
        )
        .on_conflict_do_nothing(index_elements=["chat_id", "member_id", "reason", "source_key"])
    )
    return bool(getattr(result, "rowcount", 0))


# --- reading -----------------------------------------------------------------------


async def balance(
    session: AsyncSession, chat_id: str, member_id: str, *, since: datetime | None = None
) -> int:
    """The sum of the member's lines; from `since` on (the season's start) when given."""
    query = select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
        PointsEntry.chat_id == chat_id, PointsEntry.member_id == member_id
    )
    if since is not None:
        query = query.where(PointsEntry.created_at >= since)
    return int((await session.execute(query)).scalar_one())


async def entries(
    session: AsyncSession, chat_id: str, member_id: str, *, limit: int
) -> list[PointsEntry]:
    rows = await session.execute(
        select(PointsEntry)
        .where(PointsEntry.chat_id == chat_id, PointsEntry.member_id == member_id)
        .order_by(PointsEntry.created_at.desc(), PointsEntry.id.desc())
        .limit(limit)
    )
    return list(rows.scalars())


@dataclass(frozen=True)
class Standing:
    member_id: str
    points: int
    rank: int


async def leaderboard(
    session: AsyncSession, chat_id: str | None, *, start: datetime, end: datetime, limit: int
) -> list[Standing]:
    """Members by points earned in [start, end) in the group, or summed across every
    group (chat_id None); equal points share a rank."""
    total = func.sum(PointsEntry.delta).label("points")
    query = select(PointsEntry.member_id, total).where(
        PointsEntry.created_at >= start, PointsEntry.created_at < end
    )
    if chat_id is not None:
        query = query.where(PointsEntry.chat_id == chat_id)
    rows = await session.execute(
        query.group_by(PointsEntry.member_id)
        .order_by(total.desc(), PointsEntry.member_id)
        .limit(limit)
    )
    standings: list[Standing] = []
    for position, (member, points) in enumerate(rows.all(), start=1):
        points = int(points)
        rank = standings[-1].rank if standings and standings[-1].points == points else position
        standings.append(Standing(str(member), points, rank))
    return standings


def register(executor: Executor) -> None:
    executor.register_bulk(AddPoints, apply_many)
