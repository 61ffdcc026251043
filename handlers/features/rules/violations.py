"""Violation records: the state actions of the rules feature, the ladder read back
from them, and what admins do with them (review, overturn, statistics).

A member's ladder position for a rule family is the number of steps taken in the
last `warning_ttl_days` that no admin overturned: overturning a step returns the
member to the step before, with nothing else to undo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from pydantic import BaseModel, computed_field
from sqlalchemy import ColumnElement, Table, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.channels.registry import APPCHAT_MEMBERS
from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.core.executor import Executor
from handlers.features.points.penalties import record_penalty
from handlers.features.rules.decide import PastStep
from storage import outbox
from storage.db import insert_for
from storage.models import RaidGuardState, Violation

TAKEN, DRY_RUN, HELD, OVERTURNED = "taken", "dry_run", "held", "overturned"


@dataclass(frozen=True)
class RecordViolation(Action):
    chat_id: str
    member_id: str
    rule: str
    family: str
    step: str | None
    status: str  # taken | dry_run | held
    reason: str
    matcher: str
    evidence: str
    at: datetime  # when the member sent the message: the ladder runs on message time
    msg_id: str | None = None
    penalty: int = 0  # points the step costs (points.penalties), keyed by the new row's id


@dataclass(frozen=True)
class MarkAppealed(Action):
    violation_id: int
    text: str
    at: datetime


@dataclass(frozen=True)
class StartRaidGuard(Action):
    chat_id: str
    started_at: datetime
    until: datetime
    joins: int


@dataclass(frozen=True)
class RemoveMember(Action):
    """Take a member out of a group the app created (the only kind it may change)."""

    chat_id: str
    member_id: str
    origin: str = "rule_remove"


async def apply_remove(action: RemoveMember, ctx: Context) -> None:
    key = f"{ctx.source_id}:{action.origin}:{action.member_id}" if ctx.source_id else None
    message = APPCHAT_MEMBERS.removal(
        chat_id=action.chat_id, member_id=action.member_id, origin=action.origin, dedup_key=key
    )
    ctx.queued.append((await outbox.enqueue(ctx.session, message, now=ctx.now)).id)
    ctx.note(f"{action.member_id} to be removed from {action.chat_id}")


async def apply_record(action: RecordViolation, ctx: Context) -> None:
    source = (ctx.source_id or f"msg:{action.msg_id or action.at.isoformat()}")[:64]
    table = cast(Table, Violation.__table__)
    # A replayed event records nothing twice (one row per source event and rule).
    inserted = await ctx.session.execute(
        insert_for(ctx.session)(table)
        .values(
            chat_id=action.chat_id,
            member_id=action.member_id,
            rule=action.rule,
            family=action.family,
            step=action.step,
            status=action.status,
            reason=action.reason[:1000],
            matcher=action.matcher,
            evidence=action.evidence[:1000],
            msg_id=action.msg_id[:128] if action.msg_id else None,
            source_id=source,
            created_at=action.at,
        )
        .on_conflict_do_nothing(index_elements=["source_id", "rule"])
        .returning(table.c.id)
    )
    violation_id = inserted.scalar_one_or_none()
    if violation_id is not None and action.status == TAKEN and action.step and action.penalty:
        await record_penalty(
            ctx.session,
            violation_id=int(violation_id),
            chat_id=action.chat_id,
            member_id=action.member_id,
            points=action.penalty,
            rule=action.rule,
            step=action.step,
            at=action.at,
        )
    what = action.step if action.status == TAKEN else action.status
    ctx.note(f"rule {action.rule}: {action.member_id} {what} ({action.reason})")


async def apply_appealed(action: MarkAppealed, ctx: Context) -> None:
    violation = await ctx.session.get(Violation, action.violation_id)
    if violation is None or violation.appealed_at is not None:
        return
    violation.appealed_at = action.at
    violation.appeal_text = action.text[:1000]
    violation.reviewed_at = None  # back in the review queue
    ctx.note(f"appeal on violation {violation.id}")


async def apply_raid(action: StartRaidGuard, ctx: Context) -> None:
    row = await ctx.session.get(RaidGuardState, action.chat_id)
    if row is None:
        ctx.session.add(
            RaidGuardState(
                chat_id=action.chat_id,
                started_at=action.started_at,
                until=action.until,
                joins=action.joins,
            )
        )
    else:
        row.started_at, row.until, row.joins = action.started_at, action.until, action.joins
    await ctx.session.flush()
    ctx.memo.extra.pop(("raid_guard", action.chat_id), None)
    ctx.note(f"raid guard on in {action.chat_id} until {action.until.isoformat()}")


# --- reading -----------------------------------------------------------------------


async def ladder_history(
    session: AsyncSession,
    *,
    chat_id: str,
    member_id: str,
    family: str,
    since: datetime,
    until: datetime,
) -> list[PastStep]:
    """Steps taken on the member for the family in the window, oldest first."""
    rows = await session.execute(
        select(Violation.step, Violation.created_at, Violation.status)
        .where(
            Violation.chat_id == chat_id,
            Violation.member_id == member_id,
            Violation.family == family,
            Violation.status.in_((TAKEN, OVERTURNED)),
            Violation.step.is_not(None),
            Violation.created_at >= since,
            Violation.created_at <= until,
        )
        .order_by(Violation.created_at, Violation.id)
    )
    return [PastStep(str(step), at, status == OVERTURNED) for step, at, status in rows]


async def appealable(
    session: AsyncSession, *, member_id: str, chat_id: str | None, since: datetime
) -> list[Violation]:
    """The member's steps that may still be appealed, newest first."""
    query = select(Violation).where(
        Violation.member_id == member_id,
        Violation.status == TAKEN,
        Violation.appealed_at.is_(None),
        Violation.created_at >= since,
    )
    if chat_id is not None:
        query = query.where(Violation.chat_id == chat_id)
    return list(
        (await session.execute(query.order_by(Violation.created_at.desc(), Violation.id.desc())))
        .scalars()
        .all()
    )


