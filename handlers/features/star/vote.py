"""贡献之星: each month the members vote for last month's top contributors (SPEC §5.5).

A vote is one `star_votes` row per group and month (unique), and due work twice:
`StarOpenKind` opens it at the playbook's `open_day`/`open_at` (the candidates text
goes into the group where the channel posts at once, else to the owner as a task
with the text ready to paste), and `StarCloseKind` closes it `vote_hours` later
(plus `CLOSE_GRACE`, so replies written in time that the archive brings a little
late still count), tallies, records the result and announces it. Because the row is
claimed like any due item, a vote opens and closes once per group and month even
with several replicas or a restart.

Replies are recorded as they are (`star_ballots`, one per message: a replayed
message counts once); which of them count is decided at the tally, by the pure
rules in tally.py. The bot never answers a vote: the group stays quiet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook, PlaybookSet
from bot.config.playbooks.points_section import StarVote
from handlers.channels import group_channel
from handlers.core.actions import Action, Note, QueueGroupText
from handlers.core.context import Context
from handlers.core.events import Event, Message
from handlers.core.executor import Executor
from handlers.core.months import month_label, parse_month
from handlers.core.playbooks import playbook_for
from handlers.features import copilot
from handlers.features.points.ledger import AddPoints
from handlers.features.points.standings import contributors
from handlers.features.star import texts as star_texts
from handlers.features.star.tally import (
    LATE_GRACE,
    Ballot,
    Candidate,
    Scored,
    Tally,
    month_bounds,
    parse_vote,
    pick_candidates,
    tally,
    to_schedule,
)
from scheduler.engine import DueContext, DueKind, Outcome
from storage.db import insert_for
from storage.models import Group, StarBallot
from storage.models import StarVote as VoteRow

STAR = "star"  # the ledger reason of a winner's points
ORIGIN_OPEN, ORIGIN_RESULT = "star_open", "star_result"
CLOSE_GRACE = timedelta(minutes=10)
SCAN_SECONDS = 600  # how often the opening kind looks for groups whose vote is due
# An admin may open a vote that never opened (a failed opening was rolled back) and
# close one that is open or whose closing failed.
OPENABLE = ("scheduled", "skipped", "failed")
CLOSABLE = ("open", "close_failed")


def enabled_star(playbook: Playbook | None) -> StarVote | None:
    points = playbook.points if playbook is not None else None
    if points is None or not points.enabled or points.star is None or not points.star.enabled:
        return None
    return points.star


# --- opening -----------------------------------------------------------------------------


async def read_candidates(
    session: AsyncSession, group: Group, playbook: Playbook, star: StarVote, voted: date, tz: tzinfo
) -> list[Candidate]:
    start, end = month_bounds(voted, tz)
    # Room for the owner, admins and staff who may rank above the members.
    found = await contributors(
        session, group.chat_id, start=start, end=end, limit=star.candidates * 2 + 100
    )
    return pick_candidates(
        [Scored(s.member_id, s.points) for s in found.standings],
        excluded=set(found.excluded),
        names=found.names,
        seats=star.candidates,
        neutral_name=playbook.neutral_name,
    )


def deliver(
    group: Group, playbook: Playbook, *, origin: str, task: str, text: str, key: str
) -> Action:
    """Into the group where its channel posts at once; else the owner posts it."""
    if group_channel(group.channel_type).capabilities.immediate:
        return QueueGroupText(group.chat_id, text, origin, key=key)
    return copilot.assign(group, playbook, origin=origin, summary=task, paste_text=text, key=key)


def open_vote(
    vote: VoteRow,
    group: Group,
    playbook: Playbook,
    star: StarVote,
    candidates: Sequence[Candidate],
    *,
    at: datetime,
    tz: tzinfo,
) -> list[Action]:
    """Record the opening on the row; the actions post the candidates."""
    vote.opened_at = at
    if not candidates:
        vote.status = "no_candidates"
        vote.closed_at = at
        vote.note = star_texts.no_candidates_note(vote.month)
        return [Note(vote.note)]
    listed = [c.as_json() for c in candidates]
    closes_at = at + timedelta(hours=star.vote_hours)
    vote.status = "open"
    vote.candidates = listed
    vote.closes_at = closes_at
    vote.due_at = closes_at + CLOSE_GRACE
    text = star_texts.open_text(vote.month, listed, closes_at=closes_at, tz=tz)
    vote.note = f"{len(listed)} candidate(s)"
    return [
        deliver(
            group,
            playbook,
            origin=ORIGIN_OPEN,
            task=star_texts.open_task(vote.month),
            text=text,
            key=f"star:{vote.id}:open",
        )
    ]


# --- closing -----------------------------------------------------------------------------


async def read_ballots(session: AsyncSession, vote_id: int) -> list[Ballot]:
    rows = await session.execute(
        select(StarBallot.voter, StarBallot.number, StarBallot.cast_at, StarBallot.id).where(
            StarBallot.vote_id == vote_id
        )
    )
    return [Ballot(str(v), int(n), at, int(i)) for v, n, at, i in rows.all()]


def vote_tally(vote: VoteRow, ballots: Sequence[Ballot]) -> Tally:
    assert vote.opened_at is not None and vote.closes_at is not None
    standing = {int(c["number"]): str(c["member_id"]) for c in vote.candidates}
    return tally(standing, ballots, opened_at=vote.opened_at, closes_at=vote.closes_at)


def close_vote(
    vote: VoteRow,
    result: Tally,
    group: Group | None,
    playbook: Playbook | None,
    *,
    at: datetime,
) -> list[Action]:
    """Record the result on the row; the actions announce it (and pay the winners
    when the playbook says so)."""
    by_number = {int(c["number"]): str(c["member_id"]) for c in vote.candidates}
    vote.status = "closed"
    vote.closed_at = at
    vote.result = result.as_json()
    vote.winners = [by_number[n] for n in result.winners]
    vote.note = f"{result.counted} vote(s); winner(s): {', '.join(vote.winners) or 'none'}"
    if group is None or playbook is None:
        return [Note(f"no group {vote.chat_id}: the result is recorded, not announced")]
    star = enabled_star(playbook)
    reward = star.winner_points if star is not None else 0
    text = star_texts.result_text(
        vote.month,
        vote.candidates,
        result.votes,
        result.winners,
        counted=result.counted,
        winner_points=reward,
    )
    actions: list[Action] = [
        deliver(
            group,
            playbook,
            origin=ORIGIN_RESULT,
            task=star_texts.result_task(vote.month),
            text=text,
            key=f"star:{vote.id}:result",
        )
    ]
    if reward:
        actions += [
            AddPoints(
                vote.chat_id,
                winner,
                reward,
                STAR,
                f"star:{vote.id}",
                at,
                note=f"{vote.month} 贡献之星",
            )
            for winner in vote.winners
        ]
    return actions


# --- replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordBallot(Action):
    vote_id: int
    voter: str
    number: int
    cast_at: datetime
    source_key: str


@dataclass(frozen=True)
class OpenWindow:
    vote_id: int
    opened_at: datetime
    closes_at: datetime


async def open_windows(ctx: Context, chat_id: str) -> list[OpenWindow]:
    """The group's open votes, read once a batch (only for replies that look like votes)."""
    key = ("star_vote", chat_id)
    known: list[OpenWindow] | None = ctx.memo.extra.get(key)
    if known is None:
        rows = await ctx.session.execute(
            select(VoteRow.id, VoteRow.opened_at, VoteRow.closes_at).where(
                VoteRow.chat_id == chat_id, VoteRow.status == "open"
            )
        )
        known = [OpenWindow(int(i), o, c) for i, o, c in rows.all() if o and c]
        ctx.memo.extra[key] = known
    return known


