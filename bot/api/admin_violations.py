"""Admin: group rules' violations, the review queue, overturn/confirm, per-rule stats
(SPEC §5.8)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from bot.api.deps import AdminDep, RuntimeDep, SessionDep
from bot.runtime import Runtime
from bot.timefmt import LocalTime
from handlers.core.playbooks import playbook_for
from handlers.features.points.ledger import local_day_bounds
from handlers.features.rules.review import ReviewConflict, decide_confirm, decide_overturn
from handlers.features.rules.violations import (
    RuleStats,
    ViolationFilter,
    list_violations,
    review_queue,
    rule_stats,
)
from storage.members import get_membership
from storage.models import Group, Violation

router = APIRouter(prefix="/admin", tags=["admin: rules"], dependencies=[AdminDep])

Status = Literal["taken", "dry_run", "held", "overturned"]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ViolationOut(BaseModel):
    id: int
    chat_id: str
    member_id: str
    rule: str
    family: str
    step: str | None  # remind | warn | report | remove; None when no step was taken
    status: str  # taken | dry_run | held | overturned
    reason: str  # why this step (or why none)
    matcher: str  # what matched: keyword, link, contact, flood …
    evidence: str
    msg_id: str | None
    created_at: LocalTime  # when the member sent the message
    appealed_at: LocalTime | None
    appeal_text: str | None
    reviewed_at: LocalTime | None
    overturned_at: LocalTime | None
    overturn_reason: str | None


class ReviewItem(ViolationOut):
    review: Literal["appeal", "report", "dry_run"]


class OverturnIn(BaseModel):
    reason: str = Field(default="", max_length=500, description="why (kept with the record)")


def _out(violation: Violation) -> ViolationOut:
    return ViolationOut.model_validate(violation, from_attributes=True)


def _day_start(day: date, runtime: Runtime) -> datetime:
    return local_day_bounds(day, runtime.settings.tz)[0]


@router.get("/violations", response_model=list[ViolationOut])
async def get_violations(
    runtime: RuntimeDep,
    session: SessionDep,
    chat_id: str | None = None,
    member_id: str | None = None,
    rule: str | None = None,
    status: Status | None = None,
    date_: Annotated[
        date | None, Query(alias="date", description="one day (BOT_TIMEZONE), YYYY-MM-DD")
    ] = None,
    since: Annotated[date | None, Query(description="from this day on (BOT_TIMEZONE)")] = None,
    until: Annotated[date | None, Query(description="up to and including this day")] = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> list[ViolationOut]:
    """Violations, newest first."""
    if date_ is not None:
        since = until = date_
    if since is not None and until is not None and until < since:
        raise HTTPException(status_code=422, detail="until is before since")
    where = ViolationFilter(
        chat_id=chat_id,
        member_id=member_id,
        rule=rule,
        status=status,
        since=_day_start(since, runtime) if since else None,
        until=_day_start(until + timedelta(days=1), runtime) if until else None,
    )
    rows = await list_violations(session, where, limit=limit, offset=offset)
    return [_out(row) for row in rows]


@router.get("/violations/{violation_id}", response_model=ViolationOut)
async def get_violation(violation_id: RowId, session: SessionDep) -> ViolationOut:
    return _out(await _violation(session, violation_id))


async def _violation(session: SessionDep, violation_id: int) -> Violation:
    violation = await session.get(Violation, violation_id)
    if violation is None:
        raise HTTPException(status_code=404, detail=f"no violation {violation_id}")
    return violation


@router.post("/violations/{violation_id}/overturn", response_model=ViolationOut)
async def overturn(
    violation_id: RowId, runtime: RuntimeDep, session: SessionDep, body: OverturnIn | None = None
) -> ViolationOut:
    """Undo: the status becomes `overturned`, the member is back on the ladder step
    before it, and told where the bot had told them."""
    violation = await _violation(session, violation_id)
    group = await session.get(Group, violation.chat_id)
    playbook = playbook_for(runtime.playbook_set, group) if group is not None else None
    membership = await get_membership(session, violation.chat_id, violation.member_id)
    reason = (body.reason if body is not None else "").strip()
    try:
        actions = decide_overturn(violation, group, playbook, membership, reason=reason)
    except ReviewConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await runtime.apply_actions(session, actions, source_id=f"overturn:{violation_id}")
    return _out(await _violation(session, violation_id))


@router.post("/violations/{violation_id}/confirm", response_model=ViolationOut)
async def confirm(violation_id: RowId, runtime: RuntimeDep, session: SessionDep) -> ViolationOut:
    """The admin looked and agrees: it leaves the review queue as it is."""
    violation = await _violation(session, violation_id)
    try:
        actions = decide_confirm(violation)
    except ReviewConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await runtime.apply_actions(session, actions, source_id=f"confirm:{violation_id}")
    return _out(await _violation(session, violation_id))


@router.get("/review", response_model=list[ReviewItem])
async def get_review(
    session: SessionDep,
    chat_id: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[ReviewItem]:
    """What waits for an admin: appeals first, then reports, then dry-run hits."""
    queue = await review_queue(session, chat_id=chat_id, limit=limit)
    return [
        ReviewItem.model_validate(
            {**_out(violation).model_dump(), "review": reason}, from_attributes=False
        )
        for reason, violation in queue
    ]


@router.get("/rules/stats", response_model=list[RuleStats])
async def get_rule_stats(
    runtime: RuntimeDep,
    session: SessionDep,
    chat_id: str | None = None,
    since: Annotated[date | None, Query(description="from this day on (BOT_TIMEZONE)")] = None,
) -> list[RuleStats]:
    """Hits and overturns per rule, to tune rules that misjudge."""
    return await rule_stats(
        session, chat_id=chat_id, since=_day_start(since, runtime) if since else None
    )
