"""POST /wecom/archive: a batch of decrypted 会话内容存档 records (SPEC §6)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ValidationError

from bot.api.deps import AdminDep, RuntimeDep, read_limited_body
from bot.sources.archive import ArchiveRecord, normalize_archive
from bot.sources.normalized import store_many

router = APIRouter(tags=["callbacks"], dependencies=[AdminDep])

MAX_ARCHIVE_BYTES = 16 * 1024 * 1024


class ArchiveResult(BaseModel):
    accepted: int
    duplicate: int
    ignored: int  # stored, but no handler cares (unknown msgtype, recall, …)


@router.post("/wecom/archive", response_model=ArchiveResult)
async def archive(request: Request, runtime: RuntimeDep) -> ArchiveResult:
    body = await read_limited_body(request, MAX_ARCHIVE_BYTES)
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise HTTPException(status_code=400, detail="body is not JSON") from None
    if not isinstance(data, list):
        raise HTTPException(status_code=400, detail="body must be a JSON array of records")
    records: list[tuple[ArchiveRecord, dict[str, Any]]] = []
    problems: list[str] = []
    for index, raw in enumerate(data):
        if not isinstance(raw, dict):
            problems.append(f"[{index}]: not an object")
            continue
        try:
            records.append((ArchiveRecord.model_validate(raw), raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ()))
            problems.append(f"[{index}].{field}: {first.get('msg')}")
    if problems:
        # All or nothing: the caller still has the batch, so refuse it whole and say why.
        raise HTTPException(status_code=400, detail={"invalid_records": problems[:50]})
    result = ArchiveResult(accepted=0, duplicate=0, ignored=0)
    now = runtime.clock()
    incoming = [normalize_archive(record, raw) for record, raw in records]
    results = await store_many(runtime.appender, incoming, now=now)
    for item, stored in zip(incoming, results, strict=True):
        if not stored:
            result.duplicate += 1
        elif item.event is None:
            result.ignored += 1
            result.accepted += 1
        else:
            result.accepted += 1
    runtime.inbox.wake()
    return result
