"""Humane welcomes: one group message per batch of newcomers, never one @ per person.

Pure decisions first (who gets welcomed, when the batch goes out, what it says),
then the handlers that gather facts and return actions: a join adds newcomers to
the group's open batch; the due-work engine flushes a due batch (WelcomeBatchKind).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import (
    GroupVars,
    Playbook,
    QuietHours,
    WelcomeMemberVars,
    WelcomeSection,
    private_welcome_variables,
    render_text,
    welcome_variables,
)
from handlers.channels import group_channel
from handlers.core.actions import (
    Action,
    AddToWelcomeBatch,
    DueDecision,
    Note,
    QueueGroupText,
    QueuePrivateText,
)
from handlers.core.context import Context
from handlers.core.events import Event, MemberJoined
from handlers.core.executor import Executor
from handlers.core.playbooks import playbook_for
from scheduler.engine import DueContext, DueKind, Outcome, flushed
from storage.members import memberships_of
from storage.models import Group, Membership, WelcomeBatch

# --- pure decisions ---------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    member_id: str
    name: str
    invitor_name: str | None
    previous_left_at: datetime | None
    welcomed_at: datetime | None
    is_bot: bool = False
    joined_at: datetime | None = None
    still_left: bool = False  # a stale join: the member's leave was recorded after it


def skip_reason(candidate: Candidate, *, now: datetime, rejoin_suppress_days: int) -> str | None:
    """Why this newcomer gets no welcome, or None when they should get one."""
    if candidate.is_bot:
        return "robot accounts are not welcomed"
    if candidate.still_left:
        return "left again before this join was processed"
    if (
        candidate.welcomed_at is not None
        and candidate.joined_at is not None
        and candidate.welcomed_at >= candidate.joined_at
    ):
        return "already welcomed since joining"
    if candidate.previous_left_at is not None and now - candidate.previous_left_at <= timedelta(
        days=rejoin_suppress_days
    ):
        return f"rejoined within {rejoin_suppress_days} days of leaving"
    return None


def batch_due_at(
    *,
    now: datetime,
    batch_window_seconds: int,
    last_sent_at: datetime | None,
    min_interval_seconds: int,
) -> datetime:
    """The batch waits its window, and never goes out sooner than the interval after the
    last batch sent (welcomes to a group; the copilot's digests to a person)."""
    due = now + timedelta(seconds=batch_window_seconds)
    if last_sent_at is not None:
        due = max(due, last_sent_at + timedelta(seconds=min_interval_seconds))
    return due


def defer_for_quiet_hours(
    due: datetime, quiet: QuietHours | None, *, tz: Any, during_quiet_hours: str
) -> datetime:
    if quiet is None or during_quiet_hours != "defer":
        return due
    local = due.astimezone(tz)
    if quiet.contains(local.time()):
        return quiet.next_end(local)
    return due


def group_vars(group: Group) -> GroupVars:
    # The name members see in WeCom; the operator's label only while WeCom has not
    # told us one (internal groups: groupchat/get covers customer groups only).
    name = group.name or group.label or "本群"
    return {"chat_id": group.chat_id, "name": name, "tags": list(group.tags or [])}


def member_vars(member: dict[str, Any]) -> WelcomeMemberVars:
    return {"id": member["id"], "name": member["name"], "invitor_name": member.get("invitor_name")}


def render_welcome(
    members: list[dict[str, Any]], group: Group, welcome: WelcomeSection, now: datetime, tz: Any
) -> str:
    variables = welcome_variables(
        [member_vars(m) for m in members],
        group_vars(group),
        max_names=welcome.max_names,
        today=now.astimezone(tz).date(),
    )
    return render_text(welcome.text, variables)


def candidate_for(
    member_id: str,
    name: str | None,
    invitor_name: str | None,
    row: Membership | None,
    *,
    neutral_name: str,
) -> Candidate:
    return Candidate(
        member_id=member_id,
        # A raw wm… id in a message reads like a bug; a neutral word reads like a welcome.
        name=name or (row.name if row is not None and row.name else None) or neutral_name,
        invitor_name=invitor_name,
        previous_left_at=row.previous_left_at if row else None,
        welcomed_at=row.welcomed_at if row else None,
        is_bot=member_id.startswith("wb"),
        joined_at=row.joined_at if row else None,
        still_left=row is not None and row.left_at is not None,
    )


# --- join side ----------------------------------------------------------------------


async def last_welcome_at(session: AsyncSession, chat_id: str) -> datetime | None:
    result = await session.execute(
        select(func.max(WelcomeBatch.flushed_at)).where(
            WelcomeBatch.chat_id == chat_id, WelcomeBatch.status == "sent"
        )
    )
    value: datetime | None = result.scalar_one_or_none()
    return value


async def on_member_joined(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, MemberJoined) and event.chat_id
    group = await ctx.session.get(Group, event.chat_id)
    if group is None:
        return [Note(f"welcome: no group {event.chat_id}")]
    playbook = playbook_for(ctx.playbooks, group)
    welcome = playbook.welcome
    if welcome is None or not welcome.enabled:
        return [Note(f"welcome off in playbook {playbook.name}")]
    rows = await memberships_of(ctx.session, event.chat_id, [m.id for m in event.members])
    actions: list[Action] = []
    newcomers: list[dict[str, Any]] = []
    for info in event.members:
        candidate = candidate_for(
            info.id,
            info.name,
            info.invitor_name,
            rows.get(info.id),
            neutral_name=playbook.neutral_name,
        )
        reason = skip_reason(
            candidate, now=ctx.now, rejoin_suppress_days=welcome.rejoin_suppress_days
        )
        if reason:
            actions.append(Note(f"no welcome for {info.id}: {reason}"))
            continue
        newcomers.append(
            {"id": info.id, "name": candidate.name, "invitor_name": candidate.invitor_name}
        )
    if newcomers:
        due = batch_due_at(
            now=ctx.now,
            batch_window_seconds=welcome.batch_window_seconds,
            last_sent_at=await last_welcome_at(ctx.session, event.chat_id),
            min_interval_seconds=welcome.min_interval_seconds,
        )
        actions.append(AddToWelcomeBatch(event.chat_id, tuple(newcomers), due))
    return actions


async def open_batch(session: AsyncSession, chat_id: str) -> WelcomeBatch | None:
    # FOR UPDATE (PostgreSQL): if a tick is flushing this batch right now we wait for
    # it, and then see it is no longer open, instead of adding a name to a sent batch.
    result = await session.execute(
        select(WelcomeBatch)
        .where(WelcomeBatch.chat_id == chat_id, WelcomeBatch.status == "open")
        .with_for_update()
    )
    return result.scalar_one_or_none()


async def apply_add_to_batch(action: AddToWelcomeBatch, ctx: Context) -> None:
    batch = await open_batch(ctx.session, action.chat_id)
    if batch is None:
        batch = WelcomeBatch(
            chat_id=action.chat_id,
            status="open",
            members=[],
            opened_at=ctx.now,
            due_at=action.due_at,
        )
        ctx.session.add(batch)
    known = {m["id"] for m in batch.members}
    batch.members = [*batch.members, *(m for m in action.members if m["id"] not in known)]
    await ctx.session.flush()
    ctx.note(f"welcome batch {batch.id} for {action.chat_id}: {len(batch.members)} newcomer(s)")


@dataclass(frozen=True)
class MarkWelcomed(Action):
    chat_id: str
    member_ids: tuple[str, ...]


async def apply_mark_welcomed(action: MarkWelcomed, ctx: Context) -> None:
    rows = await memberships_of(ctx.session, action.chat_id, list(action.member_ids))
    for row in rows.values():
        row.welcomed_at = ctx.now


# --- flush side: a due welcome batch ------------------------------------------------


def decide_flush(
    batch_id: int,
    members: list[dict[str, Any]],
    rows: dict[str, Membership],
    group: Group | None,
    playbook: Playbook | None,
    *,
    at: datetime,
    now: datetime,
    tz: Any,
) -> DueDecision:
    """What a due batch comes to. `at` is the tick's instant (quiet hours are judged
    there, as for touch steps); `now` is the real clock that stamps what is queued."""
    if group is None or group.dismissed_at is not None or playbook is None:
        return DueDecision("skipped", "group is gone")
    welcome = playbook.welcome
    if welcome is None or not welcome.enabled:
        return DueDecision("skipped", f"welcome off in playbook {playbook.name}")
    deferred = defer_for_quiet_hours(
        at, playbook.quiet_hours, tz=tz, during_quiet_hours=welcome.during_quiet_hours
    )
    if deferred > at:
        return DueDecision(
            "deferred",
            f"quiet hours: postponed to {deferred.astimezone(tz).isoformat()}",
            due_again_at=deferred,
        )
    present = [m for m in members if (row := rows.get(m["id"])) is None or row.left_at is None]
    if not present:
        return DueDecision("skipped", "every newcomer already left")
    actions: list[Action] = []
    notes: list[str] = []
    if not group_channel(group.channel_type).capabilities.immediate:
        # WeCom's own welcome template greets customer-group newcomers; an owner-confirmed
        # mass send would come too late to be a welcome.
        notes.append("group welcome is WeCom's welcome template in customer groups")
    else:
        actions.append(
            QueueGroupText(
                group.chat_id,
                render_welcome(present, group, welcome, now, tz),
                origin="welcome",
                key=f"welcome:{batch_id}",
            )
        )
    private = welcome.private
    if private is not None and private.enabled:
        for member in present:
            variables = private_welcome_variables(
                member_vars(member), group_vars(group), today=now.astimezone(tz).date()
            )
            actions.append(
                QueuePrivateText(
                    group.chat_id,
                    member["id"],
                    render_text(private.text, variables),
                    origin="welcome_private",
                    key=f"welcome:{batch_id}:private:{member['id']}",
                )
            )
    actions.append(MarkWelcomed(group.chat_id, tuple(m["id"] for m in present)))
    return DueDecision("sent", "; ".join(notes) or "sent", tuple(actions))


class WelcomeBatchKind(DueKind):
    name = "welcome_batch"
    model = WelcomeBatch
    ready_status = "open"
    claimed_status = "flushing"

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        batch: WelcomeBatch = row
        group = await session.get(Group, batch.chat_id)
        playbook = playbook_for(ctx.playbooks, group) if group is not None else None
        rows = await memberships_of(session, batch.chat_id, [m["id"] for m in batch.members])
        decision = decide_flush(
            batch.id,
            list(batch.members),
            rows,
            group,
            playbook,
            at=ctx.at,
            now=ctx.now,
            tz=ctx.tz,
        )
        if decision.status == "deferred":
            return Outcome("deferred", decision.reason, due_again_at=decision.due_again_at)
        effects = await self.executor.execute_due(
            decision.actions,
            session,
            now=ctx.now,
            tz=ctx.tz,
            playbooks=ctx.playbooks,
            source_id=f"welcome_batch:{batch.id}",
        )
        notes = [decision.reason, *effects.notes]
        status = decision.status if effects.queued or decision.status != "sent" else "skipped"
        note = "; ".join(n for n in notes if n and n != "sent") or decision.reason
        return flushed(batch, status=status, note=note, queued=effects.queued, now=ctx.now)

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "failed", "flushed_at": ctx.now, "note": error}


def register(executor: Executor) -> None:
    executor.register(AddToWelcomeBatch, apply_add_to_batch)
    executor.register(MarkWelcomed, apply_mark_welcomed)
