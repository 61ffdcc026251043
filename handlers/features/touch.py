"""The 7-day new-member touch sequence.

On join a member is enrolled and the playbook's steps are planned as rows with a
due time, so the due-work engine only ever reads what is due (O(due)). Each step
is sent exactly once (a unique outbox key per step) or skipped with a reason.

Humane by default: at most `max_steps_per_day` steps reach a member on one local
day (planned that way, and checked again when a step comes due), and a step more
than `late_grace_hours` late (the service was down) is skipped as `overdue`
instead of arriving in a burst with the ones after it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import (
    Playbook,
    QuietHours,
    TouchMemberVars,
    eval_condition,
    render_text,
    touch_variables,
)
from bot.config.playbooks import TouchStep as StepSpec
from handlers.channels import group_channel
from handlers.core.actions import (
    Action,
    CancelQueued,
    DueDecision,
    EndEnrollments,
    Enroll,
    Note,
    OptOut,
    PlannedStep,
    QueueGroupText,
    QueuePrivateText,
)
from handlers.core.context import Context
from handlers.core.events import Event, MemberJoined, MemberLeft, Message
from handlers.core.executor import Executor
from handlers.features.points import first_week as points_touch
from handlers.features.welcome import group_vars
from scheduler.engine import DueContext, DueKind, Outcome
from storage.members import get_membership, memberships_of
from storage.models import Enrollment, Group, Membership, TouchStep

OPT_OUT_WORDS = frozenset({"退订", "td", "TD", "取消提醒", "不要再发"})
REENROLL_AFTER = timedelta(days=90)
UNFINISHED = ("pending", "claimed")
OVERDUE = "overdue"

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
    return _out_of_quiet(due, quiet)


def _out_of_quiet(due: datetime, quiet: QuietHours | None) -> datetime:
    if quiet is not None and quiet.contains(due.timetz().replace(tzinfo=None)):
        return quiet.next_end(due)
    return due


def next_free_day(
    due: datetime,
    at: time,
    per_day: Counter[date],
    max_per_day: int,
    *,
    tz: Any,
    quiet: QuietHours | None,
) -> datetime:
    """`due`, or the step's time of day on the first later local day with room."""
    local = due.astimezone(tz)
    while per_day[local.date()] >= max_per_day:
        local = _out_of_quiet(
            datetime.combine(local.date() + timedelta(days=1), at, tzinfo=tz), quiet
        ).astimezone(tz)
    return local


def materialize(
    joined_at: datetime,
    steps: list[StepSpec],
    *,
    tz: Any,
    quiet: QuietHours | None,
    max_per_day: int = 1,
) -> list[tuple[StepSpec, int, datetime]]:
    """Due times in playbook order, non-decreasing, at most `max_per_day` a local day.

    A join at 23:40 with quiet hours until 08:00 pushes day 0 to the next morning;
    day 1 would then land on the same morning, so it moves to the day after.
    """
    planned: list[tuple[StepSpec, int, datetime]] = []
    previous: datetime | None = None
    per_day: Counter[date] = Counter()
    ordered = sorted(enumerate(steps), key=lambda pair: (pair[1].day, pair[1].at, pair[0]))
    for index, step in ordered:
        due = step_due_at(joined_at, step.day, step.at, tz=tz, quiet=quiet)
        if previous is not None and due.timestamp() < previous.timestamp():
            due = previous
        due = next_free_day(due, step.at, per_day, max_per_day, tz=tz, quiet=quiet)
        per_day[due.astimezone(tz).date()] += 1
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


def is_overdue(due_at: datetime, at: datetime, grace: timedelta) -> bool:
    return at - due_at > grace


def touch_member_vars(
    membership: Membership, *, now: datetime, tz: Any, neutral_name: str = "新朋友"
) -> TouchMemberVars:
    joined_local = membership.joined_at.astimezone(tz)
    return {
        "id": membership.member_id,
        "name": membership.name or neutral_name,
        "joined_at": joined_local.strftime("%Y-%m-%d %H:%M"),
        "days_since_join": (now.astimezone(tz).date() - joined_local.date()).days,
        "message_count": membership.message_count,
        "has_spoken": membership.message_count > 0,
    }


# --- event side -----------------------------------------------------------------------


