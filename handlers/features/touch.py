"""The 7-day new-member touch sequence.

On join a member is enrolled and the playbook's steps are materialized as rows with
a due time, so the scheduler tick only ever reads what is due (O(due)). Each step
is sent exactly once (a unique outbox key per step) or skipped with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import (
    PlaybookSet,
    QuietHours,
    TouchMemberVars,
    eval_condition,
    render_text,
    touch_variables,
)
from bot.config.playbooks import TouchStep as StepSpec
from handlers.channels import (
    CannotPost,
    compose_group_text,
    compose_private_text,
    customer_sender,
)
from handlers.core.context import Context
from handlers.core.events import Event, MemberJoined, MemberLeft, Message
from handlers.features.membership import get_or_create_group
from handlers.features.welcome import group_vars
from storage import outbox
from storage.members import get_membership
from storage.models import Enrollment, Group, Membership, TouchStep

OPT_OUT_WORDS = frozenset({"退订", "td", "TD", "取消提醒", "不要再发"})
REENROLL_AFTER = timedelta(days=90)

# --- pure decisions ---------------------------------------------------------------


def step_due_at(
    joined_at: datetime, day: int, at: time, *, tz: Any, quiet: QuietHours | None
) -> datetime:
    """Day N at HH:MM in local time; never before the join; out of quiet hours."""
    local_join = joined_at.astimezone(tz)
    local_date = local_join.date() + timedelta(days=day)
    due = datetime.combine(local_date, at, tzinfo=tz)
    # Compare instants, not wall clocks: aware datetimes sharing one tzinfo compare
    # by wall time in Python, which is off by an hour around a DST change.
    if due.timestamp() < local_join.timestamp():
        due = local_join
    if quiet is not None and quiet.contains(due.timetz().replace(tzinfo=None)):
        due = quiet.next_end(due)
    return due


def materialize(
    joined_at: datetime, steps: list[StepSpec], *, tz: Any, quiet: QuietHours | None
) -> list[tuple[StepSpec, int, datetime]]:
    """Due times in playbook order, made non-decreasing so steps arrive in order."""
    planned: list[tuple[StepSpec, int, datetime]] = []
    previous: datetime | None = None
    ordered = sorted(enumerate(steps), key=lambda pair: (pair[1].day, pair[1].at, pair[0]))
    for index, step in ordered:
        due = step_due_at(joined_at, step.day, step.at, tz=tz, quiet=quiet)
        if previous is not None and due.timestamp() < previous.timestamp():
            due = previous
        planned.append((step, index, due))
        previous = due
    return planned


@dataclass(frozen=True)
class StepState:
    enrollment_status: str
    member_left: bool
    opted_out: bool
    step_in_playbook: bool
    group_gone: bool


def skip_reason(state: StepState) -> str | None:
    if state.enrollment_status != "active":
        return f"enrollment {state.enrollment_status}"
    if state.group_gone:
        return "group dismissed"
    if state.member_left:
        return "member left the group"
    if state.opted_out:
        return "member opted out"
    if not state.step_in_playbook:
        return "step no longer in the playbook"
    return None


def touch_member_vars(membership: Membership, *, now: datetime, tz: Any) -> TouchMemberVars:
    joined_local = membership.joined_at.astimezone(tz)
    return {
        "id": membership.member_id,
        "name": membership.name or membership.member_id,
        "joined_at": joined_local.strftime("%Y-%m-%d %H:%M"),
        "days_since_join": (now.astimezone(tz).date() - joined_local.date()).days,
        "message_count": membership.message_count,
        "has_spoken": membership.message_count > 0,
    }


# --- event side -----------------------------------------------------------------------


async def on_member_joined(event: Event, ctx: Context) -> str | None:
    assert isinstance(event, MemberJoined) and event.chat_id
    group = await get_or_create_group(ctx, event.chat_id)
    playbook = ctx.playbooks.for_group(group.chat_id, list(group.tags or []))
    sequence = playbook.touch_sequence
    if sequence is None or not sequence.enabled or not sequence.steps:
        return None
    for info in event.members:
        membership = await get_membership(ctx.session, event.chat_id, info.id)
        if (
            membership is None
            or membership.left_at is not None  # a stale join, already followed by a leave
            or membership.opted_out
            or info.id.startswith("wb")
        ):
            continue
        recent = await ctx.session.execute(
            select(Enrollment.id).where(
                Enrollment.chat_id == event.chat_id,
                Enrollment.member_id == info.id,
                Enrollment.enrolled_at > ctx.now - REENROLL_AFTER,
            )
        )
        if recent.first() is not None:
            ctx.note(f"{info.id} already had a touch sequence in {event.chat_id}")
            continue
        enrollment = Enrollment(
            chat_id=event.chat_id,
            member_id=info.id,
            playbook=playbook.name,
            status="active",
            enrolled_at=ctx.now,
        )
        ctx.session.add(enrollment)
        await ctx.session.flush()
        for step, index, due in materialize(
            membership.joined_at, list(sequence.steps), tz=ctx.tz, quiet=playbook.quiet_hours
        ):
            ctx.session.add(
                TouchStep(
                    enrollment_id=enrollment.id,
                    step_key=step.key,
                    step_index=index,
                    due_at=due,
                    status="pending",
                )
            )
        ctx.note(f"enrolled {info.id} in {playbook.name} ({len(sequence.steps)} steps)")
    await ctx.session.flush()
    return None


async def end_enrollments(
    session: AsyncSession,
    *,
    chat_id: str | None,
    member_id: str,
    status: str,
    reason: str,
    now: datetime,
    enrollment_id: int | None = None,
) -> int:
    """Stop active enrollments and record why every pending step will not be sent."""
    query = select(Enrollment).where(
        Enrollment.member_id == member_id, Enrollment.status == "active"
    )
    if chat_id is not None:
        query = query.where(Enrollment.chat_id == chat_id)
    if enrollment_id is not None:
        query = query.where(Enrollment.id == enrollment_id)
    enrollments = (await session.execute(query)).scalars().all()
    for enrollment in enrollments:
        enrollment.status = status
        enrollment.ended_at = now
        enrollment.ended_reason = reason
        await session.execute(
            update(TouchStep)
            .where(TouchStep.enrollment_id == enrollment.id, TouchStep.status == "pending")
            .values(status="skipped", reason=reason, done_at=now)
        )
    return len(enrollments)


async def on_member_left(event: Event, ctx: Context) -> str | None:
    assert isinstance(event, MemberLeft) and event.chat_id
    for member_id in event.member_ids:
        await end_enrollments(
            ctx.session,
            chat_id=event.chat_id,
            member_id=member_id,
            status="stopped",
            reason="member left the group",
            now=ctx.now,
        )
    return None


async def on_message(event: Event, ctx: Context) -> str | None:
    assert isinstance(event, Message)
    if event.text.strip() not in OPT_OUT_WORDS:
        return None
    if event.chat_type == "group" and event.chat_id:
        scope: str | None = event.chat_id
    else:
        scope = None  # a private 退订 opts out everywhere
    query = select(Membership).where(Membership.member_id == event.sender)
    if scope is not None:
        query = query.where(Membership.chat_id == scope)
    for row in (await ctx.session.execute(query)).scalars():
        row.opted_out = True
    stopped = await end_enrollments(
        ctx.session,
        chat_id=scope,
        member_id=event.sender,
        status="cancelled",
        reason="member opted out",
        now=ctx.now,
    )
    ctx.note(f"{event.sender} opted out; {stopped} enrollment(s) cancelled")
    return None


# --- due side (called by the scheduler tick) ---------------------------------------


@dataclass(frozen=True)
class StepOutcome:
    status: str  # sent | skipped | deferred
    reason: str


async def run_step(
    session: AsyncSession,
    step: TouchStep,
    *,
    playbooks: PlaybookSet,
    at: datetime,
    now: datetime,
    tz: Any,
) -> StepOutcome:
    """Send or skip one claimed step. `at` is the tick's instant, `now` the real clock."""
    enrollment = await session.get(Enrollment, step.enrollment_id)
    assert enrollment is not None
    outcome = await _run_step(session, step, enrollment, playbooks=playbooks, at=at, now=now, tz=tz)
    if outcome.status in ("sent", "skipped") and enrollment.status == "active":
        await _complete_if_last(session, enrollment, now)
    return outcome