async def active_raid(ctx: Context, chat_id: str, at: datetime) -> RaidGuardState | None:
    key = ("raid_guard", chat_id)
    if key not in ctx.memo.extra:  # once per batch: most groups never have a row
        ctx.memo.extra[key] = await ctx.session.get(RaidGuardState, chat_id)
    row: RaidGuardState | None = ctx.memo.extra[key]
    return row if row is not None and row.started_at <= at < row.until else None


@dataclass(frozen=True)
class ViolationFilter:
    chat_id: str | None = None
    member_id: str | None = None
    rule: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_violations(
    session: AsyncSession, where: ViolationFilter, *, limit: int, offset: int = 0
) -> list[Violation]:
    query = select(Violation)
    for column, value in (
        (Violation.chat_id, where.chat_id),
        (Violation.member_id, where.member_id),
        (Violation.rule, where.rule),
        (Violation.status, where.status),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(Violation.created_at >= where.since)
    if where.until is not None:
        query = query.where(Violation.created_at < where.until)
    query = query.order_by(Violation.created_at.desc(), Violation.id.desc())
    return list((await session.execute(query.limit(limit).offset(offset))).scalars().all())


def review_reason(violation: Violation) -> str | None:
    """Why a violation is in the review queue, or None when it is not."""
    if violation.reviewed_at is not None or violation.status == OVERTURNED:
        return None
    if violation.appealed_at is not None:
        return "appeal"
    if violation.status == DRY_RUN:
        return "dry_run"
    if violation.status == TAKEN and violation.step in ("report", "remove"):
        return "report"
    return None


async def review_queue(
    session: AsyncSession, *, chat_id: str | None, limit: int
) -> list[tuple[str, Violation]]:
    """Appeals first (a member is waiting), then reports, then dry-run hits; oldest
    first within each, so nothing waits forever behind newer items."""
    pending = and_(Violation.reviewed_at.is_(None), Violation.status != OVERTURNED)
    wanted = or_(
        Violation.appealed_at.is_not(None),
        Violation.status == DRY_RUN,
        and_(Violation.status == TAKEN, Violation.step.in_(("report", "remove"))),
    )
    rank = case(
        (Violation.appealed_at.is_not(None), 0),
        (Violation.status == TAKEN, 1),
        else_=2,
    )
    query = select(Violation).where(pending, wanted)
    if chat_id is not None:
        query = query.where(Violation.chat_id == chat_id)
    rows = (
        await session.execute(query.order_by(rank, Violation.created_at, Violation.id).limit(limit))
    ).scalars()
    return [(reason, v) for v in rows if (reason := review_reason(v)) is not None]


class RuleStats(BaseModel):
    """Per rule: what it hit and how often admins overturned it (for tuning)."""

    rule: str
    hits: int
    taken: int
    dry_run: int
    held: int
    overturned: int
    appealed: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def overturn_rate(self) -> float:
        """overturned / (taken + overturned): high means the rule misjudges."""
        acted = self.taken + self.overturned
        return round(self.overturned / acted, 4) if acted else 0.0


async def rule_stats(
    session: AsyncSession, *, chat_id: str | None, since: datetime | None
) -> list[RuleStats]:
    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.sum(case((condition, 1), else_=0))

    query = select(
        Violation.rule,
        func.count(),
        count(Violation.status == TAKEN),
        count(Violation.status == DRY_RUN),
        count(Violation.status == HELD),
        count(Violation.status == OVERTURNED),
        count(Violation.appealed_at.is_not(None)),
    ).group_by(Violation.rule)
    if chat_id is not None:
        query = query.where(Violation.chat_id == chat_id)
    if since is not None:
        query = query.where(Violation.created_at >= since)
    rows = await session.execute(query.order_by(Violation.rule))
    return [
        RuleStats(
            rule=str(rule),
            hits=int(hits),
            taken=int(taken or 0),
            dry_run=int(dry_run or 0),
            held=int(held or 0),
            overturned=int(overturned or 0),
            appealed=int(appealed or 0),
        )
        for rule, hits, taken, dry_run, held, overturned, appealed in rows.all()
    ]


def register(executor: Executor) -> None:
    executor.register(RecordViolation, apply_record)
    executor.register(MarkAppealed, apply_appealed)
    executor.register(StartRaidGuard, apply_raid)
    executor.register(RemoveMember, apply_remove)
