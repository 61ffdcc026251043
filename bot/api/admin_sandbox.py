"""Admin: what the built-in emulator "sent" (sandbox mode only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from bot.api.deps import AdminDep

router = APIRouter(prefix="/admin", tags=["admin: sandbox"], dependencies=[AdminDep])


@router.get("/sandbox/sent")
async def sandbox_sent(request: Request, since: int = 0) -> list[dict[str, Any]]:
    state = getattr(request.app.state, "emulator", None)
    if state is None:
        raise HTTPException(status_code=404, detail="not in sandbox mode: WECOM_CORP_ID is set")
    return [record.to_dict() for record in state.sent_since(since)]
