"""Demand posts in the database: submit (merging duplicates), list, approve, reject.

Every write is in the caller's transaction. A submission first takes advisory locks on
what could make it a duplicate (its source, its folded text, its member and kind), so
two replicas handling the same post in two groups at once merge instead of both
creating one (SQLite has one writer already).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.features.demands.posts import Candidate, dedup_key, duplicate_of
from storage.db import json_elements, lock_keys
from storage.models import DemandPost, DemandPublication

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
STATUSES = (PENDING, APPROVED, REJECTED)
AUTO = "auto"  # decided_by of a post no one had to approve
DEMAND_LOCK_SPACE = 71024  # advisory locks of submissions (other features use 71001-71018)
MERGED_KEYS_KEPT = 50  # the newest merged sources, so a retried submission merges once

Outcome = Literal["created", "merged", "replayed"]


@dataclass(frozen=True, slots=True)
class NewDemand:
    """A post to keep: its text already tidied and within the playbook's limit."""

    kind: str
    text: str
    source_key: str
    at: datetime
    member_id: str | None = None
    name: str = ""
    contact: str | None = None
    chat_id: str | None = None  # the group it was posted in
    scope: tuple[str, ...] = ()  # chat ids or group tags; empty: every group
    approval: bool = False  # wait for an operator before it can be published
    dedup_days: int = 7


@dataclass(frozen=True, slots=True)
class Submitted:
    post: DemandPost
    outcome: Outcome  # created; merged into an earlier post; replayed (nothing changed)


class DemandNotFound(Exception):
    def __init__(self, demand_id: int) -> None:
        super().__init__(f"no demand post {demand_id}")


class DemandConflict(Exception):
    """The post's state does not allow the change (approving a rejected one …)."""


async def submit(session: AsyncSession, new: NewDemand) -> Submitted:
    """Keep a post, or merge it into the first recent post it duplicates."""
    key = dedup_key(new.text)
    locks = [f"source:{new.source_key}", f"text:{key}"]
    if new.member_id is not None:
        locks.append(f"member:{new.member_id}:{new.kind}")
    await lock_keys(session, DEMAND_LOCK_SPACE, locks)
    replayed = await session.scalar(
        select(DemandPost).where(DemandPost.source_key == new.source_key)
    )
    if replayed is not None:
        return Submitted(replayed, "replayed")
    if new.dedup_days > 0:
        first = await _duplicate(session, new, key)
        if first is not None:
            return Submitted(first, _merge(first, new))
    post = DemandPost(
        kind=new.kind,
        text=new.text,
        member_id=new.member_id,
        name=new.name,
        contact=new.contact,
        chat_id=new.chat_id,
        scope=list(new.scope),
        status=PENDING if new.approval else APPROVED,
        decided_by=None if new.approval else AUTO,
        decided_at=None if new.approval else new.at,
        dedup_key=key,
        merged=0,
        merged_keys=[],
        last_seen_at=new.at,
        submitted_at=new.at,
        source_key=new.source_key,
    )
    session.add(post)
    await session.flush()
    return Submitted(post, "created")


async def _duplicate(session: AsyncSession, new: NewDemand, key: str) -> DemandPost | None:
    since = new.at - timedelta(days=new.dedup_days)
    same = DemandPost.dedup_key == key
    if new.member_id is not None:
        same = or_(same, and_(DemandPost.member_id == new.member_id, DemandPost.kind == new.kind))
    rows = list(
        (
            await session.scalars(
                select(DemandPost).where(same, DemandPost.submitted_at >= since).limit(200)
            )
        ).all()
    )
    found = duplicate_of(
        kind=new.kind,
        text=new.text,
        member_id=new.member_id,
        candidates=(
            Candidate(row.id, row.kind, row.text, row.member_id, row.dedup_key, row.submitted_at)
            for row in rows
        ),
    )
    return next((row for row in rows if row.id == found), None)


