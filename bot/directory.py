"""Group details from externalcontact/groupchat/get: names, owner, invitor, join scene.

Cached per chat by member_version (CurMemVer in the callback), so a burst of
events for one group costs one call. Handlers never see HTTP: the inbox
processor fills the event with what this returns before dispatching it.

The cache is an LRU bounded by `max_groups` (GROUP_CACHE_SIZE): a corp with
tens of thousands of groups must not grow the process without limit. Entries
also age out after `cache_seconds` when no member_version vouches for them.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.wecom.client import JSONDict
from handlers.core.events import Event, MemberInfo, MemberJoined

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0
MAX_GROUPS = 5000


class GroupSource(Protocol):
    """What the directory needs from the WeCom client (tests pass a fake)."""

    async def groupchat_get(self, chat_id: str, *, need_name: bool = True) -> JSONDict: ...


@dataclass(frozen=True)
class GroupSnapshot:
    chat_id: str
    name: str
    owner: str | None
    member_version: str | None
    notice: str | None
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    admins: tuple[str, ...] = ()

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
            admins=tuple(
                str(admin.get("userid"))
                for admin in data.get("admin_list") or []
                if isinstance(admin, dict) and admin.get("userid")
            ),
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
    def __init__(
        self,
        client: GroupSource,
        *,
        cache_seconds: float = CACHE_SECONDS,
        max_groups: int = MAX_GROUPS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_groups < 1:
            raise ValueError("max_groups must be at least 1")
        self.client = client
        self.cache_seconds = cache_seconds
        self.max_groups = max_groups
        self._monotonic = monotonic
        # Least recently used first; a hit moves the entry to the end.
        self._cache: OrderedDict[str, tuple[float, GroupSnapshot]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self._cache

    async def snapshot(self, chat_id: str, member_version: str | None) -> GroupSnapshot:
        cached = self._cache.get(chat_id)
        if cached is not None:
            fetched_at, snap = cached
            fresh = self._monotonic() - fetched_at < self.cache_seconds
            if (member_version and snap.member_version == member_version) or (
                not member_version and fresh
            ):
                self._cache.move_to_end(chat_id)
                return snap
        snap = GroupSnapshot.from_api(await self.client.groupchat_get(chat_id, need_name=True))
        self._remember(chat_id, snap)
        return snap

    def _remember(self, chat_id: str, snap: GroupSnapshot) -> None:
        self._cache[chat_id] = (self._monotonic(), snap)
        self._cache.move_to_end(chat_id)
        while len(self._cache) > self.max_groups:
            self._cache.popitem(last=False)


def enrich(event: Event, snapshot: GroupSnapshot) -> Event:
    """The event with names, invitor and join details filled in from the snapshot."""
    if isinstance(event, MemberJoined):
        members = []
        for member in event.members:
            found = snapshot.member_info(member.id)
            members.append(member.model_copy(update=found.model_dump(exclude_none=True)))
        return event.model_copy(update={"members": members})
    return event
