"""Admin: growth attribution (issue 9): lead marks (SPEC §5.8 `PUT
/admin/members/{member_id}/lead`), the lead list and the inviter report, as JSON or
as CSV for Excel.

CSV: UTF-8 with a byte-order mark (Excel otherwise reads Chinese as mojibake), a
Chinese header row (the people who open it are operators), times in BOT_TIMEZONE.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.api.fields import query_day
from bot.timefmt import LocalTime, local_iso
from handlers.features.growth.inviters import InviterLine, inviters_report, weeks_between
from handlers.features.growth.leads import (
    STAGES,
    NotAMember,
    UnknownStage,
    canonical_stage,
    history,
    lead_of,
    list_leads,
    mark_lead,
)
from storage.models import Lead, LeadChange, Membership

router = APIRouter(prefix="/admin", tags=["admin: growth"], dependencies=[AdminDep])

MemberId = Annotated[str, Path(min_length=1, max_length=128)]
Format = Literal["json", "csv"]
DEFAULT_DAYS = 28  # the inviter report's default range: the last four weeks
MAX_DAYS = 366
# A cell Excel would run as a formula: member names come from outside (external
# contacts name themselves), so such cells are written as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class LeadIn(BaseModel):
    chat_id: str = Field(
        min_length=1, max_length=128, description="a group the member is or was in"
    )
    stage: str = Field(
        min_length=1, max_length=16, description="lead, MQL, SQL or customer (any case)"
    )
    owner: str | None = Field(
        default=None, max_length=128, description="who follows it up; omitted keeps, '' clears"
    )
    note: str | None = Field(default=None, max_length=2000, description="omitted keeps, '' clears")
    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="who marks it (else the X-Admin-Actor header, else 'admin')",
    )

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, stage: str) -> str:
        return canonical_stage(stage)  # UnknownStage is a ValueError: a 422 naming the stages


class ChangeOut(BaseModel):
    chat_id: str  # the group the change was made from
    from_stage: str | None  # None: the first mark
    to_stage: str
    owner: str | None
    note: str | None
    by: str
    at: LocalTime


class LeadOut(BaseModel):
    member_id: str
    name: str | None  # in the group of origin
    origin_chat_id: str  # where it was first marked; later marks do not move it
    inviter: str | None  # who brought the member into the group of origin
    stage: str
    owner: str | None
    note: str | None
    created_at: LocalTime
    updated_at: LocalTime
    history: list[ChangeOut] | None = None  # oldest first; on a single lead only


class InviterOut(BaseModel):
    inviter: str
    name: str | None
    staff: bool  # the corp's own member, not an external contact
    invites: int  # invitees whose (latest) join is in the range
    invites_per_week: dict[str, int]  # ISO week → invites, every week of the range
    retained_7d: int  # still in the group 7 days after joining …
    eligible_7d: int  # … of those who joined at least 7 days ago
    retained_30d: int
    eligible_30d: int
    became_active: int  # sent at least one message in the group (not taken back)
    leads: dict[str, int]  # invitees marked as leads in that group, by current stage


class InvitersOut(BaseModel):
    chat_id: str | None  # None: every group
    from_: date = Field(serialization_alias="from")
    to: date
    as_of: LocalTime  # "now" for the retention figures
    inviters: list[InviterOut]  # most invites first


async def _names(session: SessionDep, leads: Sequence[Lead]) -> dict[tuple[str, str], str | None]:
    if not leads:
        return {}
    rows = await session.execute(
        select(Membership.chat_id, Membership.member_id, Membership.name).where(
            Membership.member_id.in_(sorted({lead.member_id for lead in leads}))
        )
    )
    return {(chat, member): name for chat, member, name in rows.all()}


def _lead_out(
    lead: Lead,
    names: dict[tuple[str, str], str | None],
    changes: Sequence[LeadChange] | None = None,
) -> LeadOut:
    return LeadOut(
        member_id=lead.member_id,
        name=names.get((lead.origin_chat_id, lead.member_id)),
        origin_chat_id=lead.origin_chat_id,
        inviter=lead.inviter,
        stage=lead.stage,
        owner=lead.owner,
        note=lead.note,
        created_at=lead.created_at,
        updated_at=lead.updated_at,
        history=None
        if changes is None
        else [
            ChangeOut(
                chat_id=change.chat_id,
                from_stage=change.from_stage,
                to_stage=change.to_stage,
                owner=change.owner,
                note=change.note,
                by=change.actor,
                at=change.at,
            )
            for change in changes
        ],
    )


async def _single(session: SessionDep, lead: Lead) -> LeadOut:
    return _lead_out(lead, await _names(session, [lead]), await history(session, lead.id))


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]], filename: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return Response(
        content="\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.put("/members/{member_id}/lead", response_model=LeadOut)
async def put_lead(
    member_id: MemberId,
    body: LeadIn,
    runtime: RuntimeDep,
    session: SessionDep,
    x_admin_actor: Annotated[str | None, Header(max_length=64)] = None,
) -> LeadOut:
    """Mark the member as a lead or move its stage. The first mark keeps its group of
    origin and the member's inviter there; every change is kept with who made it."""
    await known_group(session, body.chat_id)
    actor = (body.by or x_admin_actor or "").strip() or "admin"
    try:
        marked = await mark_lead(
            session,
            member_id=member_id,
            chat_id=body.chat_id,
            stage=body.stage,
            owner=body.owner,
            note=body.note,
            actor=actor,
            now=runtime.clock(),
        )
    except NotAMember as exc:
        await session.rollback()
        raise HTTPException(status_code=404, detail=str(exc)) from None
    await session.commit()
    return await _single(session, marked.lead)


