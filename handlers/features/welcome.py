"""Humane welcomes: one group message per batch of newcomers, never one @ per person.

Pure decisions first (who gets welcomed, when the batch goes out, how names read),
then the thin I/O: a join adds newcomers to the group's open batch; the scheduler
tick flushes due batches into the outbox.
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
    PlaybookSet,
    QuietHours,
    WelcomeMemberVars,
    WelcomeSection,
    private_welcome_variables,
    render_text,
    welcome_variables,
)
from handlers.channels import (
    CannotPost,
    compose_group_text,
    compose_private_text,
    customer_sender,
)
from handlers.core.context import Context
from handlers.core.events import Event, MemberJoined
from handlers.features.membership import get_or_create_group
from storage import outbox
from storage.members import get_membership, memberships_of
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
    last_welcome_at: datetime | None,
    min_interval_seconds: int,
) -> datetime:
    """The batch waits its window, and never goes out sooner than the interval allows."""
    due = now + timedelta(seconds=batch_window_seconds)
    if last_welcome_at is not None:
        due = max(due, last_welcome_at + timedelta(seconds=min_interval_seconds))
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
    return {"chat_id": group.chat_id, "name": group.name or "本群", "tags": list(group.tags or [])}


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


# --- join side ----------------------------------------------------------------------


async def last_welcome_at(session: AsyncSession, chat_id: str) -> datetime | None:
    result = await session.execute(
        select(func.max(WelcomeBatch.flushed_at)).where(
            WelcomeBatch.chat_id == chat_id, WelcomeBatch.status == "sent"
        )
    )
    value: datetime | None = result.scalar_one_or_none()
    return value


async def open_batch(session: AsyncSession, chat_id: str) -> WelcomeBatch | None:
    # FOR UPDATE (PostgreSQL): if a tick is flushing this batch right now we wait for
    # it, and then see it is no longer open, instead of adding a name to a sent batch.
    result = await session.execute(
        select(WelcomeBatch)
        .where(WelcomeBatch.chat_id == chat_id, WelcomeBatch.status == "open")
        .with_for_update()
    )
    return result.scalar_one_or_none()


def playbook_for(playbooks: PlaybookSet, group: Group) -> Playbook:
    return playbooks.for_group(group.chat_id, list(group.tags or []))


async def on_member_joined(event: Event, ctx: Context) -> str | None:
    assert isinstance(event, MemberJoined) and event.chat_id
    group = await get_or_create_group(ctx, event.chat_id)
    playbook = playbook_for(ctx.playbooks, group)
    welcome = playbook.welcome
    if welcome is None or not welcome.enabled:
        ctx.note(f"welcome off in playbook {playbook.name}")
        return None
    newcomers: list[dict[str, Any]] = []
    for info in event.members:
        membership = await get_membership(ctx.session, event.chat_id, info.id)
        candidate = Candidate(
            member_id=info.id,
            name=info.display_name,
            invitor_name=info.invitor_name,
            previous_left_at=membership.previous_left_at if membership else None,
            welcomed_at=membership.welcomed_at if membership else None,
            is_bot=info.id.startswith("wb"),
            joined_at=membership.joined_at if membership else None,
            still_left=membership is not None and membership.left_at is not None,
        )
        reason = skip_reason(
            candidate, now=ctx.now, rejoin_suppress_days=welcome.rejoin_suppress_days
        )
        if reason:
            ctx.note(f"no welcome for {info.id}: {reason}")
            continue
        newcomers.append(
            {"id": info.id, "name": candidate.name, "invitor_name": candidate.invitor_name}
        )
    if not newcomers:
        return None
    batch = await open_batch(ctx.session, event.chat_id)
    if batch is None:
        due = batch_due_at(
            now=ctx.now,
            batch_window_seconds=welcome.batch_window_seconds,
            last_welcome_at=await last_welcome_at(ctx.session, event.chat_id),
            min_interval_seconds=welcome.min_interval_seconds,
        )
        batch = WelcomeBatch(
            chat_id=event.chat_id, status="open", members=[], opened_at=ctx.now, due_at=due
        )
        ctx.session.add(batch)
    known = {m["id"] for m in batch.members}
    batch.members = [*batch.members, *(m for m in newcomers if m["id"] not in known)]
    await ctx.session.flush()
    ctx.note(f"welcome batch {batch.id} for {event.chat_id}: {len(batch.members)} newcomer(s)")
    return None


# --- flush side (called by the scheduler tick) ---------------------------------------


@dataclass(frozen=True)
class FlushResult:
    status: str  # sent | skipped | deferred
    note: str
    outbox_ids: tuple[int, ...] = ()


async def flush_batch(
    session: AsyncSession,
    batch: WelcomeBatch,
    *,
    playbooks: PlaybookSet,
    now: datetime,
    tz: Any,
    at: datetime | None = None,
) -> FlushResult:
    """Queue the batch's welcome. `at` is the tick's instant (quiet hours are judged
    there, as for touch steps); `now` is the real clock that stamps what is queued."""
    group = await session.get(Group, batch.chat_id)
    if group is None or group.dismissed_at is not None:
        return _close(batch, now, "skipped", "group is gone")
    playbook = playbook_for(playbooks, group)
    welcome = playbook.welcome
    if welcome is None or not welcome.enabled:
        return _close(batch, now, "skipped", f"welcome off in playbook {playbook.name}")
    instant = at or now
    deferred = defer_for_quiet_hours(
        instant, playbook.quiet_hours, tz=tz, during_quiet_hours=welcome.during_quiet_hours
    )
    if deferred > instant:
        batch.due_at = deferred
        return FlushResult("deferred", f"quiet hours: postponed to {deferred.isoformat()}")
    # One query for the batch's rows; they decide who is still here, how each is
    # messaged privately, and get welcomed_at.
    rows = await memberships_of(session, batch.chat_id, [m["id"] for m in batch.members])
    members = [
        m for m in batch.members if (row := rows.get(m["id"])) is None or row.left_at is None
    ]
    if not members:
        return _close(batch, now, "skipped", "every newcomer already left")
    ids: list[int] = []
    notes: list[str] = []
    if group.channel_type == "customer_group":
        # WeCom's own welcome template greets customer-group newcomers; posting here
        # would need the owner to confirm a mass send, too late to be a welcome.
        notes.append("group welcome is WeCom's welcome template in customer groups")
    else:
        try:
            text = render_welcome(members, group, welcome, now, tz)
            for message in compose_group_text(
                chat_id=group.chat_id,
                channel_type=group.channel_type,
                channel_config=dict(group.channel_config or {}),
                owner=group.owner,
                text=text,
                origin="welcome",
                dedup_key=f"welcome:{batch.id}",
            ):
                ids.append((await outbox.enqueue(session, message, now=now)).id)
        except CannotPost as exc:
            notes.append(f"group welcome not posted: {exc}")
    ids.extend(
        await _private_welcomes(session, batch, group, welcome, members, rows, now, tz, notes)
    )
    for member in members:
        if (row := rows.get(member["id"])) is not None:
            row.welcomed_at = now
    result = _close(batch, now, "sent" if ids else "skipped", "; ".join(notes) or "sent")
    if ids:
        batch.outbox_id = ids[0]
    return FlushResult(result.status, result.note, tuple(ids))


def _close(batch: WelcomeBatch, now: datetime, status: str, note: str) -> FlushResult:
    batch.status = status
    batch.flushed_at = now
    batch.note = note
    return FlushResult(status, note)


async def _private_welcomes(
    session: AsyncSession,
    batch: WelcomeBatch,
    group: Group,
    welcome: WelcomeSection,
    members: list[dict[str, Any]],
    rows: dict[str, Membership],
    now: datetime,
    tz: Any,
    notes: list[str],
) -> list[int]:
    private = welcome.private
    if private is None or not private.enabled:
        return []
    ids: list[int] = []
    sender = customer_sender(dict(group.channel_config or {}), group.owner)
    for member in members:
        row = rows.get(member["id"])
        variables = private_welcome_variables(
            member_vars(member), group_vars(group), today=now.astimezone(tz).date()
        )
        try:
            message = compose_private_text(
                member_id=member["id"],
                member_type=row.member_type if row else None,
                sender=sender,
                text=render_text(private.text, variables),
                origin="welcome_private",
                chat_id=group.chat_id,
                dedup_key=f"welcome:{batch.id}:private:{member['id']}",
            )
        except CannotPost as exc:
            notes.append(f"private welcome to {member['id']} not sent: {exc}")
            continue
        ids.append((await outbox.enqueue(session, message, now=now)).id)
    return ids