async def on_message(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, Message)
    if event.chat_type != "group" or not event.chat_id or not event.sender:
        return []
    if event.msgtype != "text":
        return []
    number = parse_vote(event.text)
    if number is None:
        return []
    source = f"msg:{event.msg_id}" if event.msg_id else (ctx.source_id or "")
    return [
        RecordBallot(w.vote_id, event.sender, number, event.occurred_at, source[:160])
        for w in await open_windows(ctx, event.chat_id)
        if w.opened_at <= event.occurred_at < w.closes_at
    ]


async def apply_ballot(action: RecordBallot, ctx: Context) -> None:
    table = cast(Table, StarBallot.__table__)
    await ctx.session.execute(
        insert_for(ctx.session)(table)
        .values(
            vote_id=action.vote_id,
            voter=action.voter,
            number=action.number,
            cast_at=action.cast_at,
            source_key=action.source_key,
        )
        .on_conflict_do_nothing(index_elements=["vote_id", "source_key"])
    )


# --- due work ----------------------------------------------------------------------------


async def schedule_votes(
    session: AsyncSession, playbooks: PlaybookSet, *, at: datetime, tz: tzinfo
) -> int:
    """Put last month's vote on the books for every group whose playbook wants one
    (a row already there is left alone); returns how many groups want one."""
    rows = (
        await session.execute(select(Group.chat_id, Group.tags).where(Group.dismissed_at.is_(None)))
    ).all()
    values: list[dict[str, Any]] = []
    for chat_id, tags in rows:
        star = enabled_star(playbooks.for_group(chat_id, list(tags or [])))
        due = to_schedule(at, star, tz) if star is not None else None
        if due is not None:
            voted, opens = due
            values.append(
                {
                    "chat_id": chat_id,
                    "month": month_label(voted),
                    "status": "scheduled",
                    "due_at": opens,
                    "candidates": [],
                    "winners": [],
                    "created_at": at,
                }
            )
    if values:
        table = cast(Table, VoteRow.__table__)
        await session.execute(
            insert_for(session)(table).on_conflict_do_nothing(index_elements=["chat_id", "month"]),
            values,
        )
    return len(values)


