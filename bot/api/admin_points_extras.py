"""Admin: points, second part (issue 9): good content granted by an admin, the
ledger as CSV, and the monthly leaderboard across every group."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select

from bot.api.admin_points import EntryOut, Standing, month_bounds
from bot.api.csv_export import csv_response
from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.api.fields import NonBlank, query_day
from bot.timefmt import local_iso
from handlers.core.playbooks import playbook_for
from handlers.features.points.good_content import GrantRefused, UnknownMessage, grant
from handlers.features.points.ledger import balance, leaderboard, local_day_bounds
from handlers.features.points.season import season_start
from storage.models import Group, Membership, PointsEntry

router = APIRouter(prefix="/admin", tags=["admin: points"], dependencies=[AdminDep])

# A download beyond this is refused with a clear error, not built in memory.
MAX_EXPORT_LINES = 100_000
EXPORT_COLUMNS = (
    "id", "time", "chat_id", "member_id", "name", "delta", "reason", "source_key", "actor", "note",
)  # fmt: skip


class GoodContentIn(BaseModel):
    chat_id: NonBlank = Field(min_length=1, max_length=128)
    msg_id: NonBlank = Field(min_length=1, max_length=128, description="the message's msgid")
    by: NonBlank = Field(default="admin", min_length=1, max_length=64, description="who grants")
    note: str | None = Field(default=None, max_length=500, description="why, kept in the ledger")


class GoodContentOut(BaseModel):
    granted: bool  # False: the message had its points already; nothing changed
    member_id: str  # the message's author
    entry: EntryOut
    balance: int  # the author's balance to spend (this season)


@router.post(
    "/points/good-content",
    response_model=GoodContentOut,
    status_code=201,
    responses={200: {"description": "already granted for this message; nothing changed"}},
)
async def post_good_content(
    body: GoodContentIn, runtime: RuntimeDep, session: SessionDep, response: Response
) -> GoodContentOut:
    """+`points.good_content` to the author of a good resource or question, once per
    message (a reaction word in the group counts as the same grant)."""
    group = await known_group(session, body.chat_id)
    points = playbook_for(runtime.playbook_set, group).points
    now = runtime.clock()
    try:
        done = await grant(
            session,
            points,
            chat_id=body.chat_id,
            msg_id=body.msg_id,
            by=body.by,
            note=body.note,
            now=now,
        )
    except UnknownMessage as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except GrantRefused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await session.commit()
    if not done.new:
        response.status_code = 200
    member = done.entry.member_id
    return GoodContentOut(
        granted=done.new,
        member_id=member,
        entry=EntryOut.model_validate(done.entry, from_attributes=True),
        balance=await balance(
            session, body.chat_id, member, since=season_start(points, now, runtime.settings.tz)
        ),
    )


@router.get("/points/export", response_class=Response)
async def export_points(
    runtime: RuntimeDep,
    session: SessionDep,
    chat_id: Annotated[
        str | None, Query(max_length=128, description="one group; default all")
    ] = None,
    from_: Annotated[
        str | None, Query(alias="from", description="first local day, YYYY-MM-DD")
    ] = None,
    to: Annotated[str | None, Query(description="last local day (included), YYYY-MM-DD")] = None,
) -> Response:
    """The ledger's lines as CSV (UTF-8 with BOM, times in BOT_TIMEZONE), oldest first."""
    tz = runtime.settings.tz
    first, last = query_day(from_, "from"), query_day(to, "to")
    if first is not None and last is not None and first > last:
        raise HTTPException(status_code=422, detail="from must not be after to")
    if chat_id is not None:
        await known_group(session, chat_id)
    query = select(PointsEntry, Membership.name).outerjoin(
        Membership,
        and_(
            Membership.chat_id == PointsEntry.chat_id,
            Membership.member_id == PointsEntry.member_id,
        ),
    )
    if chat_id is not None:
        query = query.where(PointsEntry.chat_id == chat_id)
    if first is not None:
        query = query.where(PointsEntry.created_at >= local_day_bounds(first, tz)[0])
    if last is not None:
        query = query.where(PointsEntry.created_at < local_day_bounds(last, tz)[1])
    rows = (
        await session.execute(
            query.order_by(PointsEntry.created_at, PointsEntry.id).limit(MAX_EXPORT_LINES + 1)
        )
    ).all()
    if len(rows) > MAX_EXPORT_LINES:
        raise HTTPException(
            status_code=422,
            detail=f"more than {MAX_EXPORT_LINES} lines: narrow from/to or give a chat_id",
        )
    span = f"{first or 'start'}_{last or 'now'}"
    return csv_response(
        f"points-{chat_id or 'all'}-{span}.csv",
        EXPORT_COLUMNS,
        (
            [
                entry.id,
                local_iso(entry.created_at, tz),
                entry.chat_id,
                entry.member_id,
                name,
                entry.delta,
                entry.reason,
                entry.source_key,
                entry.actor,
                entry.note,
            ]
            for entry, name in rows
        ),
    )


