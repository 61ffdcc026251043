"""Admin: a group's daily 早报 (handlers/features/daily_report/): preview any day,
send today's now (once: a second send, or the schedule later that day, sends
nothing and a send-now answers 409), and the history of what went out or why not."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from jinja2 import TemplateError
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.api.fields import query_day
from bot.config.playbooks import Playbook
from bot.config.playbooks.daily_report_section import DailyReportSection
from bot.runtime import Runtime
from bot.timefmt import LocalTime
from handlers.core.playbooks import playbook_for
from handlers.features.daily_report.manual import (
    Preview,
    ReportConflict,
    find_report,
    history,
    preview,
    send_now,
)
from handlers.features.daily_report.send import NOTHING_TO_SAY, NotQueued
from storage.models import DailyReport

router = APIRouter(prefix="/admin", tags=["admin: 早报"], dependencies=[AdminDep])

HISTORY_DAYS = 30

DateQuery = Annotated[
    str | None, Query(description="the local day, YYYY-MM-DD (BOT_TIMEZONE); default today")
]


class KnowledgeOut(BaseModel):
    item_id: int
    title: str
    summary: str
    url: str | None


class HighlightOut(BaseModel):
    text: str  # the thread's opening
    replies: int  # member-to-member replies
    starter: str  # who opened it (nickname)


class ResourceOut(BaseModel):
    title: str
    url: str | None


class LeaderOut(BaseModel):
    rank: int
    name: str
    points: int


class BlocksOut(BaseModel):
    knowledge: KnowledgeOut | None
    demand_count: int
    demands: str  # the block as rendered (after any trimming)
    highlights: list[HighlightOut]
    new_resources: list[ResourceOut]
    leaderboard: list[LeaderOut]
    leaderboard_month: str  # 「12月」: the month the leaderboard covers
    sponsored: str | None


class ReportOut(BaseModel):
    chat_id: str
    date: date
    status: str  # planned | claimed | sending | sent | skipped | failed
    trigger: str  # schedule | admin
    due_at: LocalTime
    finished_at: LocalTime | None
    reason: str | None  # why skipped or failed; what was trimmed to fit
    delivery: str | None  # group | mass_send (customer groups) | owner_task
    text: str | None  # what was sent (or handed to the owner)
    parts: int
    outbox_key: str | None
    knowledge_item_id: int | None
    # Customer groups: queued | awaiting_confirmation | confirmed | unconfirmed (the
    # day ended unsent) | failed; WeCom's mass-send msgid; when the owner sent it.
    mass_send_state: str | None
    mass_send_msgid: str | None
    mass_send_confirmed_at: LocalTime | None
    mass_send_checked_at: LocalTime | None  # when WeCom was last asked


class PreviewOut(BaseModel):
    chat_id: str
    date: date
    enabled: bool  # the playbook's daily_report.enabled
    sends_that_day: bool  # enabled and the day is one of the playbook's days
    status: str  # the day's row (see ReportOut), or not_booked
    delivery: str  # group | mass_send | owner_task, as the group's channel allows
    text: str
    parts: list[str]  # as the channel will carry them (at most 2; customer groups 1)
    trimmed: list[str]  # what gave way to fit the parts
    has_news: bool  # false: the schedule skips the day (skip_when_empty)
    would_skip: str | None
    blocks: BlocksOut
    report: ReportOut | None  # the day's row, with the text actually sent


def _day(value: str | None, runtime: Runtime, name: str = "date") -> date:
    today = runtime.clock().astimezone(runtime.settings.tz).date()
    day = query_day(value, name, today)
    assert day is not None
    return day


def _section(playbook: Playbook) -> DailyReportSection:
    if playbook.daily_report is None:
        raise HTTPException(
            status_code=409,
            detail=f"playbook {playbook.name} has no daily_report: this group gets no 早报",
        )
    return playbook.daily_report


def _report_out(report: DailyReport) -> ReportOut:
    return ReportOut(
        chat_id=report.chat_id,
        date=report.report_date,
        status=report.status,
        trigger=report.trigger,
        due_at=report.due_at,
        finished_at=report.finished_at,
        reason=report.reason,
        delivery=report.delivery,
        text=report.text,
        parts=report.parts,
        outbox_key=report.outbox_key,
        knowledge_item_id=report.knowledge_item_id,
        mass_send_state=report.mass_send_state,
        mass_send_msgid=report.mass_send_msgid,
        mass_send_confirmed_at=report.mass_send_confirmed_at,
        mass_send_checked_at=report.mass_send_checked_at,
    )


def _preview_out(chat_id: str, day: date, section: DailyReportSection, seen: Preview) -> PreviewOut:
    blocks = seen.fitted.blocks or seen.blocks
    knowledge = (
        KnowledgeOut(item_id=blocks.knowledge_item_id, **blocks.knowledge)
        if blocks.knowledge is not None and blocks.knowledge_item_id is not None
        else None
    )
    has_news = seen.blocks.has_news()
    return PreviewOut(
        chat_id=chat_id,
        date=day,
        enabled=section.enabled,
        sends_that_day=section.sends_on(day),
        status=seen.report.status if seen.report is not None else "not_booked",
        delivery=seen.delivery.kind,
        text=seen.fitted.text,
        parts=list(seen.fitted.parts),
        trimmed=list(seen.fitted.trimmed),
        has_news=has_news,
        would_skip=NOTHING_TO_SAY if not has_news and section.skip_when_empty else None,
        blocks=BlocksOut(
            knowledge=knowledge,
            demand_count=blocks.demands.count,
            demands=blocks.demands.text(blocks.shown_demands),
            highlights=[HighlightOut(**h) for h in blocks.highlights],
            new_resources=[ResourceOut(**r) for r in blocks.new_resources],
            leaderboard=[LeaderOut(**m) for m in blocks.leaderboard],
            leaderboard_month=blocks.leaderboard_month,
            sponsored=blocks.sponsored,
        ),
        report=_report_out(seen.report) if seen.report is not None else None,
    )


@router.get("/groups/{chat_id}/daily-report", response_model=PreviewOut)
async def get_daily_report(
    chat_id: str, runtime: RuntimeDep, session: SessionDep, date: DateQuery = None
) -> PreviewOut:
    """What the day's 早报 says (or said), split into the parts the group's channel
    carries, block by block; marks nothing and takes no knowledge point from the queue.
    409 when the group's playbook has no daily_report."""
    group = await known_group(session, chat_id)
    day = _day(date, runtime)
    playbook = playbook_for(runtime.playbook_set, group)
    section = _section(playbook)
    try:
        seen = await preview(
            session, group, playbook, section, day, at=runtime.clock(), tz=runtime.settings.tz
        )
    except TemplateError as exc:
        raise HTTPException(
            status_code=409, detail=f"daily_report.text fails on this day's data: {exc}"
        ) from None
    return _preview_out(chat_id, day, section, seen)