def _merge(post: DemandPost, new: NewDemand) -> Outcome:
    """Count the duplicate on the first post; its groups join the post's scope (an empty
    scope is every group already). A source merged before changes nothing."""
    if new.source_key in (post.merged_keys or []):
        return "replayed"
    post.merged = (post.merged or 0) + 1
    post.merged_keys = [*(post.merged_keys or []), new.source_key][-MERGED_KEYS_KEPT:]
    post.last_seen_at = max(post.last_seen_at, new.at)
    scope = list(post.scope or [])
    if scope and not new.scope:
        post.scope = []
    elif scope:
        post.scope = scope + [entry for entry in new.scope if entry not in scope]
    if post.contact is None and new.contact is not None:
        post.contact = new.contact
    return "merged"


# --- reads -------------------------------------------------------------------------


def in_scope(session: AsyncSession, chat_id: str, tags: Iterable[str]) -> ColumnElement[bool]:
    """Posts that apply to the group (as content items' `applies_to`): an empty scope, or
    one naming the group's chat id or one of its tags."""
    values = json_elements(session, DemandPost.scope)
    names = [chat_id, *tags]
    return or_(
        func.json_array_length(DemandPost.scope) == 0,
        exists(select(1).select_from(values).where(values.c.value.in_(names))),
    )


@dataclass(frozen=True, slots=True)
class DemandFilter:
    chat_id: str | None = None
    tags: tuple[str, ...] = ()  # the group's, for its scope
    status: str | None = None
    kind: str | None = None
    since: datetime | None = None


async def list_posts(
    session: AsyncSession, where: DemandFilter, *, limit: int, offset: int
) -> list[DemandPost]:
    """Posts matching the filter, newest first."""
    query = select(DemandPost)
    if where.chat_id is not None:
        query = query.where(in_scope(session, where.chat_id, where.tags))
    if where.status is not None:
        query = query.where(DemandPost.status == where.status)
    if where.kind is not None:
        query = query.where(DemandPost.kind == where.kind)
    if where.since is not None:
        query = query.where(DemandPost.submitted_at >= where.since)
    query = query.order_by(DemandPost.submitted_at.desc(), DemandPost.id.desc())
    return list((await session.scalars(query.limit(limit).offset(offset))).all())


@dataclass
class Publications:
    by_post: dict[int, list[DemandPublication]] = field(default_factory=dict)

    def of(self, demand_id: int) -> list[DemandPublication]:
        return self.by_post.get(demand_id, [])


async def publications_of(session: AsyncSession, demand_ids: Sequence[int]) -> Publications:
    found = Publications()
    if not demand_ids:
        return found
    rows = await session.scalars(
        select(DemandPublication)
        .where(DemandPublication.demand_id.in_(list(demand_ids)))
        .order_by(DemandPublication.report_date, DemandPublication.chat_id)
    )
    for row in rows:
        found.by_post.setdefault(row.demand_id, []).append(row)
    return found


# --- decisions -----------------------------------------------------------------------


async def _post(session: AsyncSession, demand_id: int) -> DemandPost:
    post = await session.get(DemandPost, demand_id, with_for_update=True)
    if post is None:
        raise DemandNotFound(demand_id)
    return post


async def approve(session: AsyncSession, demand_id: int, *, by: str, at: datetime) -> DemandPost:
    """pending → approved; approving an approved post changes nothing."""
    post = await _post(session, demand_id)
    if post.status == REJECTED:
        raise DemandConflict(
            f"demand post {demand_id} was rejected by {post.decided_by}; it cannot be approved"
        )
    if post.status == PENDING:
        post.status, post.decided_by, post.decided_at = APPROVED, by, at
        await session.flush()
    return post


async def reject(
    session: AsyncSession, demand_id: int, *, by: str, reason: str, at: datetime
) -> DemandPost:
    """pending or approved (not yet published) → rejected; rejecting a rejected post
    changes nothing."""
    post = await _post(session, demand_id)
    if post.status == REJECTED:
        return post
    published = await session.scalar(
        select(func.count())
        .select_from(DemandPublication)
        .where(DemandPublication.demand_id == demand_id)
    )
    if published:
        raise DemandConflict(
            f"demand post {demand_id} was already published in {published} group(s); "
            "a published post cannot be rejected"
        )
    post.status, post.decided_by, post.decided_at = REJECTED, by, at
    post.reason = reason or None
    await session.flush()
    return post