async def carry_out(
    executor: Executor,
    actions: list[Action],
    session: AsyncSession,
    ctx: DueContext,
    vote: VoteRow,
    status: str,
) -> Outcome:
    """Opening's or closing's actions through the executor, as the engine's outcome."""
    effects = await executor.execute_due(
        actions,
        session,
        now=ctx.now,
        tz=ctx.tz,
        playbooks=ctx.playbooks,
        source_id=f"star_vote:{vote.id}",
    )
    return Outcome(status, "; ".join([vote.note or "", *effects.notes]), tuple(effects.queued))


class StarOpenKind(DueKind):
    name = "star_open"
    model = VoteRow
    ready_status = "scheduled"
    claimed_status = "opening"

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._scanned: tuple[int, int] | None = None

    async def prepare(self, session: AsyncSession, ctx: DueContext) -> None:
        # Every few minutes (and at once after a playbook reload), not every tick.
        bucket = (int(ctx.at.timestamp()) // SCAN_SECONDS, id(ctx.playbooks))
        if bucket == self._scanned:
            return
        await schedule_votes(session, ctx.playbooks, at=ctx.at, tz=ctx.tz)
        self._scanned = bucket

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        vote: VoteRow = row
        group = await session.get(Group, vote.chat_id)
        playbook = playbook_for(ctx.playbooks, group) if group is not None else None
        star = enabled_star(playbook)
        why = None
        if group is None or group.dismissed_at is not None:
            why = "the group is gone"
        elif star is None:
            why = "the group's playbook has no 贡献之星 vote any more"
        elif ctx.at - vote.due_at > LATE_GRACE:
            why = "overdue: the opening was missed by more than a day"
        if why is not None:
            vote.status, vote.note = "skipped", why
            return Outcome("skipped", why)
        assert group is not None and playbook is not None and star is not None
        voted = parse_month(vote.month)
        assert voted is not None
        candidates = await read_candidates(session, group, playbook, star, voted, ctx.tz)
        actions = open_vote(vote, group, playbook, star, candidates, at=ctx.at, tz=ctx.tz)
        return await carry_out(self.executor, actions, session, ctx, vote, vote.status)

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "failed", "note": error}