@router.post("/groups/{chat_id}/daily-report", response_model=ReportOut)
async def post_daily_report(
    chat_id: str, runtime: RuntimeDep, session: SessionDep, date: DateQuery = None
) -> ReportOut:
    """Send today's 早报 now, even on a day the playbook skips or with nothing new.
    Once: when the day's 早报 was already sent (by the schedule or an admin) or is being
    sent, 409 says so and nothing is sent; a skipped or failed day can be sent."""
    group = await known_group(session, chat_id)
    day = _day(date, runtime)
    today = runtime.clock().astimezone(runtime.settings.tz).date()
    if day != today:
        raise HTTPException(
            status_code=422,
            detail=f"only today's 早报 ({today.isoformat()}) can be sent now, not {day}",
        )
    playbook = playbook_for(runtime.playbook_set, group)
    section = _section(playbook)
    if not section.enabled:
        raise HTTPException(
            status_code=409, detail=f"daily_report is switched off in playbook {playbook.name}"
        )
    now = runtime.clock()
    try:
        await send_now(
            runtime.executor,
            session,
            group,
            playbook,
            section,
            day,
            at=now,
            now=now,
            tz=runtime.settings.tz,
            playbooks=runtime.playbook_set,
        )
    except ReportConflict as exc:
        await session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except NotQueued as exc:
        await session.rollback()
        raise HTTPException(status_code=409, detail=f"nothing could be sent: {exc}") from None
    except TemplateError as exc:
        await session.rollback()
        raise HTTPException(
            status_code=409, detail=f"daily_report.text fails on today's data: {exc}"
        ) from None
    except IntegrityError:
        # The outbox key is taken: the 早报 is already queued (the last line of defence).
        await session.rollback()
        raise HTTPException(
            status_code=409, detail=f"the 早报 of {day.isoformat()} was already queued"
        ) from None
    await session.commit()
    runtime.dispatcher.wake()
    found = await find_report(session, chat_id, day)
    assert found is not None
    return _report_out(found)


@router.get("/groups/{chat_id}/daily-reports", response_model=list[ReportOut])
async def get_daily_reports(
    chat_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    since: Annotated[
        str | None,
        Query(description=f"first local day, YYYY-MM-DD; default {HISTORY_DAYS} days ago"),
    ] = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[ReportOut]:
    """The group's 早报 day by day, newest first: status, why skipped or failed, and
    the text that went out."""
    await known_group(session, chat_id)
    first = (
        _day(since, runtime, "since")
        if since is not None
        else _day(None, runtime) - timedelta(days=HISTORY_DAYS)
    )
    return [_report_out(r) for r in await history(session, chat_id, since=first, limit=limit)]
