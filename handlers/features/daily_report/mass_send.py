"""Following a customer group's 早报 after it was queued as a mass send.

`externalcontact/add_msg_template` only creates a task: the owner confirms it in the
client, and WeCom answers the call with the task's `msgid` (and a `fail_list` of the
chats it could not reach). A periodic job copies that answer from the outbox row to
the day's row: `awaiting_confirmation` with the msgid and the sender, or `failed`
with the reason.

Whether the owner then confirmed is WeCom's `get_groupmsg_send_result` (doc 93338):
bot/daily_report_confirmations.py asks it and `confirmation_outcome` decides what
the answer means: `confirmed` with WeCom's send time, `failed` for status 2/3, and
`unconfirmed` once the report's local day is over with the owner still not having
sent it (the task is stale by then; polling stops).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import DailyReport, OutboxItem

QUEUED, AWAITING, FAILED = "queued", "awaiting_confirmation", "failed"
CONFIRMED, UNCONFIRMED = "confirmed", "unconfirmed"
GIVEN_UP = ("failed", "cancelled")
# get_groupmsg_send_result's status for one chat: 0 未发送, 1 已发送, 2 and 3 failed.
UNSENT, SENT = 0, 1
SEND_FAILURES = {
    2: "WeCom did not send the mass send: the customer is not a friend (status 2)",
    3: "WeCom did not send the mass send: the group already received another one (status 3)",
}
NEVER_CONFIRMED = "the owner did not confirm the mass send on its day"


def mass_send_outcome(
    chat_id: str, status: str, result: dict[str, object] | None, error: str | None
) -> tuple[str, str | None, str | None] | None:
    """(state, msgid, reason) for an outbox row of a mass send, or None while it waits."""
    if status in GIVEN_UP:
        return FAILED, None, f"the mass send was not accepted: {error or status}"
    if status != "sent":
        return None
    answer = result or {}
    fail_list = answer.get("fail_list")
    if isinstance(fail_list, list) and chat_id in fail_list:
        return FAILED, None, "WeCom could not reach the group (fail_list)"
    msgid = answer.get("msgid")
    return AWAITING, str(msgid) if msgid else None, None


async def follow_mass_sends(session: AsyncSession) -> int:
    """Copy what WeCom said about queued mass sends onto their rows; returns how many
    rows changed."""
    reports = list(
        (
            await session.execute(
                select(DailyReport).where(DailyReport.mass_send_state == QUEUED).limit(500)
            )
        ).scalars()
    )
    keys = [r.outbox_key for r in reports if r.outbox_key]
    if not keys:
        return 0
    rows = await session.execute(
        select(
            OutboxItem.dedup_key,
            OutboxItem.status,
            OutboxItem.result,
            OutboxItem.last_error,
            OutboxItem.payload,
        ).where(OutboxItem.dedup_key.in_(keys))
    )
    by_key: dict[str, tuple[str, dict[str, Any] | None, str | None]] = {}
    found_payload: dict[str, dict[str, Any]] = {}
    for key, status, result, error, payload in rows.all():
        by_key[key] = (status, result, error)
        found_payload[key] = dict(payload or {})
    changed = 0
    for report in reports:
        found = by_key.get(report.outbox_key or "")
        if found is None:
            continue  # not queued under that key (kept rows are pruned after 90 days)
        outcome = mass_send_outcome(report.chat_id, *found)
        if outcome is None:
            continue
        report.mass_send_state, report.mass_send_msgid, reason = outcome
        sender = (found_payload.get(report.outbox_key or "") or {}).get("sender")
        report.mass_send_sender = str(sender) if sender else None
        if reason:
            report.reason = f"{report.reason}; {reason}" if report.reason else reason
        changed += 1
    return changed


def day_end(day: date, tz: tzinfo) -> datetime:
    """The end of a report's local day: after it, an unsent mass send is not coming."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)


def chat_status(chat_id: str, send_list: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(status, send_time) of the row for `chat_id`; no row yet counts as not sent."""
    for row in send_list:
        if row.get("chat_id") == chat_id:
            status, send_time = row.get("status"), row.get("send_time")
            return (
                status if isinstance(status, int) else UNSENT,
                send_time if isinstance(send_time, int) else 0,
            )
    return UNSENT, 0


def confirmation_outcome(
    status: int, send_time: int, *, day_over: bool
) -> tuple[str, datetime | None, str | None] | None:
    """(state, sent_at, reason) for what WeCom says of the group's mass send, or None
    while the owner may still confirm it."""
    if status == SENT:
        sent_at = datetime.fromtimestamp(send_time, UTC) if send_time > 0 else None
        return CONFIRMED, sent_at, None
    if status in SEND_FAILURES:
        return FAILED, None, SEND_FAILURES[status]
    if day_over:
        return UNCONFIRMED, None, NEVER_CONFIRMED
    return None
