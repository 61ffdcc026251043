"""Admin: points (SPEC §5.8): a member's balance and ledger, audited manual
adjustments, the monthly leaderboard."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from bot.api.csv_export import csv_response
from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.api.fields import NonBlank
from bot.runtime import Runtime
from bot.timefmt import LocalTime
from handlers.core.months import next_month, parse_month
from handlers.core.playbooks import playbook_for
from handlers.features.points.checkin import current_streak
from handlers.features.points.ledger import (
    MANUAL,
    AddPoints,
    balance,
    entries,
    leaderboard,
    local_day_bounds,
)
from handlers.features.points.redemption import (
    POINTS_LOCK_SPACE,
    RedemptionRefused,
    UnknownReward,
    member_lock,
    redeem,
)
from handlers.features.points.season import season_start
from storage.db import lock_keys
from storage.models import Group, Membership

router = APIRouter(prefix="/admin", tags=["admin: points"], dependencies=[AdminDep])

MemberId = Annotated[str, Path(min_length=1, max_length=128)]


class EntryOut(BaseModel):
    id: int
    delta: int
    reason: str  # message | manual | …
    source_key: str
    created_at: LocalTime
    actor: str | None
    note: str | None


class PointsOut(BaseModel):
    chat_id: str
    member_id: str
    balance: int  # what can be spent: the sum of the season's lines (points.reset)
    lifetime: int  # the sum of every ledger line
    season_start: LocalTime | None  # None: the playbook never resets points
    entries: list[EntryOut]  # newest first, every season
    # Consecutive local days with a check-in (打卡) ending today, or yesterday while
    # today's may still come; 0 without a running streak.
    checkin_streak: int = 0


class AdjustIn(BaseModel):
    chat_id: str = Field(min_length=1, max_length=128)
    member_id: str = Field(min_length=1, max_length=128)
    delta: int = Field(ge=-100_000, le=100_000, description="points to add (negative: take)")
    reason: NonBlank = Field(min_length=1, max_length=500, description="why, kept in the ledger")
    by: NonBlank = Field(default="admin", min_length=1, max_length=64, description="who adjusts")

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("delta must not be 0")
        return delta


class RedeemIn(BaseModel):
    chat_id: str = Field(min_length=1, max_length=128)
    member_id: str = Field(min_length=1, max_length=128)
    reward: str = Field(min_length=1, max_length=40, description="a reward of the group's playbook")


class RedeemOut(BaseModel):
    id: int
    chat_id: str
    member_id: str
    reward: str
    cost: int
    created_at: LocalTime
    balance: int  # after the redemption
    stock_left: int | None  # None: unlimited


class Standing(BaseModel):
    member_id: str
    name: str | None
    points: int
    rank: int


async def _points(
    session: SessionDep, runtime: Runtime, group: Group, member_id: str, limit: int
) -> PointsOut:
    chat_id = group.chat_id
    points = playbook_for(runtime.playbook_set, group).points
    since = season_start(points, runtime.clock(), runtime.settings.tz)
    lifetime = await balance(session, chat_id, member_id)
    spendable = (
        lifetime if since is None else await balance(session, chat_id, member_id, since=since)
    )
    return PointsOut(
        chat_id=chat_id,
        member_id=member_id,
        balance=spendable,
        lifetime=lifetime,
        season_start=since,
        entries=[
            EntryOut.model_validate(entry, from_attributes=True)
            for entry in await entries(session, chat_id, member_id, limit=limit)
        ],
        checkin_streak=await current_streak(
            session,
            chat_id,
            member_id,
            today=runtime.clock().astimezone(runtime.settings.tz).date(),
        ),
    )


@router.get("/members/{member_id}/points", response_model=PointsOut)
async def get_points(
    member_id: MemberId,
    runtime: RuntimeDep,
    session: SessionDep,
    chat_id: Annotated[str, Query(min_length=1, max_length=128)],
    limit: int = Query(default=100, ge=1, le=1000),
) -> PointsOut:
    group = await known_group(session, chat_id)
    return await _points(session, runtime, group, member_id, limit)


@router.post("/points", response_model=PointsOut, status_code=201)
async def adjust(body: AdjustIn, runtime: RuntimeDep, session: SessionDep) -> PointsOut:
    """An audited manual adjustment: a ledger line with who and why."""
    group = await known_group(session, body.chat_id)
    now = runtime.clock()
    action = AddPoints(
        chat_id=body.chat_id,
        member_id=body.member_id,
        delta=body.delta,
        reason=MANUAL,
        source_key=f"admin:{secrets.token_hex(8)}",
        at=now,
        actor=body.by,
        note=body.reason,
    )
    # A taking adjustment and a redemption at once must not overspend together.
    await lock_keys(session, POINTS_LOCK_SPACE, [member_lock(body.chat_id, body.member_id)])
    await runtime.apply_actions(session, [action], source_id="admin:points")
    return await _points(session, runtime, group, body.member_id, 100)


@router.post("/redemptions", response_model=RedeemOut, status_code=201)
async def post_redemption(body: RedeemIn, runtime: RuntimeDep, session: SessionDep) -> RedeemOut:
    """Spend points on a reward; 409 with the reason when the balance or the stock is
    short (nothing is changed then)."""
    group = await known_group(session, body.chat_id)
    playbook = playbook_for(runtime.playbook_set, group)
    try:
        done = await redeem(
            session,
            playbook,
            chat_id=body.chat_id,
            member_id=body.member_id,
            reward_name=body.reward,
            now=runtime.clock(),
            tz=runtime.settings.tz,
        )
    except UnknownReward as exc:
        await session.rollback()
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except RedemptionRefused as exc:
        await session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await session.commit()
    row = done.redemption
    return RedeemOut(
        id=row.id,
        chat_id=row.chat_id,
        member_id=row.member_id,
        reward=row.reward,
        cost=row.cost,
        created_at=row.created_at,
        balance=done.balance,
        stock_left=done.stock_left,
    )


def month_bounds(month: str | None, runtime: Runtime) -> tuple[date, date]:
    if month is None:
        first = runtime.clock().astimezone(runtime.settings.tz).date().replace(day=1)
    elif (parsed := parse_month(month)) is None:
        raise HTTPException(status_code=422, detail="month must look like 2026-11")
    else:
        first = parsed
    return first, next_month(first)


@router.get("/groups/{chat_id}/leaderboard", response_model=list[Standing])
async def get_leaderboard(
    chat_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    month: Annotated[
        str | None, Query(description="YYYY-MM (BOT_TIMEZONE); default this month")
    ] = None,
    limit: int = Query(default=50, ge=1, le=500),
    format: Annotated[Literal["json", "csv"], Query(description="csv: a download")] = "json",
) -> list[Standing] | Response:
    """Members by points earned in the month; equal points share a rank."""
    await known_group(session, chat_id)
    first, following = month_bounds(month, runtime)
    start, _ = local_day_bounds(first, runtime.settings.tz)
    end, _ = local_day_bounds(following, runtime.settings.tz)
    standings = await leaderboard(session, chat_id, start=start, end=end, limit=limit)
    names = dict(
        (
            await session.execute(
                select(Membership.member_id, Membership.name).where(
                    Membership.chat_id == chat_id,
                    Membership.member_id.in_([s.member_id for s in standings]),
                )
            )
        ).all()
    )
    rows = [
        Standing(member_id=s.member_id, name=names.get(s.member_id), points=s.points, rank=s.rank)
        for s in standings
    ]
    if format == "csv":
        return csv_response(
            f"leaderboard-{chat_id}-{first:%Y-%m}.csv",
            ["rank", "member_id", "name", "points"],
            ([r.rank, r.member_id, r.name, r.points] for r in rows),
        )
    return rows
