"""Typed dependencies for routes: `runtime: RuntimeDep`, `session: SessionDep`, admin auth."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from bot.runtime import Runtime
from storage.models import Group

MAX_CALLBACK_BYTES = 1024 * 1024


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
    # on every request (a third of a callback's cost) for a dictionary lookup.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    # Routes that write call `await session.commit()` themselves, so the write is
    # durable before the response leaves (not whenever dependency teardown runs).
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False)


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token: str | None = request.app.state.admin_token
    if not token:
        raise HTTPException(
            status_code=503,
            detail="admin API disabled: set ADMIN_TOKEN to enable it",
        )
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Depends(require_admin)


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def known_group(session: AsyncSession, chat_id: str) -> Group:
    """The group's row, or 404 naming it."""
    group = await session.get(Group, chat_id)
    if group is None:
        raise HTTPException(status_code=404, detail=f"no group {chat_id}")
    return group
