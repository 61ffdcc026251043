"""The /_emulator/ control API: read the sent log, inject faults, shape groups, age tokens,
add 会话内容存档 records.

No authentication: the emulator is only ever bound to loopback (server.py and
__main__ refuse anything else) or mounted inside the sandbox process.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from bot.sandbox.emulator.aibot_ws import AibotHub, NotConnected
from bot.sandbox.emulator.state import EmulatorState, Fault, JSONDict


class FaultIn(BaseModel):
    api: str = Field(description='e.g. "webhook/send", "gettoken", or "*" for any API')
    errcode: int = 0
    http_status: int = Field(200, ge=100, le=599)
    delay: float = Field(0.0, ge=0.0)
    times: int = Field(1, ge=1)


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    userid: str = Field(min_length=1)
    name: str | None = None
    type: int | None = Field(None, description="1 member, 2 external; default from userid")
    invitor: str | None = None
    join_scene: int = Field(1, description="1 invited, 2 invite link, 3 QR code")
    join_time: int | None = None
    group_nickname: str = ""
    unionid: str | None = None


class GroupIn(BaseModel):
    name: str
    owner: str = "owner"
    members: list[MemberIn] | None = None


class MembersIn(BaseModel):
    members: list[MemberIn]


class ArchiveIn(BaseModel):
    records: list[dict[str, Any]] = Field(
        description="decrypted records (SPEC §6); a record without msgid gets one"
    )


class MentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sender: str = Field(min_length=1, description="who writes (userid)")
    text: str = Field(min_length=1, description="what they ask, without the @")
    chat_id: str | None = Field(None, description="the group; none: 单聊 with the bot")
    msgid: str | None = None


class PingsIn(BaseModel):
    ack: bool = Field(description="false: stop acknowledging the bot's pings")


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: int = Field(
        1, ge=1, le=3, description="1 sent; 2 not a friend; 3 already got another mass send"
    )
    send_time: int | None = Field(None, description="unix seconds; default now (status 1)")


class ResponseCodeIn(BaseModel):
    target: str = Field("", description="the chat or member the reply reaches (for the log)")


def _members(members: list[MemberIn]) -> list[JSONDict]:
    return [m.model_dump(exclude_none=True) for m in members]


def control_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(tags=["emulator control"])

    def group_or_404(chat_id: str) -> JSONDict:
        group = state.get_group(chat_id)
        if group is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown group {chat_id}")
        return group

    @router.get("/sent")
    async def get_sent(since: int = 0) -> list[dict[str, Any]]:
        return [record.to_dict() for record in state.sent_since(since)]

    @router.delete("/sent")
    async def delete_sent() -> dict[str, int]:
        return {"cleared": state.clear_sent()}

    @router.get("/faults")
    async def get_faults() -> list[dict[str, Any]]:
        return [asdict(fault) for fault in list(state.faults)]

    @router.post("/faults", status_code=status.HTTP_201_CREATED)
    async def post_fault(fault: FaultIn) -> dict[str, Any]:
        state.add_fault(Fault(**fault.model_dump()))
        return fault.model_dump()

    @router.delete("/faults")
    async def delete_faults() -> dict[str, int]:
        return {"cleared": state.clear_faults()}

    @router.put("/groups/{chat_id}")
    async def put_group(chat_id: str, group: GroupIn) -> JSONDict:
        members = _members(group.members) if group.members is not None else None
        return state.upsert_group(chat_id, name=group.name, owner=group.owner, members=members)

    @router.get("/groups/{chat_id}")
    async def get_group(chat_id: str) -> JSONDict:
        return group_or_404(chat_id)

    @router.post("/groups/{chat_id}/members")
    async def post_members(chat_id: str, body: MembersIn) -> JSONDict:
        group_or_404(chat_id)
        state.add_members(chat_id, _members(body.members))
        return group_or_404(chat_id)

    @router.delete("/groups/{chat_id}/members/{userid}")
    async def delete_member(chat_id: str, userid: str) -> JSONDict:
        group_or_404(chat_id)
        try:
            state.remove_member(chat_id, userid)
        except KeyError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{userid} is not in {chat_id}") from exc
        return group_or_404(chat_id)

    @router.get("/archive")
    async def get_archive(since: int = 0) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in state.archive_after(since, len(state.archive))]

    @router.post("/archive", status_code=status.HTTP_201_CREATED)
    async def post_archive(body: ArchiveIn) -> list[dict[str, Any]]:
        """Archive messages as if members had sent them; pullers see them next pull."""
        added = state.append_archive(body.records)
        return [{"seq": entry.seq, "msgid": entry.msgid} for entry in added]

    @router.post("/tokens/expire")
    async def expire_tokens() -> dict[str, int]:
        return {"expired": state.expire_tokens()}

    @router.post("/tokens/revoke")
    async def revoke_tokens() -> dict[str, int]:
        return {"revoked": state.revoke_tokens()}

    @router.get("/mass_sends")
    async def get_mass_sends() -> list[JSONDict]:
        return [m.to_dict() for m in list(state.mass_sends.values())]

    @router.post("/mass_sends/{msgid}/confirm")
    async def confirm_mass_send(msgid: str, body: ConfirmIn) -> JSONDict:
        """The sender confirms the mass send in the client (or WeCom reports it failed)."""
        try:
            return state.confirm_mass_send(
                msgid, status=body.status, send_time=body.send_time
            ).to_dict()
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown mass send {msgid}") from None

    @router.post("/reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return {"reset": True}

    def hub_or_404() -> AibotHub:
        hub: AibotHub | None = state.aibot_hub
        if hub is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no long-connection endpoint runs")
        return hub

    @router.get("/aibot")
    async def get_aibot() -> dict[str, Any]:
        hub = hub_or_404()
        return {"ws_url": hub.url, "connected": hub.connected, "subscribes": hub.subscribes}

    @router.post("/aibot/mentions", status_code=status.HTTP_201_CREATED)
    def post_mention(body: MentionIn) -> dict[str, str]:
        """An @-mention (or a 单聊 message) pushed to the connected bot."""
        hub = hub_or_404()
        try:
            req_id, msgid = hub.push_mention(
                sender=body.sender, text=body.text, chat_id=body.chat_id, msgid=body.msgid
            )
        except NotConnected as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return {"req_id": req_id, "msgid": msgid}

    @router.post("/aibot/drop")
    def post_drop() -> dict[str, int]:
        """Close the bot's connection from the server side (it should reconnect)."""
        return {"dropped": hub_or_404().drop()}

    @router.put("/aibot/pings")
    async def put_pings(body: PingsIn) -> dict[str, bool]:
        hub_or_404().ack_pings = body.ack
        return {"ack": body.ack}

    @router.get("/aibot/frames")
    async def get_frames() -> list[JSONDict]:
        return hub_or_404().frames()

    @router.post("/aibot/response_codes", status_code=status.HTTP_201_CREATED)
    async def post_response_code(body: ResponseCodeIn) -> dict[str, str]:
        """A response_url for an HTTP 智能机器人 callback (one call, one hour)."""
        code = state.issue_response_code(body.target)
        return {"response_code": code, "path": f"/cgi-bin/aibot/response?response_code={code}"}

    @router.get("/calls")
    async def get_calls() -> dict[str, int]:
        return dict(state.calls)

    return router