def should_enroll(membership: Membership | None, member_id: str, recently_enrolled: bool) -> bool:
    return not (
        membership is None
        or membership.left_at is not None  # a stale join, already followed by a leave
        or membership.opted_out
        or member_id.startswith("wb")
        or recently_enrolled
    )


async def on_member_joined(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, MemberJoined) and event.chat_id
    group = await ctx.session.get(Group, event.chat_id)
    if group is None:
        return []
    playbook = ctx.playbooks.for_group(group.chat_id, list(group.tags or []))
    sequence = playbook.touch_sequence
    if sequence is None or not sequence.enabled or not sequence.steps:
        return []
    member_ids = [m.id for m in event.members]
    rows = await memberships_of(ctx.session, event.chat_id, member_ids)
    recent = set(
        (
            await ctx.session.execute(
                select(Enrollment.member_id).where(
                    Enrollment.chat_id == event.chat_id,
                    Enrollment.member_id.in_(member_ids),
                    Enrollment.enrolled_at > ctx.now - REENROLL_AFTER,
                )
            )
        ).scalars()
    )
    actions: list[Action] = []
    for info in event.members:
        membership = rows.get(info.id)
        if not should_enroll(membership, info.id, info.id in recent):
            if info.id in recent:
                actions.append(Note(f"{info.id} already had a touch sequence in {event.chat_id}"))
            continue
        assert membership is not None
        planned = materialize(
            membership.joined_at,
            list(sequence.steps),
            tz=ctx.tz,
            quiet=playbook.quiet_hours,
            max_per_day=sequence.max_steps_per_day,
        )
        actions.append(
            Enroll(
                event.chat_id,
                info.id,
                playbook.name,
                tuple(PlannedStep(step.key, index, due) for step, index, due in planned),
            )
        )
    return actions


async def on_member_left(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, MemberLeft) and event.chat_id
    reason = "member left the group"
    actions: list[Action] = []
    for member_id in event.member_ids:
        actions.append(EndEnrollments(member_id, event.chat_id, "stopped", reason))
        actions.append(CancelQueued(member_id, event.chat_id, reason))
    return actions


def is_opt_out(text: str) -> bool:
    return text.strip() in OPT_OUT_WORDS


async def on_message(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, Message)
    if not is_opt_out(event.text):
        return []
    # In a group: that group; privately: everywhere.
    scope = event.chat_id if event.chat_type == "group" and event.chat_id else None
    reason = "member opted out"
    return [
        OptOut(event.sender, scope),
        EndEnrollments(event.sender, scope, "cancelled", reason),
        CancelQueued(event.sender, scope, reason),
    ]


# --- appliers ------------------------------------------------------------------------------


async def apply_enroll(action: Enroll, ctx: Context) -> None:
    # An enrollment left `active` with nothing left to send (a crash, an old bug) must
    # never block this one: it is finished, so say so.
    stale = (
        (
            await ctx.session.execute(
                select(Enrollment).where(
                    Enrollment.chat_id == action.chat_id,
                    Enrollment.member_id == action.member_id,
                    Enrollment.status == "active",
                )
            )
        )
        .scalars()
        .all()
    )
    for enrollment in stale:
        if not await complete_if_finished(ctx.session, enrollment, ctx.now):
            ctx.note(f"{action.member_id} is still in an active touch sequence")
            return
    try:
        async with ctx.session.begin_nested():
            enrollment = Enrollment(
                chat_id=action.chat_id,
                member_id=action.member_id,
                playbook=action.playbook,
                status="active",
                enrolled_at=ctx.now,
            )
            ctx.session.add(enrollment)
            await ctx.session.flush()
            for step in action.steps:
                ctx.session.add(
                    TouchStep(
                        enrollment_id=enrollment.id,
                        step_key=step.key,
                        step_index=step.index,
                        due_at=step.due_at,
                        status="pending",
                    )
                )
            await ctx.session.flush()
    except IntegrityError:
        # Another replica enrolled them a moment ago; the join itself must not fail.
        ctx.note(f"{action.member_id} was enrolled concurrently; kept that enrollment")
        return
    ctx.note(f"enrolled {action.member_id} in {action.playbook} ({len(action.steps)} steps)")


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


