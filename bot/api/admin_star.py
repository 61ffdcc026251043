"""Admin: the monthly 贡献之星 vote of a group (handlers/features/star/vote.py): its
candidates, votes and result, and opening or closing it now instead of waiting."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.runtime import Runtime
from bot.timefmt import LocalTime
from handlers.core.months import month_label, parse_month, previous_month
from handlers.core.playbooks import playbook_for
from handlers.features.star.vote import (
    StarConflict,
    close_now,
    find_vote,
    open_now,
    read_ballots,
    vote_tally,
)
from storage.models import StarVote as VoteRow

router = APIRouter(prefix="/admin", tags=["admin: 贡献之星"], dependencies=[AdminDep])

MonthQuery = Annotated[
    str | None,
    Query(description="the month voted on, YYYY-MM (BOT_TIMEZONE); default last month"),
]


class CandidateOut(BaseModel):
    number: int
    member_id: str
    name: str
    points: int  # earned in the month
    votes: int  # counted so far (open) or in the end (closed)


class StarOut(BaseModel):
    chat_id: str
    month: str
    # scheduled | opening | open | closing | closed | no_candidates | skipped | failed
    # (the opening failed) | close_failed
    status: str
    due_at: LocalTime  # when it opens (scheduled) or closes (open)
    opened_at: LocalTime | None
    closes_at: LocalTime | None  # replies written before this count
    closed_at: LocalTime | None
    candidates: list[CandidateOut]
    counted: int  # members whose vote counted
    duplicates: int  # a member's later votes, ignored
    self_votes: int  # candidates voting for themselves, ignored
    invalid: int  # numbers no candidate has, ignored
    outside_window: int
    winners: list[CandidateOut]  # several when tied at the top
    note: str | None


def _month(month: str | None, runtime: Runtime, *, over: bool) -> date:
    this_month = runtime.clock().astimezone(runtime.settings.tz).date().replace(day=1)
    if month is None:
        return previous_month(this_month)
    first = parse_month(month)
    if first is None:
        raise HTTPException(status_code=422, detail="month must look like 2026-11")
    if over and first >= this_month:
        raise HTTPException(
            status_code=422, detail=f"{month} is not over yet: only a past month can be voted on"
        )
    return first


async def _view(session: SessionDep, vote: VoteRow) -> StarOut:
    counts: dict[str, int] = {}
    figures = {"counted": 0, "duplicates": 0, "self_votes": 0, "invalid": 0, "outside_window": 0}
    winners: list[int] = []
    if vote.result is not None:  # closed: the recorded result
        counts = dict(vote.result["votes"])
        figures = {name: int(vote.result[name]) for name in figures}
        winners = [int(n) for n in vote.result["winners"]]
    elif vote.opened_at is not None and vote.closes_at is not None:  # the count so far
        live = vote_tally(vote, await read_ballots(session, vote.id))
        counts = {str(n): v for n, v in live.votes.items()}
        live_json = live.as_json()
        figures = {name: int(live_json[name]) for name in figures}
    candidates = [
        CandidateOut(
            number=int(c["number"]),
            member_id=str(c["member_id"]),
            name=str(c["name"]),
            points=int(c["points"]),
            votes=int(counts.get(str(c["number"]), 0)),
        )
        for c in vote.candidates
    ]
    return StarOut(
        chat_id=vote.chat_id,
        month=vote.month,
        status=vote.status,
        due_at=vote.due_at,
        opened_at=vote.opened_at,
        closes_at=vote.closes_at,
        closed_at=vote.closed_at,
        candidates=candidates,
        winners=[c for c in candidates if c.number in winners],
        note=vote.note,
        **figures,
    )


async def _reloaded(session: SessionDep, chat_id: str, month: str) -> StarOut:
    vote = await find_vote(session, chat_id, month)
    assert vote is not None
    return await _view(session, vote)


@router.get("/groups/{chat_id}/star", response_model=StarOut)
async def get_star(
    chat_id: str, runtime: RuntimeDep, session: SessionDep, month: MonthQuery = None
) -> StarOut:
    """The month's vote: candidates, votes per candidate, what was ignored, winners."""
    await known_group(session, chat_id)
    label = month_label(_month(month, runtime, over=False))
    vote = await find_vote(session, chat_id, label)
    if vote is None:
        raise HTTPException(status_code=404, detail=f"no 贡献之星 vote for {label} in {chat_id}")
    return await _view(session, vote)


@router.post("/groups/{chat_id}/star/open", response_model=StarOut)
async def post_open(
    chat_id: str, runtime: RuntimeDep, session: SessionDep, month: MonthQuery = None
) -> StarOut:
    """Open the month's vote now (it would open at the playbook's time); 409 when it
    is already open, closed, or the playbook has no vote."""
    group = await known_group(session, chat_id)
    first = _month(month, runtime, over=True)
    playbook = playbook_for(runtime.playbook_set, group)
    try:
        vote, actions = await open_now(
            session, group, playbook, first, at=runtime.clock(), tz=runtime.settings.tz
        )
    except StarConflict as exc:
        await session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await runtime.apply_actions(session, actions, source_id=f"star_vote:{vote.id}")
    return await _reloaded(session, chat_id, vote.month)


@router.post("/groups/{chat_id}/star/close", response_model=StarOut)
async def post_close(
    chat_id: str, runtime: RuntimeDep, session: SessionDep, month: MonthQuery = None
) -> StarOut:
    """Close the month's vote now: tally, record and announce; 409 unless it is open."""
    group = await known_group(session, chat_id)
    first = _month(month, runtime, over=False)
    playbook = playbook_for(runtime.playbook_set, group)
    try:
        vote, actions = await close_now(session, group, playbook, first, at=runtime.clock())
    except StarConflict as exc:
        await session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await runtime.apply_actions(session, actions, source_id=f"star_vote:{vote.id}")
    return await _reloaded(session, chat_id, vote.month)
