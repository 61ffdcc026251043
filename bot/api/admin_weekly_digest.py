"""Admin: a group's weekly 群刊 (handlers/features/weekly_digest): preview a week's
(marks nothing) and send it now, once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from bot.api.admin_health import chosen_week
from bot.api.deps import AdminDep, RuntimeDep, SessionDep, known_group
from bot.runtime import Runtime
from bot.timefmt import LocalTime
from handlers.core.playbooks import playbook_for
from handlers.features.health.read import Week
from handlers.features.weekly_digest.compose import Draft, due_at, week_before, week_words
from handlers.features.weekly_digest.schedule import (
    DigestConflict,
    draft_for,
    enabled_digest,
    find_digest,
    section_or_default,
    send_now,
)
from storage.models import WeeklyDigest

router = APIRouter(prefix="/admin", tags=["admin: 群刊"], dependencies=[AdminDep])

WeekQuery = Annotated[
    str | None,
    Query(description="the ISO week looked back on, YYYY-Www (BOT_TIMEZONE); default last week"),
]


class ThreadOut(BaseModel):
    msg_id: str | None
    starter_id: str  # for operators; the text names the starter by nickname
    name: str
    text: str
    replies: int  # member-to-member replies
    participants: int
    essence: int  # messages marked 精华
    question: bool
    answered: bool  # a question a member (not a host) answered
    started_at: LocalTime


class ResourceOut(BaseModel):
    kind: str  # library | essence
    title: str
    url: str | None
    summary: str
    item_id: int | None
    msg_id: str | None
    author_id: str | None
    author: str | None
    at: LocalTime  # became available / was marked


class DigestOut(BaseModel):
    chat_id: str
    week: str  # 2026-W49
    label: str  # 第49周（11月30日–12月6日）
    start: LocalTime
    end: LocalTime
    enabled: bool  # the group's playbook sends a 群刊 (a preview uses the defaults if not)
    # the week's row: scheduled | sending | sent | skipped | failed; None: not booked yet
    status: str | None
    due_at: LocalTime | None  # when it goes (or went) out
    note: str | None  # why skipped or failed; what was queued
    delivery: str | None  # group | owner_task, once sent
    would_send: bool  # the preview has enough threads (min_threads)
    skip_reason: str | None
    text: str | None  # the preview's text (POST: the text sent)
    sent_text: str | None  # the text sent, once sent
    threads: list[ThreadOut]
    resources: list[ResourceOut]


def last_week(runtime: Runtime, label: str | None) -> Week:
    """The 群刊's week: the one named, else the last whole week."""
    return chosen_week(runtime, label, week_before(runtime.clock(), runtime.settings.tz))


def _view(
    chat_id: str,
    week: Week,
    draft: Draft,
    row: WeeklyDigest | None,
    *,
    enabled: bool,
    planned: datetime | None,
    runtime: Runtime,
) -> DigestOut:
    tz = runtime.settings.tz
    return DigestOut(
        chat_id=chat_id,
        week=week.label,
        label=week_words(week),
        start=week.start,
        end=week.end,
        enabled=enabled,
        status=row.status if row is not None else None,
        due_at=row.due_at if row is not None else planned,
        note=row.note if row is not None else None,
        delivery=row.delivery if row is not None else None,
        would_send=draft.text is not None,
        skip_reason=draft.skip,
        text=draft.text,
        sent_text=row.text if row is not None and row.status == "sent" else None,
        threads=[ThreadOut.model_validate(t) for t in draft.threads_json(tz)],
        resources=[ResourceOut.model_validate(r) for r in draft.resources_json(tz)],
    )


@router.get("/groups/{chat_id}/weekly-digest", response_model=DigestOut)
async def preview(
    chat_id: str, runtime: RuntimeDep, session: SessionDep, week: WeekQuery = None
) -> DigestOut:
    """The week's 群刊 as it would be sent now (threads, resources, text) and its row's
    state. Marks nothing: a later scheduled send is unaffected."""
    group = await known_group(session, chat_id)
    chosen = last_week(runtime, week)
    tz = runtime.settings.tz
    playbook = playbook_for(runtime.playbook_set, group)
    section = section_or_default(playbook)
    draft = await draft_for(session, group, playbook, section, chosen, at=runtime.clock(), tz=tz)
    row = await find_digest(session, chat_id, chosen.label)
    return _view(
        chat_id,
        chosen,
        draft,
        row,
        enabled=enabled_digest(playbook) is not None,
        planned=due_at(chosen, section, tz),
        runtime=runtime,
    )


@router.post("/groups/{chat_id}/weekly-digest", response_model=DigestOut)
async def post_send_now(
    chat_id: str, runtime: RuntimeDep, session: SessionDep, week: WeekQuery = None
) -> DigestOut:
    """Send the week's 群刊 now, once (the scheduled send then finds it sent): 409 when
    it was sent already, the playbook has no 群刊, or the week had fewer threads than
    `min_threads`; 422 for a week that is not over."""
    group = await known_group(session, chat_id)
    chosen = last_week(runtime, week)
    now = runtime.clock()
    tz = runtime.settings.tz
    if now < chosen.end:
        raise HTTPException(
            status_code=422,
            detail=f"{chosen.label} is not over yet (it ends "
            f"{chosen.end.astimezone(tz):%Y-%m-%d %H:%M}): only a past week can be sent",
        )
    playbook = playbook_for(runtime.playbook_set, group)
    try:
        sent = await send_now(session, group, playbook, chosen, at=now, tz=tz)
    except DigestConflict as exc:
        await session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from None
    ctx = await runtime.apply_actions(
        session, sent.actions, source_id=f"weekly_digest:{sent.row.id}"
    )
    row = await find_digest(session, chat_id, chosen.label)
    assert row is not None
    if ctx.notes:
        row.note = "; ".join([row.note or "", *ctx.notes])
        await session.commit()
    return _sent_view(row, chosen, planned=due_at(chosen, section_or_default(playbook), tz))


def _sent_view(row: WeeklyDigest, week: Week, *, planned: datetime) -> DigestOut:
    return DigestOut(
        chat_id=row.chat_id,
        week=week.label,
        label=week_words(week),
        start=week.start,
        end=week.end,
        enabled=True,
        status=row.status,
        due_at=row.due_at or planned,
        note=row.note,
        delivery=row.delivery,
        would_send=True,
        skip_reason=None,
        text=row.text,
        sent_text=row.text,
        threads=[ThreadOut.model_validate(t) for t in row.threads],
        resources=[ResourceOut.model_validate(r) for r in row.resources],
    )
