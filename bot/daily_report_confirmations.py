"""Whether the owner sent a customer group's 早报 mass send, asked of WeCom.

For each day's row `awaiting_confirmation` with a msgid, at most every CHECK_EVERY,
`get_groupmsg_send_result` tells what the sender did with it; the pure
`confirmation_outcome` (handlers/features/daily_report/mass_send.py) decides the
row's new state. WeCom is called outside any transaction; each row's answer is
written in its own short one, only if the row still waits (an admin or another
replica may have moved it). An error from WeCom leaves the row as it is, logged,
and it is asked again after CHECK_EVERY.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.wecom.client import WeComClient
from handlers.channels import customer_sender
from handlers.features.daily_report.mass_send import (
    AWAITING,
    chat_status,
    confirmation_outcome,
    day_end,
)
from storage.models import DailyReport, Group

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(minutes=10)  # per row: WeCom's API is not a place to spin on
BATCH = 100
MAX_PAGES = 20  # a group send has one row per chat; a runaway cursor must end


@dataclass(frozen=True)
class Waiting:
    report_id: int
    chat_id: str
    day: date
    msgid: str
    sender: str


async def due_rows(session: AsyncSession, *, now: datetime) -> list[Waiting]:
    """Rows to ask about now; the sender falls back to the group's (rows copied before
    the sender was recorded)."""
    rows = await session.execute(
        select(DailyReport, Group.channel_config, Group.owner)
        .outerjoin(Group, Group.chat_id == DailyReport.chat_id)
        .where(
            DailyReport.mass_send_state == AWAITING,
            DailyReport.mass_send_msgid.is_not(None),
            or_(
                DailyReport.mass_send_checked_at.is_(None),
                DailyReport.mass_send_checked_at <= now - CHECK_EVERY,
            ),
        )
        .order_by(DailyReport.id)
        .limit(BATCH)
    )
    waiting = []
    for report, config, owner in rows.all():
        sender = report.mass_send_sender or customer_sender(dict(config or {}), owner)
        msgid = report.mass_send_msgid
        if sender and msgid:
            waiting.append(Waiting(report.id, report.chat_id, report.report_date, msgid, sender))
    return waiting


async def send_list(client: WeComClient, msgid: str, userid: str, chat_id: str) -> list[Any]:
    """The sender's rows for the mass send, paged until the chat's row or the end."""
    rows: list[Any] = []
    cursor = ""
    for _ in range(MAX_PAGES):
        answer = await client.get_groupmsg_send_result(msgid, userid, cursor)
        page = answer.get("send_list")
        rows += page if isinstance(page, list) else []
        cursor = str(answer.get("next_cursor") or "")
        if not cursor or any(isinstance(r, dict) and r.get("chat_id") == chat_id for r in rows):
            break
    return [r for r in rows if isinstance(r, dict)]


async def follow_confirmations(
    sessions: async_sessionmaker[AsyncSession],
    client: WeComClient,
    *,
    now: datetime,
    tz: tzinfo,
) -> dict[str, int]:
    """Ask WeCom about every due row; returns how many rows went to each new state
    (and `errors`). Raises only when the database does."""
    async with sessions() as session:
        waiting = await due_rows(session, now=now)
    counts: dict[str, int] = {}
    for row in waiting:
        try:
            rows = await send_list(client, row.msgid, row.sender, row.chat_id)
        except Exception as exc:  # any failure of one call: the next row still gets asked
            log.warning(
                "早报 mass send of %s on %s: cannot ask WeCom whether it was sent: %s",
                row.chat_id,
                row.day,
                exc,
            )
            counts["errors"] = counts.get("errors", 0) + 1
            outcome = None
        else:
            status, send_time = chat_status(row.chat_id, rows)
            outcome = confirmation_outcome(status, send_time, day_over=now >= day_end(row.day, tz))
        async with sessions() as session, session.begin():
            report = await session.get(DailyReport, row.report_id)
            if report is None or report.mass_send_state != AWAITING:
                continue  # moved meanwhile: its new state stands
            report.mass_send_checked_at = now
            if outcome is None:
                continue
            report.mass_send_state, report.mass_send_confirmed_at, reason = outcome
            if reason:
                report.reason = f"{report.reason}; {reason}" if report.reason else reason
            counts[report.mass_send_state] = counts.get(report.mass_send_state, 0) + 1
    return counts
