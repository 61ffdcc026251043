"""Following a customer group's 早报 after it was queued as a mass send.

`externalcontact/add_msg_template` only creates a task: the owner confirms it in the
client, and WeCom answers the call with the task's `msgid` (and a `fail_list` of the
chats it could not reach). A periodic job copies that answer from the outbox row to
the day's row: `awaiting_confirmation` with the msgid, or `failed` with the reason.

Whether the owner then confirmed is reported by WeCom's
`externalcontact/get_groupmsg_send_result`; this project's protocol notes do not
document its request or answer, and the emulator does not offer it, so the state
stays `awaiting_confirmation` rather than guessing. Following the confirmation is
one more step here once the call is documented and emulated.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import DailyReport, OutboxItem

QUEUED, AWAITING, FAILED = "queued", "awaiting_confirmation", "failed"
GIVEN_UP = ("failed", "cancelled")


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
            OutboxItem.dedup_key, OutboxItem.status, OutboxItem.result, OutboxItem.last_error
        ).where(OutboxItem.dedup_key.in_(keys))
    )
    by_key = {key: (status, result, error) for key, status, result, error in rows.all()}
    changed = 0
    for report in reports:
        found = by_key.get(report.outbox_key or "")
        if found is None:
            continue  # not queued under that key (kept rows are pruned after 90 days)
        outcome = mass_send_outcome(report.chat_id, *found)
        if outcome is None:
            continue
        report.mass_send_state, report.mass_send_msgid, reason = outcome
        if reason:
            report.reason = f"{report.reason}; {reason}" if report.reason else reason
        changed += 1
    return changed
