"""Admin: demand posts (SPEC §5.8 `/admin/demands`): list, submit, approve, reject.

Posts collected in groups (a rule with `action: collect`) and posts operators submit
here are the same rows; the 早报 publishes the approved ones once per group
(handlers/features/demands/feed.py).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.api.fields import NonBlank
from bot.timefmt import LocalTime
from handlers.features.demands.store import (
    DemandConflict,
    DemandFilter,
    DemandNotFound,
    approve,
    list_posts,
    publications_of,
    reject,
    submit,
)
from handlers.features.demands.submission import (
    InvalidDemand,
    OperatorPost,
    judge,
    member_name,
    playbooks_reached,
    unknown_chat_ids,
)
from handlers.features.points.ledger import local_day_bounds
from storage.models import DemandPost

router = APIRouter(prefix="/admin", tags=["admin: demands"], dependencies=[AdminDep])

Status = Literal["pending", "approved", "rejected"]
PostId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class PublicationOut(BaseModel):
    chat_id: str
    report_date: date  # the 早报's local date
    published_at: LocalTime


class DemandOut(BaseModel):
    id: int
    kind: str
    text: str
    name: str  # shown in the 早报; empty: no name
    member_id: str | None  # None: an operator's post
    contact: str | None
    chat_id: str | None  # the group it was posted in (None: submitted here)
    scope: list[str]  # chat ids or group tags; empty: every group
    status: str  # pending | approved | rejected
    decided_by: str | None  # "auto" when no approval was needed
    decided_at: LocalTime | None
    reason: str | None
    merged_count: int  # duplicates merged into this post
    last_seen_at: LocalTime
    submitted_at: LocalTime
    source_key: str
    publications: list[PublicationOut]


class SubmittedOut(DemandOut):
    merged: bool  # a duplicate: this is the earlier post it was merged into


class DemandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=10, description="one of the playbooks' kinds")
    text: str = Field(max_length=10_000, description="the post; at most demands.max_chars")
    chat_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=200, description="groups it is for"
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=20, description="group tags it is for"
    )
    contact: str | None = Field(default=None, max_length=100, description="how to get in touch")
    member_id: str | None = Field(default=None, min_length=1, max_length=128)
    name: str | None = Field(
        default=None, max_length=30, description="the name the 早报 shows (default: the member's)"
    )
    source_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="your idempotency key: the same key again changes nothing",
    )


class ApproveIn(BaseModel):
    by: NonBlank = Field(default="admin", max_length=64, description="who approves")


class RejectIn(BaseModel):
    reason: str = Field(default="", max_length=500, description="why (kept with the post)")
    by: NonBlank = Field(default="admin", max_length=64, description="who rejects")


async def _out(session: SessionDep, posts: list[DemandPost]) -> list[DemandOut]:
    published = await publications_of(session, [post.id for post in posts])
    return [
        DemandOut(
            id=post.id,
            kind=post.kind,
            text=post.text,
            name=post.name,
            member_id=post.member_id,
            contact=post.contact,
            chat_id=post.chat_id,
            scope=[str(entry) for entry in post.scope or []],
            status=post.status,
            decided_by=post.decided_by,
            decided_at=post.decided_at,
            reason=post.reason,
            merged_count=post.merged,
            last_seen_at=post.last_seen_at,
            submitted_at=post.submitted_at,
            source_key=post.source_key,
            publications=[
                PublicationOut(
                    chat_id=row.chat_id,
                    report_date=row.report_date,
                    published_at=row.published_at,
                )
                for row in published.of(post.id)
            ],
        )
        for post in posts
    ]


async def _one(session: SessionDep, post: DemandPost) -> DemandOut:
    return (await _out(session, [post]))[0]


@router.get("/demands", response_model=list[DemandOut])
async def get_demands(
    runtime: RuntimeDep,
    session: SessionDep,
    chat_id: Annotated[
        str | None, Query(max_length=128, description="posts that the group's 早报 may carry")
    ] = None,
    status: Status | None = None,
    kind: Annotated[str | None, Query(max_length=10)] = None,
    since: Annotated[
        date | None, Query(description="submitted on this day or later (BOT_TIMEZONE)")
    ] = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=10_000_000),
) -> list[DemandOut]:
    """Demand posts, newest first, each with where it was published."""
    tags: tuple[str, ...] = ()
    if chat_id is not None:
        group = await known_group(session, chat_id)
        tags = tuple(str(tag) for tag in (group.tags or ()))
    where = DemandFilter(
        chat_id=chat_id,
        tags=tags,
        status=status,
        kind=kind,
        since=local_day_bounds(since, runtime.settings.tz)[0] if since else None,
    )
    return await _out(session, await list_posts(session, where, limit=limit, offset=offset))


@router.get("/demands/{demand_id}", response_model=DemandOut)
async def get_demand(demand_id: PostId, session: SessionDep) -> DemandOut:
    post = await session.get(DemandPost, demand_id)
    if post is None:
        raise HTTPException(status_code=404, detail=f"no demand post {demand_id}")
    return await _one(session, post)


@router.post(
    "/demands",
    response_model=SubmittedOut,
    status_code=201,
    responses={200: {"description": "a duplicate: the earlier post it was merged into"}},
)
async def post_demand(
    body: DemandIn, runtime: RuntimeDep, session: SessionDep, response: Response
) -> SubmittedOut:
    """An operator's post for the groups named (chat_ids, tags; none: every group). 201
    with the new post; 200 with the earlier post when it duplicates one (`merged`)."""
    unknown = await unknown_chat_ids(session, body.chat_ids)
    if unknown:
        raise HTTPException(status_code=422, detail=f"unknown chat id(s): {', '.join(unknown)}")
    scope = [*dict.fromkeys([*body.chat_ids, *body.tags])]
    reached = await playbooks_reached(session, runtime.playbook_set, scope)
    name = body.name.strip() if body.name and body.name.strip() else None
    if name is None and body.member_id is not None:
        name = (await member_name(session, body.member_id))[:64] or None
    post = OperatorPost(
        kind=body.kind.strip(),
        text=body.text,
        chat_ids=tuple(dict.fromkeys(body.chat_ids)),
        tags=tuple(dict.fromkeys(body.tags)),
        contact=(body.contact or "").strip() or None,
        member_id=body.member_id,
        name=name,
        source_key=f"api:{body.source_key or uuid.uuid4().hex}",
    )
    try:
        new = judge(post, reached, at=runtime.clock())
    except InvalidDemand as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    submitted = await submit(session, new)
    await session.commit()
    merged = submitted.post.source_key != new.source_key
    if submitted.outcome != "created":
        response.status_code = 200
    return SubmittedOut(**(await _one(session, submitted.post)).model_dump(), merged=merged)


@router.post("/demands/{demand_id}/approve", response_model=DemandOut)
async def approve_demand(
    demand_id: PostId, runtime: RuntimeDep, session: SessionDep, body: ApproveIn | None = None
) -> DemandOut:
    """pending → approved: the next 早报 of each group in its scope may carry it. 409 for
    a rejected post."""
    by = body.by if body is not None else "admin"
    try:
        post = await approve(session, demand_id, by=by, at=runtime.clock())
    except DemandNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except DemandConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await session.commit()
    return await _one(session, post)


@router.post("/demands/{demand_id}/reject", response_model=DemandOut)
async def reject_demand(
    demand_id: PostId, runtime: RuntimeDep, session: SessionDep, body: RejectIn | None = None
) -> DemandOut:
    """pending or approved → rejected: no 早报 carries it. 409 once a 早报 published it."""
    reason = (body.reason if body is not None else "").strip()
    by = body.by if body is not None else "admin"
    try:
        post = await reject(session, demand_id, by=by, reason=reason, at=runtime.clock())
    except DemandNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except DemandConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await session.commit()
    return await _one(session, post)
