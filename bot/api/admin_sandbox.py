"""Admin: what the built-in emulator "sent" (sandbox mode only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from bot.api.deps import AdminDep
from bot.timefmt import local_iso

router = APIRouter(prefix="/admin", tags=["admin: sandbox"], dependencies=[AdminDep])


@router.get("/sandbox/sent")
async def sandbox_sent(request: Request, since: int = 0) -> list[dict[str, Any]]:
    state = getattr(request.app.state, "emulator", None)
    if state is None:
        raise HTTPException(status_code=404, detail="not in sandbox mode: WECOM_CORP_ID is set")
    tz = request.app.state.settings.tz
    # `at` stays the emulator's epoch seconds; `sent_at` is for people (BOT_TIMEZONE).
    return [
        {**record.to_dict(), "sent_at": local_iso(datetime.fromtimestamp(record.at, UTC), tz)}
        for record in state.sent_since(since)
    ]