async def _run_step(
    session: AsyncSession,
    step: TouchStep,
    enrollment: Enrollment,
    *,
    playbooks: PlaybookSet,
    at: datetime,
    now: datetime,
    tz: Any,
) -> StepOutcome:
    group = await session.get(Group, enrollment.chat_id)
    membership = await get_membership(session, enrollment.chat_id, enrollment.member_id)
    playbook = playbooks.playbooks.get(enrollment.playbook)
    sequence = playbook.touch_sequence if playbook else None
    spec = next((s for s in (sequence.steps if sequence else []) if s.key == step.step_key), None)
    reason = skip_reason(
        StepState(
            enrollment_status=enrollment.status,
            member_left=membership is None or membership.left_at is not None,
            opted_out=bool(membership and membership.opted_out),
            step_in_playbook=spec is not None,
            group_gone=group is None or group.dismissed_at is not None,
        )
    )
    if reason is None and playbook is not None and playbook.quiet_hours is not None:
        local = at.astimezone(tz)
        if playbook.quiet_hours.contains(local.time()):
            step.due_at = playbook.quiet_hours.next_end(local)
            return StepOutcome("deferred", f"quiet hours until {step.due_at.isoformat()}")
    if reason is not None:
        return _finish(step, "skipped", reason, now)
    assert spec is not None and membership is not None and group is not None
    variables = touch_variables(
        touch_member_vars(membership, now=at, tz=tz),
        group_vars(group),
        day=spec.day,
        today=at.astimezone(tz).date(),
    )
    if spec.when and not eval_condition(spec.when, variables):
        return _finish(step, "skipped", f"condition false: {spec.when}", now)
    text = render_text(spec.text, variables)
    try:
        if spec.channel == "group":
            if group.channel_type == "customer_group":
                raise CannotPost(
                    "customer groups take one owner-confirmed post a day; kept for 早报"
                )
            messages = compose_group_text(
                chat_id=group.chat_id,
                channel_type=group.channel_type,
                channel_config=dict(group.channel_config or {}),
                owner=group.owner,
                text=text,
                origin="touch",
                dedup_key=f"touch:{step.id}",
            )
        else:
            sender = customer_sender(dict(group.channel_config or {}), group.owner)
            messages = [
                compose_private_text(
                    member_id=membership.member_id,
                    member_type=membership.member_type,
                    sender=sender,
                    text=text,
                    origin="touch",
                    chat_id=group.chat_id,
                    dedup_key=f"touch:{step.id}",
                )
            ]
    except CannotPost as exc:
        return _finish(step, "skipped", f"channel cannot carry it: {exc}", now)
    first_id: int | None = None
    for message in messages:
        item = await outbox.enqueue(session, message, now=now)
        first_id = first_id or item.id
    step.outbox_id = first_id
    return _finish(step, "sent", "queued", now)


def _finish(step: TouchStep, status: str, reason: str, now: datetime) -> StepOutcome:
    step.status = status
    step.reason = reason
    step.done_at = now
    return StepOutcome(status, reason)


async def _complete_if_last(session: AsyncSession, enrollment: Enrollment, now: datetime) -> None:
    await session.flush()
    # "claimed" counts as unfinished: several steps of one enrollment can be due in
    # the same tick (after downtime, or two steps at the same time).
    pending = await session.execute(
        select(TouchStep.id).where(
            TouchStep.enrollment_id == enrollment.id,
            TouchStep.status.in_(("pending", "claimed")),
        )
    )
    if pending.first() is None:
        enrollment.status = "completed"
        enrollment.ended_at = now
        enrollment.ended_reason = "all steps done"