async def apply_end_enrollments(action: EndEnrollments, ctx: Context) -> None:
    stopped = await end_enrollments(
        ctx.session,
        chat_id=action.chat_id,
        member_id=action.member_id,
        status=action.status,
        reason=action.reason,
        now=ctx.now,
    )
    if stopped:
        ctx.note(f"{action.member_id}: {stopped} enrollment(s) {action.status}")


async def apply_opt_out(action: OptOut, ctx: Context) -> None:
    query = select(Membership).where(Membership.member_id == action.member_id)
    if action.chat_id is not None:
        query = query.where(Membership.chat_id == action.chat_id)
    for row in (await ctx.session.execute(query)).scalars():
        row.opted_out = True
    ctx.note(f"{action.member_id} opted out")


async def complete_if_finished(
    session: AsyncSession, enrollment: Enrollment, now: datetime
) -> bool:
    """Mark an active enrollment completed when no step is left to send; True if it is
    (now) finished. A failed step counts as finished: nothing will send it."""
    if enrollment.status != "active":
        return True
    await session.flush()
    unfinished = await session.scalar(
        select(func.count())
        .select_from(TouchStep)
        .where(TouchStep.enrollment_id == enrollment.id, TouchStep.status.in_(UNFINISHED))
    )
    if unfinished:
        return False
    enrollment.status = "completed"
    enrollment.ended_at = now
    enrollment.ended_reason = "all steps done"
    return True


async def close_finished_enrollments(
    session: AsyncSession, *, now: datetime, limit: int = 500
) -> int:
    """Housekeeping: active enrollments with no step left to send become completed."""
    unfinished = (
        select(TouchStep.id)
        .where(TouchStep.enrollment_id == Enrollment.id, TouchStep.status.in_(UNFINISHED))
        .exists()
    )
    rows = (
        (
            await session.execute(
                select(Enrollment).where(Enrollment.status == "active", ~unfinished).limit(limit)
            )
        )
        .scalars()
        .all()
    )
    for enrollment in rows:
        enrollment.status = "completed"
        enrollment.ended_at = now
        enrollment.ended_reason = "all steps done"
    return len(rows)


# --- due side: a touch step -----------------------------------------------------------


@dataclass(frozen=True)
class StepFacts:
    enrollment_status: str
    group: Group | None
    membership: Membership | None
    playbook: Playbook | None
    spec: StepSpec | None
    sent_on_day: int  # steps of this enrollment already sent on the judged local day


def decide_step(
    step_id: int, due_at: datetime, facts: StepFacts, *, at: datetime, tz: Any
) -> DueDecision:
    playbook, spec, group, membership = facts.playbook, facts.spec, facts.group, facts.membership
    sequence = playbook.touch_sequence if playbook else None
    reason = skip_reason(
        StepState(
            enrollment_status=facts.enrollment_status,
            member_left=membership is None or membership.left_at is not None,
            opted_out=bool(membership and membership.opted_out),
            step_in_playbook=spec is not None,
            group_gone=group is None or group.dismissed_at is not None,
        )
    )
    if reason is not None:
        return DueDecision("skipped", reason)
    assert playbook is not None and sequence is not None and spec is not None
    assert group is not None and membership is not None
    if is_overdue(due_at, at, timedelta(hours=sequence.late_grace_hours)):
        return DueDecision("skipped", OVERDUE)
    local = at.astimezone(tz)
    if playbook.quiet_hours is not None and playbook.quiet_hours.contains(local.time()):
        resume = playbook.quiet_hours.next_end(local)
        return DueDecision("deferred", f"quiet hours until {resume.isoformat()}", (), resume)
    if facts.sent_on_day >= sequence.max_steps_per_day:
        tomorrow = datetime.combine(local.date() + timedelta(days=1), spec.at, tzinfo=tz)
        again = _out_of_quiet(tomorrow, playbook.quiet_hours)
        return DueDecision(
            "deferred", f"{facts.sent_on_day} step(s) already today; moved to tomorrow", (), again
        )
    variables = touch_variables(
        touch_member_vars(membership, now=at, tz=tz, neutral_name=playbook.neutral_name),
        group_vars(group),
        day=spec.day,
        today=local.date(),
    )
    if spec.when and not eval_condition(spec.when, variables):
        return DueDecision("skipped", f"condition false: {spec.when}")
    text = render_text(spec.text, variables)
    key = f"touch:{step_id}"
    if spec.channel == "group":
        if not group_channel(group.channel_type).capabilities.immediate:
            return DueDecision(
                "skipped",
                "channel cannot carry it: customer groups take one owner-confirmed post a day; "
                "kept for 早报",
            )
        action: Action = QueueGroupText(
            group.chat_id, text, origin="touch", key=key, member_id=membership.member_id
        )
    else:
        action = QueuePrivateText(
            group.chat_id, membership.member_id, text, origin="touch", key=key
        )
    return DueDecision("sent", "queued", (action,))


