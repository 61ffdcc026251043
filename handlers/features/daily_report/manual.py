"""The admin's side of the 早报: preview a day (reads only), send today's now (once,
whoever asks first: the engine, this admin or another), and the history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook, PlaybookSet
from bot.config.playbooks.daily_report_section import DailyReportSection
from handlers.core.executor import Executor
from handlers.features.daily_report.blocks import due_at
from handlers.features.daily_report.compose import Blocks, Fitted
from handlers.features.daily_report.send import Delivery, compose_report, produce
from scheduler.engine import Outcome
from storage.db import insert_for
from storage.models import DailyReport, Group

# An admin may send a day's 早报 that is still planned, was skipped or failed.
SENDABLE = ("planned", "skipped", "failed")


class ReportConflict(Exception):
    """The 早报 cannot be sent now; said to the admin as it is."""


@dataclass(frozen=True)
class Preview:
    blocks: Blocks
    fitted: Fitted
    delivery: Delivery
    report: DailyReport | None  # the day's row, if booked


async def find_report(session: AsyncSession, chat_id: str, day: date) -> DailyReport | None:
    found: DailyReport | None = (
        await session.execute(
            select(DailyReport)
            .where(DailyReport.chat_id == chat_id, DailyReport.report_date == day)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    return found


async def preview(
    session: AsyncSession,
    group: Group,
    playbook: Playbook,
    section: DailyReportSection,
    day: date,
    *,
    at: datetime,
    tz: tzinfo,
) -> Preview:
    """What the day's 早报 says (or said: its knowledge point is the one it carried);
    marks nothing and takes nothing from the queue."""
    blocks, fitted, delivery = await compose_report(
        session, group, playbook, section, day, at=at, tz=tz
    )
    return Preview(blocks, fitted, delivery, await find_report(session, group.chat_id, day))


def _state(report: DailyReport, tz: tzinfo) -> str:
    if report.status == "sent":
        who = "an admin" if report.trigger == "admin" else "the schedule"
        when = f" at {report.finished_at.astimezone(tz):%H:%M}" if report.finished_at else ""
        return f"was already sent (by {who}{when})"
    if report.status in ("claimed", "sending"):
        return "is being sent right now"
    return f"is {report.status}"


async def send_now(
    executor: Executor,
    session: AsyncSession,
    group: Group,
    playbook: Playbook,
    section: DailyReportSection,
    day: date,
    *,
    at: datetime,
    now: datetime,
    tz: ZoneInfo,
    playbooks: PlaybookSet,
) -> tuple[DailyReport, Outcome]:
    """Send the day's 早报 now, in the caller's transaction. One UPDATE takes the row
    from a sendable state, so the engine and admins cannot both send it."""
    table = cast(Table, DailyReport.__table__)
    await session.execute(
        insert_for(session)(table)
        .values(
            chat_id=group.chat_id,
            report_date=day,
            status="planned",
            due_at=due_at(day, section.at, tz),
            trigger="admin",
            parts=0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["chat_id", "report_date"])
    )
    taken = await session.execute(
        update(DailyReport)
        .where(
            DailyReport.chat_id == group.chat_id,
            DailyReport.report_date == day,
            DailyReport.status.in_(SENDABLE),
        )
        .values(status="sending")
        .returning(DailyReport.id)
    )
    if taken.scalar_one_or_none() is None:
        existing = await find_report(session, group.chat_id, day)
        assert existing is not None
        raise ReportConflict(f"the 早报 of {day.isoformat()} {_state(existing, tz)}")
    report = await find_report(session, group.chat_id, day)
    assert report is not None
    outcome = await produce(
        executor,
        session,
        report,
        group,
        playbook,
        section,
        at=at,
        now=now,
        tz=tz,
        playbooks=playbooks,
        trigger="admin",
        send_empty=True,
    )
    return report, outcome


async def history(
    session: AsyncSession, chat_id: str, *, since: date, limit: int
) -> list[DailyReport]:
    """The group's 早报 rows from `since` on, newest first."""
    rows = await session.scalars(
        select(DailyReport)
        .where(DailyReport.chat_id == chat_id, DailyReport.report_date >= since)
        .order_by(DailyReport.report_date.desc())
        .limit(limit)
    )
    return list(rows.all())