class GroupPoints(BaseModel):
    chat_id: str
    name: str | None
    points: int


class CrossStanding(Standing):
    groups: list[GroupPoints]  # where the points were earned, most first


@router.get("/leaderboard", response_model=list[CrossStanding])
async def get_cross_leaderboard(
    runtime: RuntimeDep,
    session: SessionDep,
    month: Annotated[
        str | None, Query(description="YYYY-MM (BOT_TIMEZONE); default this month")
    ] = None,
    limit: int = Query(default=50, ge=1, le=500),
    format: Annotated[Literal["json", "csv"], Query(description="csv: a download")] = "json",
) -> list[CrossStanding] | Response:
    """Members by points earned in the month summed across every group (the same
    member in several groups is one line); equal points share a rank."""
    tz = runtime.settings.tz
    first, following = month_bounds(month, runtime)
    start, end = local_day_bounds(first, tz)[0], local_day_bounds(following, tz)[0]
    standings = await leaderboard(session, None, start=start, end=end, limit=limit)
    members = [s.member_id for s in standings]
    per_group = (
        await session.execute(
            select(PointsEntry.member_id, PointsEntry.chat_id, func.sum(PointsEntry.delta))
            .where(
                PointsEntry.member_id.in_(members),
                PointsEntry.created_at >= start,
                PointsEntry.created_at < end,
            )
            .group_by(PointsEntry.member_id, PointsEntry.chat_id)
        )
    ).all()
    chats = sorted({str(chat) for _, chat, _ in per_group})
    # The operator's own label first: this is read by operators, who named the groups.
    group_names: dict[str, str | None] = {
        str(chat): label or name or None
        for chat, label, name in (
            await session.execute(
                select(Group.chat_id, Group.label, Group.name).where(Group.chat_id.in_(chats))
            )
        ).all()
    }
    names: dict[str, str | None] = {}
    for member, name in (
        await session.execute(
            select(Membership.member_id, Membership.name)
            .where(Membership.member_id.in_(members), Membership.name.is_not(None))
            .order_by(Membership.member_id, Membership.chat_id)
        )
    ).all():
        names.setdefault(str(member), name)
    groups: dict[str, list[GroupPoints]] = {}
    for member, chat, points in per_group:
        groups.setdefault(str(member), []).append(
            GroupPoints(chat_id=str(chat), name=group_names.get(str(chat)), points=int(points))
        )
    rows = [
        CrossStanding(
            member_id=s.member_id,
            name=names.get(s.member_id),
            points=s.points,
            rank=s.rank,
            groups=sorted(groups.get(s.member_id, []), key=lambda g: (-g.points, g.chat_id)),
        )
        for s in standings
    ]
    if format == "csv":
        return csv_response(
            f"leaderboard-all-{first:%Y-%m}.csv",
            ["rank", "member_id", "name", "points", "groups"],
            (
                [
                    r.rank,
                    r.member_id,
                    r.name,
                    r.points,
                    "; ".join(f"{g.name or g.chat_id}: {g.points}" for g in r.groups),
                ]
                for r in rows
            ),
        )
    return rows