@router.get("/members/{member_id}/lead", response_model=LeadOut)
async def get_lead(member_id: MemberId, session: SessionDep) -> LeadOut:
    lead = await lead_of(session, member_id)
    if lead is None:
        raise HTTPException(status_code=404, detail=f"member {member_id} is not marked as a lead")
    return await _single(session, lead)


LEAD_HEADER = (
    "成员ID",
    "成员名",
    "来源群",
    "邀请人",
    "阶段",
    "跟进人",
    "备注",
    "首次标记",
    "最近更新",
)


@router.get("/leads", response_model=list[LeadOut])
async def get_leads(
    runtime: RuntimeDep,
    session: SessionDep,
    chat_id: Annotated[
        str | None, Query(min_length=1, max_length=128, description="group of origin")
    ] = None,
    stage: Annotated[str | None, Query(max_length=16)] = None,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    format: Format = "json",
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> list[LeadOut] | Response:
    """Lead marks, most recently changed first; `format=csv` for Excel."""
    if chat_id is not None:
        await known_group(session, chat_id)
    try:
        wanted = canonical_stage(stage) if stage is not None else None
    except UnknownStage as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    leads = await list_leads(session, chat_id=chat_id, stage=wanted, owner=owner, limit=limit)
    names = await _names(session, leads)
    out = [_lead_out(lead, names) for lead in leads]
    if format == "json":
        return out
    tz = runtime.settings.tz
    return _csv(
        LEAD_HEADER,
        (
            (
                lead.member_id,
                lead.name or "",
                lead.origin_chat_id,
                lead.inviter or "",
                lead.stage,
                lead.owner or "",
                lead.note or "",
                local_iso(lead.created_at, tz),
                local_iso(lead.updated_at, tz),
            )
            for lead in out
        ),
        "leads.csv",
    )


def _day(value: str | None, name: str, default: date) -> date:
    day = query_day(value, name, default)
    assert day is not None
    return day


def _inviter_out(line: InviterLine) -> InviterOut:
    return InviterOut(
        inviter=line.inviter,
        name=line.name,
        staff=line.staff,
        invites=line.invites,
        invites_per_week=line.per_week,
        retained_7d=line.retained[7].retained,
        eligible_7d=line.retained[7].eligible,
        retained_30d=line.retained[30].retained,
        eligible_30d=line.retained[30].eligible,
        became_active=line.became_active,
        leads=line.leads,
    )


INVITER_HEADER = (
    "邀请人",
    "姓名",
    "员工",
    "邀请人数",
    "7天留存",
    "满7天人数",
    "30天留存",
    "满30天人数",
    "发过言",
    *(f"线索:{stage}" for stage in STAGES),
)


@router.get("/growth/inviters", response_model=InvitersOut, response_model_by_alias=True)
async def get_inviters(
    runtime: RuntimeDep,
    session: SessionDep,
    chat_id: Annotated[
        str | None, Query(min_length=1, max_length=128, description="omit: every group")
    ] = None,
    first: Annotated[
        str | None, Query(alias="from", description="YYYY-MM-DD, BOT_TIMEZONE; default 4 weeks ago")
    ] = None,
    last: Annotated[
        str | None, Query(alias="to", description="YYYY-MM-DD, included; default today")
    ] = None,
    format: Format = "json",
) -> InvitersOut | Response:
    """Per inviter: invites in the range (by the invitee's local join day), per ISO
    week, 7- and 30-day retention, invitees who became active, and leads by stage."""
    if chat_id is not None:
        await known_group(session, chat_id)
    now = runtime.clock()
    tz = runtime.settings.tz
    today = now.astimezone(tz).date()
    to_day = _day(last, "to", today)
    from_day = _day(first, "from", to_day - timedelta(days=DEFAULT_DAYS - 1))
    if from_day > to_day:
        raise HTTPException(status_code=422, detail="from must not be after to")
    if (to_day - from_day).days >= MAX_DAYS:
        raise HTTPException(status_code=422, detail=f"a range of at most {MAX_DAYS} days")
    lines = await inviters_report(
        session, chat_id=chat_id, first=from_day, last=to_day, now=now, tz=tz
    )
    if format == "json":
        return InvitersOut(
            chat_id=chat_id,
            from_=from_day,
            to=to_day,
            as_of=now,
            inviters=[_inviter_out(line) for line in lines],
        )
    weeks = weeks_between(from_day, to_day)
    return _csv(
        (*INVITER_HEADER, *weeks),
        (
            (
                line.inviter,
                line.name or "",
                "是" if line.staff else "否",
                line.invites,
                line.retained[7].retained,
                line.retained[7].eligible,
                line.retained[30].retained,
                line.retained[30].eligible,
                line.became_active,
                *(line.leads[stage] for stage in STAGES),
                *(line.per_week[week] for week in weeks),
            )
            for line in lines
        ),
        f"inviters-{from_day.isoformat()}-{to_day.isoformat()}.csv",
    )