async def lock_enrollment(session: AsyncSession, enrollment_id: int) -> Enrollment | None:
    """The enrollment, locked for this transaction; None when another replica holds it
    (then this step waits for the next tick instead of racing its day count)."""
    result = await session.execute(
        select(Enrollment)
        .where(Enrollment.id == enrollment_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


class TouchStepKind(DueKind):
    name = "touch_step"
    model = TouchStep
    ready_status = "pending"
    claimed_status = "claimed"

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def order_by(self) -> Any:
        return (TouchStep.due_at, TouchStep.step_index, TouchStep.id)

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        step: TouchStep = row
        enrollment = await lock_enrollment(session, step.enrollment_id)
        if enrollment is None:
            return Outcome(
                "deferred", "enrollment busy in another replica", due_again_at=step.due_at
            )
        facts = await self._facts(session, step, enrollment, ctx)
        decision = decide_step(step.id, step.due_at, facts, at=ctx.at, tz=ctx.tz)
        if decision.status == "deferred":
            return Outcome("deferred", decision.reason, due_again_at=decision.due_again_at)
        effects = await self.executor.execute_due(
            decision.actions,
            session,
            now=ctx.now,
            tz=ctx.tz,
            playbooks=ctx.playbooks,
            source_id=f"touch_step:{step.id}",
        )
        status, reason = decision.status, decision.reason
        if status == "sent" and not effects.queued:
            status, reason = "skipped", "channel cannot carry it: " + "; ".join(effects.notes)
        step.status = status
        step.reason = reason
        step.done_at = ctx.now
        if status == "sent":
            step.outbox_id = effects.queued[0]
            step.sent_on = ctx.at.astimezone(ctx.tz).date()
        was_active = enrollment.status == "active"
        await complete_if_finished(session, enrollment, ctx.now)
        if was_active and enrollment.status == "completed":
            # The week is over: points for going through it (points/first_week.py).
            await self.executor.execute_due(
                await points_touch.completion_actions(
                    session, enrollment, ctx.playbooks, now=ctx.now
                ),
                session,
                now=ctx.now,
                tz=ctx.tz,
                playbooks=ctx.playbooks,
                source_id=f"touch_complete:{enrollment.id}",
            )
        return Outcome(status, reason, tuple(effects.queued))

    async def _facts(
        self, session: AsyncSession, step: TouchStep, enrollment: Enrollment, ctx: DueContext
    ) -> StepFacts:
        group = await session.get(Group, enrollment.chat_id)
        membership = await get_membership(session, enrollment.chat_id, enrollment.member_id)
        playbook = ctx.playbooks.playbooks.get(enrollment.playbook)
        sequence = playbook.touch_sequence if playbook else None
        spec = next(
            (s for s in (sequence.steps if sequence else ()) if s.key == step.step_key), None
        )
        sent_today = await session.scalar(
            select(func.count())
            .select_from(TouchStep)
            .where(
                TouchStep.enrollment_id == enrollment.id,
                TouchStep.status == "sent",
                TouchStep.sent_on == ctx.at.astimezone(ctx.tz).date(),
            )
        )
        return StepFacts(enrollment.status, group, membership, playbook, spec, int(sent_today or 0))

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "failed", "done_at": ctx.now, "reason": error}

    async def after_failure(self, session: AsyncSession, row_id: int, ctx: DueContext) -> None:
        # A failed last step must not leave the enrollment active for ever.
        step = await session.get(TouchStep, row_id)
        if step is None:
            return
        enrollment = await lock_enrollment(session, step.enrollment_id)
        if enrollment is not None:
            await complete_if_finished(session, enrollment, ctx.now)


def register(executor: Executor) -> None:
    executor.register(Enroll, apply_enroll)
    executor.register(EndEnrollments, apply_end_enrollments)
    executor.register(OptOut, apply_opt_out)
