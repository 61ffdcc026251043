"""Admin: the content library (SPEC §5.8 `/admin/content`): list with filters, create,
replace, delete. Every change bumps the library version in its transaction."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel

from bot.api.deps import AdminDep, RuntimeDep, SessionDep
from bot.timefmt import LocalTime
from handlers.features.content.library import (
    ContentFilter,
    ContentIn,
    DuplicateContent,
    Source,
    create_item,
    delete_item,
    list_items,
    update_item,
)
from storage.models import ContentItem

router = APIRouter(prefix="/admin", tags=["admin: content"], dependencies=[AdminDep])

ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ContentOut(BaseModel):
    id: int
    title: str
    body: str | None
    url: str | None
    summary: str
    keywords: list[str]
    tags: list[str]
    source: str  # own | external
    scope: list[str]  # chat ids or group tags; empty: every group
    enabled: bool
    valid_from: date | None
    valid_until: date | None
    created_at: LocalTime
    updated_at: LocalTime


class ContentPage(BaseModel):
    total: int  # how many items match the filters
    items: list[ContentOut]  # this page, newest first


def _out(item: ContentItem) -> ContentOut:
    return ContentOut.model_validate(item, from_attributes=True)


def _conflict(exc: DuplicateContent) -> HTTPException:
    return HTTPException(status_code=409, detail=str(exc))


@router.get("/content", response_model=ContentPage)
async def get_content(
    session: SessionDep,
    q: Annotated[
        str | None, Query(max_length=200, description="in the title, summary or a keyword")
    ] = None,
    tag: Annotated[str | None, Query(max_length=40)] = None,
    source: Source | None = None,
    enabled: bool | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=10_000_000),
) -> ContentPage:
    """Content items matching every filter given, newest first."""
    filter = ContentFilter(q=q or None, tag=tag or None, source=source, enabled=enabled)
    total, items = await list_items(session, filter, limit=limit, offset=offset)
    return ContentPage(total=total, items=[_out(item) for item in items])


@router.post("/content", response_model=ContentOut, status_code=201)
async def post_content(body: ContentIn, runtime: RuntimeDep, session: SessionDep) -> ContentOut:
    """A new item; 409 when another has the same title and source."""
    try:
        item = await create_item(session, body, now=runtime.clock())
    except DuplicateContent as exc:
        await session.rollback()
        raise _conflict(exc) from None
    await session.commit()
    return _out(item)


@router.put("/content/{item_id}", response_model=ContentOut)
async def put_content(
    item_id: ItemId, body: ContentIn, runtime: RuntimeDep, session: SessionDep
) -> ContentOut:
    """Replace an item's fields (send them all); 404 when there is no such item."""
    try:
        item = await update_item(session, item_id, body, now=runtime.clock())
    except DuplicateContent as exc:
        await session.rollback()
        raise _conflict(exc) from None
    if item is None:
        await session.rollback()
        raise HTTPException(status_code=404, detail=f"no content item {item_id}")
    await session.commit()
    return _out(item)


@router.delete("/content/{item_id}", status_code=204)
async def delete_content(item_id: ItemId, session: SessionDep) -> Response:
    """Delete an item for good (set `enabled: false` to keep it but stop offering it)."""
    if not await delete_item(session, item_id):
        await session.rollback()
        raise HTTPException(status_code=404, detail=f"no content item {item_id}")
    await session.commit()
    return Response(status_code=204)
