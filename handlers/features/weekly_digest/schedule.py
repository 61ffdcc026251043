"""The weekly 群刊 as due work: one `weekly_digests` row per group and ISO week (unique),
booked for the playbook's weekday and time of the week after, sent once.

`WeeklyDigestKind.prepare` books last week's 群刊 for every group whose playbook has
a `weekly_digest` section, every few minutes (and at once after a playbook reload); a
row already there is left alone. When a row comes due it is claimed like any due
item, so two replicas, two `tick --at` runs or a restart send it once; the outbox
key `weekly_digest:{chat_id}:{week}` holds even against an admin's send-now racing
the engine. A late start sends on the due day itself, and skips with the reason
after it; a week with fewer threads than `min_threads` is skipped with the reason
too. Where the channel cannot post at once (customer groups) the owner gets the
text ready to paste.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook, PlaybookSet
from bot.config.playbooks.weekly_digest_section import WeeklyDigestSection
from handlers.channels import group_channel
from handlers.core.actions import Action
from handlers.core.executor import Executor
from handlers.core.playbooks import playbook_for
from handlers.features.health.read import Week, parse_week
from handlers.features.highlights import best_threads, new_resources
from handlers.features.star.vote import deliver
from handlers.features.weekly_digest.compose import (
    ORIGIN,
    Draft,
    compose,
    digest_key,
    due_at,
    overdue,
    owner_task_summary,
    week_before,
)
from handlers.features.welcome import group_vars
from scheduler.engine import DueContext, DueKind, Outcome
from storage.db import insert_for
from storage.models import Group, WeeklyDigest

SCAN_SECONDS = 600  # how often groups are looked at for a 群刊 to book
# An admin may send a week the engine has not sent: still booked, skipped or failed.
SENDABLE = ("scheduled", "skipped", "failed")


def enabled_digest(playbook: Playbook | None) -> WeeklyDigestSection | None:
    section = playbook.weekly_digest if playbook is not None else None
    return section if section is not None and section.enabled else None


def section_or_default(playbook: Playbook) -> WeeklyDigestSection:
    """The playbook's section, or the defaults (a preview for a group without one)."""
    return playbook.weekly_digest or WeeklyDigestSection()


async def book(session: AsyncSession, playbooks: PlaybookSet, *, at: datetime, tz: tzinfo) -> int:
    """Put last week's 群刊 on the books for every group whose playbook wants one (a
    row already there is left alone); returns how many rows it wanted. A row booked
    after its day (the service was down) is run at once and skipped as overdue, so the
    reason is on record; a group registered only after the 群刊 was due gets none."""
    week = week_before(at, tz)
    rows = (
        await session.execute(
            select(Group.chat_id, Group.tags, Group.created_at).where(Group.dismissed_at.is_(None))
        )
    ).all()
    values: list[dict[str, Any]] = []
    for chat_id, tags, created_at in rows:
        section = enabled_digest(playbooks.for_group(chat_id, list(tags or [])))
        due = due_at(week, section, tz) if section is not None else None
        if due is not None and created_at <= due:
            values.append(
                {
                    "chat_id": chat_id,
                    "week": week.label,
                    "status": "scheduled",
                    "due_at": due,
                    "threads": [],
                    "resources": [],
                    "created_at": at,
                }
            )
    if values:
        table = cast(Table, WeeklyDigest.__table__)
        await session.execute(
            insert_for(session)(table).on_conflict_do_nothing(index_elements=["chat_id", "week"]),
            values,
        )
    return len(values)


async def draft_for(
    session: AsyncSession,
    group: Group,
    playbook: Playbook,
    section: WeeklyDigestSection,
    week: Week,
    *,
    at: datetime,
    tz: tzinfo,
) -> Draft:
    """Read the week's highlights and compose its 群刊 (marks nothing)."""
    threads = await best_threads(
        session, group.chat_id, week.start, week.end, section.top_threads, playbook=playbook
    )
    resources = await new_resources(
        session, group.chat_id, week.start, week.end, section.top_resources, playbook=playbook
    )
    return compose(
        section,
        week,
        group_vars(group),
        threads,
        resources,
        today=at.astimezone(tz).date(),
        tz=tz,
    )


def deliver_draft(group: Group, playbook: Playbook, draft: Draft) -> list[Action]:
    """The group post, or the owner's task with the text ready to paste."""
    assert draft.text is not None
    return [
        deliver(
            group,
            playbook,
            origin=ORIGIN,
            task=owner_task_summary(draft.week),
            text=draft.text,
            key=digest_key(group.chat_id, draft.week.label),
        )
    ]


def record(row: WeeklyDigest, draft: Draft, group: Group, *, at: datetime, tz: tzinfo) -> None:
    """What the row keeps of a 群刊 sent or skipped."""
    row.threads = draft.threads_json(tz)
    row.resources = draft.resources_json(tz)
    row.finished_at = at
    if draft.text is None:
        row.status, row.note = "skipped", draft.skip
        return
    row.status, row.text = "sent", draft.text
    immediate = group_channel(group.channel_type).capabilities.immediate
    row.delivery = "group" if immediate else "owner_task"


