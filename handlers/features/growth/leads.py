"""Lead marks (SPEC §5.8 `PUT /admin/members/{member_id}/lead`): an operator marks a
member as a sales lead and moves it along lead → MQL → SQL → customer.

One mark per member. The group of origin (where it was first marked) and the inviter
(who brought the member into that group) are kept from the first mark, so growth can
say which group and which inviter a customer came from even after later marks are made
from other groups. Every change is a `lead_changes` row with who made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import lock_keys
from storage.members import get_membership
from storage.models import Lead, LeadChange

STAGES = ("lead", "MQL", "SQL", "customer")
_CANONICAL = {stage.casefold(): stage for stage in STAGES}
# Advisory-lock space of one member's lead mark (points use 71001-71004): two first
# marks of a member at once must not both insert.
LEAD_LOCK_SPACE = 71018


class UnknownStage(ValueError):
    def __init__(self, given: str) -> None:
        super().__init__(f"unknown stage {given!r}: use one of {', '.join(STAGES)}")


class NotAMember(LookupError):
    def __init__(self, member_id: str, chat_id: str) -> None:
        super().__init__(f"member {member_id} has never been in group {chat_id}")


def canonical_stage(given: str) -> str:
    """`mql`, ` Customer ` → `MQL`, `customer`; anything else raises UnknownStage."""
    stage = _CANONICAL.get(given.strip().casefold())
    if stage is None:
        raise UnknownStage(given)
    return stage


@dataclass(frozen=True)
class Mark:
    stage: str
    owner: str | None
    note: str | None


def next_mark(
    current: Mark | None, *, stage: str, owner: str | None, note: str | None
) -> Mark | None:
    """The mark after a PUT, or None when the PUT changes nothing (no history line then).

    `owner`/`note` None keeps the current value (a stage move need not repeat them); an
    empty string clears it."""

    def merged(given: str | None, kept: str | None) -> str | None:
        if given is None:
            return kept
        return given.strip() or None

    wanted = Mark(
        stage=stage,
        owner=merged(owner, current.owner if current else None),
        note=merged(note, current.note if current else None),
    )
    return None if wanted == current else wanted


@dataclass(frozen=True)
class Marked:
    lead: Lead
    changed: bool


async def mark_lead(
    session: AsyncSession,
    *,
    member_id: str,
    chat_id: str,
    stage: str,
    owner: str | None,
    note: str | None,
    actor: str,
    now: datetime,
) -> Marked:
    """Create or move a member's lead mark; the caller commits. Raises NotAMember when
    the member has no membership (present or past) in `chat_id`."""
    membership = await get_membership(session, chat_id, member_id)
    if membership is None:
        raise NotAMember(member_id, chat_id)
    await lock_keys(session, LEAD_LOCK_SPACE, [member_id])
    lead = await lead_of(session, member_id)
    current = Mark(lead.stage, lead.owner, lead.note) if lead is not None else None
    wanted = next_mark(current, stage=stage, owner=owner, note=note)
    if wanted is None:
        assert lead is not None  # a first mark always changes something
        return Marked(lead, changed=False)
    if lead is None:
        lead = Lead(
            member_id=member_id,
            origin_chat_id=chat_id,
            inviter=membership.invitor,
            stage=wanted.stage,
            owner=wanted.owner,
            note=wanted.note,
            created_at=now,
            updated_at=now,
        )
        session.add(lead)
        await session.flush()
    else:
        lead.stage, lead.owner, lead.note, lead.updated_at = (
            wanted.stage,
            wanted.owner,
            wanted.note,
            now,
        )
    session.add(
        LeadChange(
            lead_id=lead.id,
            chat_id=chat_id,
            from_stage=current.stage if current else None,
            to_stage=wanted.stage,
            owner=wanted.owner,
            note=wanted.note,
            actor=actor,
            at=now,
        )
    )
    await session.flush()
    return Marked(lead, changed=True)


async def lead_of(session: AsyncSession, member_id: str) -> Lead | None:
    return (
        await session.execute(select(Lead).where(Lead.member_id == member_id))
    ).scalar_one_or_none()


async def history(session: AsyncSession, lead_id: int) -> Sequence[LeadChange]:
    """The lead's changes, oldest first."""
    rows = await session.execute(
        select(LeadChange)
        .where(LeadChange.lead_id == lead_id)
        .order_by(LeadChange.at, LeadChange.id)
    )
    return rows.scalars().all()


async def list_leads(
    session: AsyncSession,
    *,
    chat_id: str | None = None,
    stage: str | None = None,
    owner: str | None = None,
    limit: int = 1000,
) -> Sequence[Lead]:
    """Leads (by group of origin, stage, owner), most recently changed first."""
    query = select(Lead)
    if chat_id is not None:
        query = query.where(Lead.origin_chat_id == chat_id)
    if stage is not None:
        query = query.where(Lead.stage == stage)
    if owner is not None:
        query = query.where(Lead.owner == owner)
    rows = await session.execute(
        query.order_by(Lead.updated_at.desc(), Lead.id.desc()).limit(limit)
    )
    return rows.scalars().all()


async def lead_stage_counts(session: AsyncSession, chat_id: str) -> dict[str, int]:
    """Leads whose group of origin is `chat_id`, by current stage; every stage is a key."""
    counts = dict.fromkeys(STAGES, 0)
    rows = await session.execute(
        select(Lead.stage, func.count()).where(Lead.origin_chat_id == chat_id).group_by(Lead.stage)
    )
    for stage, count in rows.all():
        counts[stage] = count
    return counts
