"""The 早报 as due work (scheduler/engine.py): `prepare` books today's row for every
group whose playbook sends one today, at the playbook's `at`; the engine claims due
rows (SKIP LOCKED on PostgreSQL) and `run` sends or skips each in its savepoint.

Exactly once per group and day: the row is unique per (group, day), a claimed row
is no longer `planned`, and the outbox key `daily_report:{chat_id}:{date}` is
unique, so `tick --at` twice for one morning, a restart or several replicas send
one 早报. A run judged later than `at` + `grace_minutes`, or on another day than
the row's, skips it with the reason: a late start never sends a stale 早报.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import PlaybookSet
from bot.config.playbooks.daily_report_section import DailyReportSection
from bot.config.playbooks.fields import hhmm
from handlers.core.executor import Executor
from handlers.core.playbooks import playbook_for
from handlers.features.daily_report.blocks import due_at
from handlers.features.daily_report.send import produce, record_skipped
from scheduler.engine import DueContext, DueKind, Outcome
from storage.db import insert_for
from storage.models import DailyReport, Group

SCAN_SECONDS = 600  # how often groups are looked over for today's 早报


def skip_reason(
    report_date: date,
    planned_at: datetime,
    group: Group | None,
    section: DailyReportSection | None,
    *,
    at: datetime,
    tz: tzinfo,
) -> str | None:
    """Why the row must not be sent when run at `at`, or None to send it."""
    if group is None or group.dismissed_at is not None:
        return "the group is gone"
    if section is None:
        return "the group's playbook has no daily_report any more"
    if not section.enabled:
        return "daily_report is switched off in the group's playbook"
    if not section.sends_on(report_date):
        return f"{report_date:%A} is not one of the playbook's days any more"
    local_day = at.astimezone(tz).date()
    if local_day != report_date:
        return f"it is {local_day.isoformat()} now: a 早报 goes out on its own day only"
    grace = timedelta(minutes=section.grace_minutes)
    if at > planned_at + grace:
        late = at.astimezone(tz)
        return (
            f"late: reached at {late:%H:%M}, more than {section.grace_minutes} minutes after "
            f"{hhmm(planned_at.astimezone(tz).time())}"
        )
    return None


def section_of(playbooks: PlaybookSet, group: Group | None) -> DailyReportSection | None:
    if group is None:
        return None
    return playbook_for(playbooks, group).daily_report


async def book_reports(
    session: AsyncSession, playbooks: PlaybookSet, *, at: datetime, tz: tzinfo
) -> int:
    """Put today's 早报 on the books for every group whose playbook sends one today
    (a row already there is left alone); returns how many were added."""
    today = at.astimezone(tz).date()
    booked = set(
        (
            await session.execute(
                select(DailyReport.chat_id).where(DailyReport.report_date == today)
            )
        ).scalars()
    )
    rows = (await session.execute(select(Group).where(Group.dismissed_at.is_(None)))).scalars()
    values: list[dict[str, Any]] = []
    for group in rows:
        if group.chat_id in booked:
            continue
        section = section_of(playbooks, group)
        if section is None or not section.sends_on(today):
            continue
        values.append(
            {
                "chat_id": group.chat_id,
                "report_date": today,
                "status": "planned",
                "due_at": due_at(today, section.at, tz),
                "trigger": "schedule",
                "parts": 0,
                "created_at": at,
            }
        )
    if values:
        table = cast(Table, DailyReport.__table__)
        await session.execute(
            insert_for(session)(table).on_conflict_do_nothing(
                index_elements=["chat_id", "report_date"]
            ),
            values,
        )
    return len(values)


class DailyReportKind(DueKind):
    name = "daily_report"
    model = DailyReport
    ready_status = "planned"
    claimed_status = "claimed"
    # Member-facing: a `tick --at` rehearses the morning it names.

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._scanned: tuple[int, date, int] | None = None

    async def prepare(self, session: AsyncSession, ctx: DueContext) -> None:
        # Every few minutes (and at once after a playbook reload), not every tick.
        day = ctx.at.astimezone(ctx.tz).date()
        bucket = (int(ctx.at.timestamp()) // SCAN_SECONDS, day, id(ctx.playbooks))
        if bucket == self._scanned:
            return
        await book_reports(session, ctx.playbooks, at=ctx.at, tz=ctx.tz)
        self._scanned = bucket

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        report: DailyReport = row
        group = await session.get(Group, report.chat_id)
        section = section_of(ctx.playbooks, group)
        why = skip_reason(report.report_date, report.due_at, group, section, at=ctx.at, tz=ctx.tz)
        if why is not None:
            return record_skipped(report, why, now=ctx.now)
        assert group is not None and section is not None
        return await produce(
            self.executor,
            session,
            report,
            group,
            playbook_for(ctx.playbooks, group),
            section,
            at=ctx.at,
            now=ctx.now,
            tz=ctx.tz,
            playbooks=ctx.playbooks,
            trigger="schedule",
        )

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "failed", "reason": error, "finished_at": ctx.now}
