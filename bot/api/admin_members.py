"""Admin: members' roles in a group (SPEC §5.8 `PUT /admin/members/{member_id}/roles`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field, field_validator

from bot.api.deps import AdminDep, RuntimeDep, SessionDep
from handlers.features.roles import DERIVED_ROLES, assigned_roles, roles_of, set_roles
from storage.models import Group

router = APIRouter(prefix="/admin", tags=["admin: members"], dependencies=[AdminDep])

MemberId = Annotated[str, Path(min_length=1, max_length=128)]
RoleName = Annotated[str, Field(min_length=1, max_length=32)]


class RolesIn(BaseModel):
    chat_id: str = Field(min_length=1, max_length=128)
    roles: list[RoleName] = Field(
        max_length=20,
        description="the member's playbook roles in this group (讲师, KOL, 核心 …), replacing "
        "the ones set before; owner, admin and staff come from WeCom and cannot be set",
    )

    @field_validator("roles")
    @classmethod
    def _not_derived(cls, roles: list[str]) -> list[str]:
        cleaned = [role.strip() for role in roles]
        if any(not role for role in cleaned):
            raise ValueError("a role name cannot be blank")
        derived = sorted(set(cleaned) & set(DERIVED_ROLES))
        if derived:
            raise ValueError(
                f"{', '.join(derived)} come from WeCom (the group's owner and admins, the "
                "corp's own members) and cannot be set here"
            )
        return cleaned


class RolesOut(BaseModel):
    chat_id: str
    member_id: str
    roles: list[str]  # set through this API
    effective: list[str]  # what rules read: these and the roles WeCom gives


async def _out(session: SessionDep, chat_id: str, member_id: str) -> RolesOut:
    return RolesOut(
        chat_id=chat_id,
        member_id=member_id,
        roles=await assigned_roles(session, chat_id, member_id),
        effective=sorted(await roles_of(session, chat_id, member_id)),
    )


@router.put("/members/{member_id}/roles")
async def put_roles(
    member_id: MemberId, body: RolesIn, runtime: RuntimeDep, session: SessionDep
) -> RolesOut:
    if await session.get(Group, body.chat_id) is None:
        raise HTTPException(status_code=404, detail=f"no group {body.chat_id}")
    await set_roles(
        session, chat_id=body.chat_id, member_id=member_id, roles=body.roles, now=runtime.clock()
    )
    await session.commit()
    return await _out(session, body.chat_id, member_id)


@router.get("/members/{member_id}/roles")
async def get_roles(
    member_id: MemberId,
    session: SessionDep,
    chat_id: Annotated[str, Query(min_length=1, max_length=128)],
) -> RolesOut:
    if await session.get(Group, chat_id) is None:
        raise HTTPException(status_code=404, detail=f"no group {chat_id}")
    return await _out(session, chat_id, member_id)