async def carry_out(
    executor: Executor,
    actions: list[Action],
    session: AsyncSession,
    ctx: DueContext,
    row: WeeklyDigest,
) -> Outcome:
    effects = await executor.execute_due(
        actions,
        session,
        now=ctx.now,
        tz=ctx.tz,
        playbooks=ctx.playbooks,
        source_id=f"{ORIGIN}:{row.id}",
    )
    note = "; ".join(
        [f"{len(row.threads)} thread(s), {len(row.resources)} resource(s)", *effects.notes]
    )
    row.note = note
    return Outcome(row.status, note, tuple(effects.queued))


class WeeklyDigestKind(DueKind):
    name = "weekly_digest"
    model = WeeklyDigest
    ready_status = "scheduled"
    claimed_status = "sending"

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._scanned: tuple[int, int] | None = None

    async def prepare(self, session: AsyncSession, ctx: DueContext) -> None:
        # Every few minutes (and at once after a playbook reload), not every tick.
        bucket = (int(ctx.at.timestamp()) // SCAN_SECONDS, id(ctx.playbooks))
        if bucket == self._scanned:
            return
        await book(session, ctx.playbooks, at=ctx.at, tz=ctx.tz)
        self._scanned = bucket

    def _skip(self, row: WeeklyDigest, why: str, ctx: DueContext) -> Outcome:
        row.status, row.note, row.finished_at = "skipped", why, ctx.at
        return Outcome("skipped", why)

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        digest: WeeklyDigest = row
        group = await session.get(Group, digest.chat_id)
        playbook = playbook_for(ctx.playbooks, group) if group is not None else None
        section = enabled_digest(playbook)
        if group is None or group.dismissed_at is not None:
            return self._skip(digest, "the group is gone", ctx)
        if playbook is None or section is None:
            return self._skip(digest, "the group's playbook has no weekly_digest any more", ctx)
        week = parse_week(digest.week, ctx.tz)
        # The playbook moved the day or time later since the row was booked: wait for it.
        wanted = due_at(week, section, ctx.tz)
        if wanted > digest.due_at + timedelta(minutes=1) and wanted > ctx.at:
            return Outcome("deferred", f"moved to {wanted.isoformat()}", due_again_at=wanted)
        late = overdue(digest.due_at, ctx.at, ctx.tz)
        if late is not None:
            return self._skip(digest, late, ctx)
        draft = await draft_for(session, group, playbook, section, week, at=ctx.at, tz=ctx.tz)
        record(digest, draft, group, at=ctx.at, tz=ctx.tz)
        if draft.text is None:
            return Outcome("skipped", digest.note or "")
        return await carry_out(
            self.executor, deliver_draft(group, playbook, draft), session, ctx, digest
        )

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "failed", "note": error, "finished_at": ctx.at}


# --- the admin API: preview and send now ----------------------------------------------


class DigestConflict(Exception):
    """The 群刊 cannot be sent now; said to the admin as it is."""


async def find_digest(session: AsyncSession, chat_id: str, week: str) -> WeeklyDigest | None:
    found: WeeklyDigest | None = (
        await session.execute(
            select(WeeklyDigest)
            .where(WeeklyDigest.chat_id == chat_id, WeeklyDigest.week == week)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    return found


def _state(row: WeeklyDigest) -> str:
    return {
        "sent": "was already sent",
        "sending": "is being sent right now",
    }.get(row.status, f"is {row.status}")


@dataclass(frozen=True)
class SentNow:
    row: WeeklyDigest
    actions: list[Action]


async def send_now(
    session: AsyncSession,
    group: Group,
    playbook: Playbook,
    week: Week,
    *,
    at: datetime,
    tz: tzinfo,
) -> SentNow:
    """Send the week's 群刊 now, once: the row moves to `sending` in one UPDATE only
    from a state that has not sent it, so the engine and an admin (or two admins)
    cannot both send it. Refused (DigestConflict, nothing changed once the caller rolls
    back) when the playbook has no 群刊, it was sent, or it is too quiet. The caller
    makes sure the week is over."""
    section = enabled_digest(playbook)
    if section is None:
        raise DigestConflict(
            f"playbook {playbook.name} has no weekly_digest section (or it is disabled)"
        )
    table = cast(Table, WeeklyDigest.__table__)
    await session.execute(
        insert_for(session)(table)
        .values(
            chat_id=group.chat_id,
            week=week.label,
            status="scheduled",
            due_at=at,
            threads=[],
            resources=[],
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["chat_id", "week"])
    )
    taken = await session.execute(
        update(WeeklyDigest)
        .where(
            WeeklyDigest.chat_id == group.chat_id,
            WeeklyDigest.week == week.label,
            WeeklyDigest.status.in_(SENDABLE),
        )
        .values(status="sending")
        .returning(WeeklyDigest.id)
    )
    if taken.scalar_one_or_none() is None:
        current = await find_digest(session, group.chat_id, week.label)
        assert current is not None
        raise DigestConflict(f"the 群刊 of {week.label} {_state(current)}")
    row = await find_digest(session, group.chat_id, week.label)
    assert row is not None
    draft = await draft_for(session, group, playbook, section, week, at=at, tz=tz)
    if draft.text is None:
        raise DigestConflict(f"the 群刊 of {week.label} has nothing to send: {draft.skip}")
    record(row, draft, group, at=at, tz=tz)
    row.note = (
        f"sent now by an admin: {len(row.threads)} thread(s), {len(row.resources)} resource(s)"
    )
    return SentNow(row, deliver_draft(group, playbook, draft))