class StarCloseKind(DueKind):
    name = "star_close"
    model = VoteRow
    ready_status = "open"
    claimed_status = "closing"

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        vote: VoteRow = row
        group = await session.get(Group, vote.chat_id)
        playbook = playbook_for(ctx.playbooks, group) if group is not None else None
        result = vote_tally(vote, await read_ballots(session, vote.id))
        actions = close_vote(vote, result, group, playbook, at=ctx.at)
        return await carry_out(self.executor, actions, session, ctx, vote, "closed")

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "close_failed", "note": error}


# --- opening and closing now (the admin API) ---------------------------------------------


class StarConflict(Exception):
    """The vote is not in a state that allows it; said to the admin as it is."""


def _state(vote: VoteRow) -> str:
    return {
        "open": "is already open",
        "opening": "is being opened right now",
        "closing": "is being closed right now",
        "closed": "is already closed",
        "no_candidates": "already ran and had no candidates",
    }.get(vote.status, f"is {vote.status}")


async def find_vote(session: AsyncSession, chat_id: str, month: str) -> VoteRow | None:
    found: VoteRow | None = (
        await session.execute(
            select(VoteRow)
            .where(VoteRow.chat_id == chat_id, VoteRow.month == month)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    return found


async def take(
    session: AsyncSession, chat_id: str, month: str, *, from_: Sequence[str], to: str
) -> VoteRow:
    """Move the vote to `to` only if it is in one of `from_`: one UPDATE, so the engine
    and an admin (or two admins) cannot both open or close it."""
    taken = await session.execute(
        update(VoteRow)
        .where(VoteRow.chat_id == chat_id, VoteRow.month == month, VoteRow.status.in_(from_))
        .values(status=to)
        .returning(VoteRow.id)
    )
    if taken.scalar_one_or_none() is None:
        vote = await find_vote(session, chat_id, month)
        if vote is None:
            raise StarConflict(f"there is no 贡献之星 vote for {month} in {chat_id} yet")
        raise StarConflict(f"the 贡献之星 vote for {month} {_state(vote)}")
    vote = await find_vote(session, chat_id, month)
    assert vote is not None
    return vote


async def open_now(
    session: AsyncSession,
    group: Group,
    playbook: Playbook,
    month: date,
    *,
    at: datetime,
    tz: tzinfo,
) -> tuple[VoteRow, list[Action]]:
    star = enabled_star(playbook)
    if star is None:
        raise StarConflict(f"playbook {playbook.name} has no 贡献之星 vote (points.star)")
    label = month_label(month)
    table = cast(Table, VoteRow.__table__)
    await session.execute(
        insert_for(session)(table)
        .values(
            chat_id=group.chat_id,
            month=label,
            status="scheduled",
            due_at=at,
            candidates=[],
            winners=[],
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["chat_id", "month"])
    )
    vote = await take(session, group.chat_id, label, from_=OPENABLE, to="opening")
    candidates = await read_candidates(session, group, playbook, star, month, tz)
    return vote, open_vote(vote, group, playbook, star, candidates, at=at, tz=tz)


async def close_now(
    session: AsyncSession, group: Group, playbook: Playbook, month: date, *, at: datetime
) -> tuple[VoteRow, list[Action]]:
    vote = await take(session, group.chat_id, month_label(month), from_=CLOSABLE, to="closing")
    result = vote_tally(vote, await read_ballots(session, vote.id))
    return vote, close_vote(vote, result, group, playbook, at=at)


def register(executor: Executor) -> None:
    executor.register(RecordBallot, apply_ballot)
