"""An operator's demand post (`POST /admin/demands`), judged by the playbooks of the
groups it will reach: its kind must be one of theirs, its text within the strictest
`max_chars`; it waits for approval if any of them asks for approval, and merges
duplicates over the longest `dedup_days`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook, PlaybookSet
from handlers.features.content.library import applies_to
from handlers.features.demands.posts import tidy
from handlers.features.demands.store import NewDemand
from storage.models import Group, Membership


class InvalidDemand(ValueError):
    """What is wrong with the post, in words an operator can act on."""


@dataclass(frozen=True, slots=True)
class OperatorPost:
    kind: str
    text: str
    chat_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    contact: str | None = None
    member_id: str | None = None
    name: str | None = None
    source_key: str = ""


async def playbooks_reached(
    session: AsyncSession, playbooks: PlaybookSet, scope: Sequence[str]
) -> list[Playbook]:
    """The playbooks of the live groups the scope reaches (an empty scope: every group);
    the default playbook when it reaches none yet (a tag no group has so far)."""
    groups = await session.execute(
        select(Group.chat_id, Group.tags).where(Group.dismissed_at.is_(None))
    )
    found: dict[str, Playbook] = {}
    for chat_id, tags in groups:
        group_tags = [str(tag) for tag in (tags or ())]
        if applies_to(scope, chat_id, group_tags):
            playbook = playbooks.for_group(chat_id, group_tags)
            found.setdefault(playbook.name, playbook)
    return list(found.values()) or [playbooks.default]


async def unknown_chat_ids(session: AsyncSession, chat_ids: Sequence[str]) -> list[str]:
    if not chat_ids:
        return []
    known = set(
        (await session.scalars(select(Group.chat_id).where(Group.chat_id.in_(chat_ids)))).all()
    )
    return [chat_id for chat_id in chat_ids if chat_id not in known]


async def member_name(session: AsyncSession, member_id: str) -> str:
    """The member's latest nickname in any group, or "" (never the raw id)."""
    name = await session.scalar(
        select(Membership.name)
        .where(Membership.member_id == member_id, Membership.name.is_not(None))
        .order_by(Membership.joined_at.desc())
        .limit(1)
    )
    return str(name or "")


def judge(post: OperatorPost, reached: Sequence[Playbook], *, at: datetime) -> NewDemand:
    """The post to keep, or `InvalidDemand` saying why not."""
    kinds = [kind for playbook in reached for kind in playbook.demands.kinds]
    if post.kind not in kinds:
        known = "、".join(dict.fromkeys(kinds))
        raise InvalidDemand(f"unknown kind {post.kind!r}; the groups it reaches take: {known}")
    text = tidy(post.text)
    if not text:
        raise InvalidDemand("text must not be blank")
    most = min(playbook.demands.max_chars for playbook in reached)
    if len(text) > most:
        raise InvalidDemand(
            f"text is {len(text)} characters; at most {most} (demands.max_chars of the "
            "groups it reaches)"
        )
    return NewDemand(
        kind=post.kind,
        text=text,
        source_key=post.source_key,
        at=at,
        member_id=post.member_id,
        name=post.name or "",
        contact=post.contact,
        chat_id=None,
        scope=(*post.chat_ids, *post.tags),
        approval=any(playbook.demands.approval for playbook in reached),
        dedup_days=max(playbook.demands.dedup_days for playbook in reached),
    )
