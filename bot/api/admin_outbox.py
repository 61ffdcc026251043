"""Admin: the outbox (failed sends, retry) and the inbox."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel
from sqlalchemy import select

from bot.api.deps import AdminDep, RuntimeDep, SessionDep
from bot.timefmt import LocalTime
from storage import inbox, outbox
from storage.models import OutboxItem

router = APIRouter(prefix="/admin", tags=["admin: outbox"], dependencies=[AdminDep])

Status = Literal["pending", "sending", "sent", "failed", "cancelled"]


class OutboxOut(BaseModel):
    id: int
    channel: str
    target: str
    chat_id: str | None
    origin: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: LocalTime
    last_error: str | None
    created_at: LocalTime
    sent_at: LocalTime | None


def _out(item: OutboxItem) -> OutboxOut:
    return OutboxOut.model_validate(item, from_attributes=True)


@router.get("/outbox", response_model=list[OutboxOut])
async def list_outbox(
    session: SessionDep,
    status: Status | None = None,
    chat_id: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[OutboxOut]:
    query = select(OutboxItem).order_by(OutboxItem.id.desc()).limit(limit)
    if status:
        query = query.where(OutboxItem.status == status)
    if chat_id:
        query = query.where(OutboxItem.chat_id == chat_id)
    return [_out(item) for item in (await session.execute(query)).scalars()]


RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("/outbox/{item_id}/retry", response_model=OutboxOut)
async def retry(item_id: RowId, runtime: RuntimeDep, session: SessionDep) -> OutboxOut:
    item = await session.get(OutboxItem, item_id)
    if item is None:
        raise HTTPException(status_code=404, detail=f"no outbox row {item_id}")
    if not await outbox.retry_failed(session, item_id, now=runtime.clock()):
        raise HTTPException(
            status_code=409, detail=f"outbox row {item_id} is {item.status}; only failed rows retry"
        )
    await session.commit()
    await session.refresh(item)
    runtime.dispatcher.wake()
    return _out(item)


@router.get("/inbox/stats")
async def inbox_stats(session: SessionDep) -> dict[str, int]:
    return await inbox.counts_by_status(session)
