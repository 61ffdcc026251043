"""Group details from externalcontact/groupchat/get: names, owner, invitor, join scene.

Cached per chat by member_version (CurMemVer in the callback), so a burst of
events for one group costs one call. Handlers never see HTTP: the inbox
processor fills the event with what this returns before dispatching it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.wecom.client import WeComClient
from handlers.core.events import Event, MemberInfo, MemberJoined

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class GroupSnapshot:
    chat_id: str
    name: str
    owner: str | None
    member_version: str | None
    notice: str | None
    members: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> GroupSnapshot:
        members = {
            str(m.get("userid")): m for m in data.get("member_list") or [] if m.get("userid")
        }
        return cls(
            chat_id=str(data.get("chat_id", "")),
            name=str(data.get("name") or ""),
            owner=data.get("owner") or None,
            member_version=data.get("member_version") or None,
            notice=data.get("notice") or None,
            members=members,
        )

    def member_info(self, member_id: str) -> MemberInfo:
        raw = self.members.get(member_id)
        if raw is None:
            return MemberInfo(id=member_id)
        invitor = (raw.get("invitor") or {}).get("userid") or None
        invitor_raw = self.members.get(invitor) if invitor else None
        join_time = raw.get("join_time")
        return MemberInfo(
            id=member_id,
            # `name` (need_name=1) is who they are; group_nickname may be empty or a role
            # label like 客服小张, so it is only the fallback.
            name=raw.get("name") or raw.get("group_nickname") or None,
            member_type=raw.get("type"),
            invitor=invitor,
            invitor_name=(invitor_raw or {}).get("name") if invitor_raw else None,
            join_scene=raw.get("join_scene"),
            join_time=datetime.fromtimestamp(int(join_time), UTC) if join_time else None,
        )


class GroupDirectory:
    def __init__(self, client: WeComClient, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self.client = client
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, GroupSnapshot]] = {}

    async def snapshot(self, chat_id: str, member_version: str | None) -> GroupSnapshot:
        cached = self._cache.get(chat_id)
        if cached is not None:
            fetched_at, snap = cached
            fresh = time.monotonic() - fetched_at < self.cache_seconds
            if member_version and snap.member_version == member_version:
                return snap
            if not member_version and fresh:
                return snap
        snap = GroupSnapshot.from_api(await self.client.groupchat_get(chat_id, need_name=True))
        self._cache[chat_id] = (time.monotonic(), snap)
        return snap


def enrich(event: Event, snapshot: GroupSnapshot) -> Event:
    """The event with names, invitor and join details filled in from the snapshot."""
    if isinstance(event, MemberJoined):
        members = []
        for member in event.members:
            found = snapshot.member_info(member.id)
            members.append(member.model_copy(update=found.model_dump(exclude_none=True)))
        return event.model_copy(update={"members": members})
    return event
