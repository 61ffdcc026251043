"""Turn one day's 早报 row into what goes out, and record it on the row.

How it reaches the group is the channel's answer, never its name: a channel that
posts at once gets the text (at most two parts); a customer group, where WeCom only
takes owner-confirmed mass sends (one a day), gets the mass send in one part plus an
owner task reminding the owner to confirm it; a group the bot cannot post into at
all gets an owner task with the text ready to paste. The post, the knowledge point's
use and the row's `sent` commit together, with the outbox key
`daily_report:{chat_id}:{date}`, so nothing is done twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook, PlaybookSet
from bot.config.playbooks.daily_report_section import DailyReportSection
from bot.config.playbooks.render import date_cn
from handlers.channels import Capabilities, customer_sender, group_channel
from handlers.core.actions import Action, QueueGroupText
from handlers.core.executor import Executor
from handlers.features import copilot
from handlers.features.daily_report import demands_feed
from handlers.features.daily_report.blocks import ORIGIN, report_key
from handlers.features.daily_report.compose import Blocks, Fitted, fit
from handlers.features.daily_report.facts import read_blocks
from handlers.features.daily_report.knowledge import RecordKnowledgeUse
from scheduler.engine import Outcome
from storage.models import DailyReport, Group

MAX_PARTS = 2  # a 早报 is one or two messages, never a flood
# An owner task's text travels inside a digest app message (2048 bytes) with others.
OWNER_TASK_BYTES = 1500
NOTHING_TO_SAY = "nothing to report: no knowledge point, demand post, highlight or leaderboard"


class NotQueued(Exception):
    """The 早报 could not be handed to anyone (a misconfigured channel, no owner)."""


@dataclass(frozen=True)
class Delivery:
    kind: Literal["group", "mass_send", "owner_task"]
    max_bytes: int
    max_parts: int


def delivery_for(capabilities: Capabilities, sender: str | None) -> Delivery:
    """How a group with these capabilities gets its 早报 (`sender`: who would confirm a
    mass send, for channels that cannot post at once)."""
    quota = capabilities.daily_quota
    parts = MAX_PARTS if quota is None else max(1, min(MAX_PARTS, quota))
    if capabilities.can_post and capabilities.immediate:
        return Delivery("group", capabilities.max_text_bytes, parts)
    if capabilities.can_post and sender:
        return Delivery("mass_send", capabilities.max_text_bytes, parts)
    return Delivery("owner_task", OWNER_TASK_BYTES, 1)


def group_delivery(group: Group) -> Delivery:
    capabilities = group_channel(group.channel_type).capabilities
    sender = customer_sender(dict(group.channel_config or {}), group.owner)
    return delivery_for(capabilities, sender)


def confirm_task(day: date) -> str:
    return (
        f"{date_cn(day)}的早报已作为客户群群发提交，请在企业微信里确认发送"
        "（每个客户群每天最多收到一条群发）。"
    )


def paste_task(day: date) -> str:
    return f"{date_cn(day)}的早报：机器人不能在这个群里发言，请复制下面的内容发到群里。"


def report_actions(
    group: Group,
    playbook: Playbook,
    fitted: Fitted,
    delivery: Delivery,
    *,
    day: date,
    now: datetime,
) -> list[Action]:
    """The post (or the owner's task), the knowledge point's use and the demand posts'
    publication: all in the transaction that marks the row sent."""
    key = report_key(group.chat_id, day)
    actions: list[Action] = []
    if delivery.kind in ("group", "mass_send"):
        actions.append(QueueGroupText(group.chat_id, fitted.text, ORIGIN, key=key))
    if delivery.kind == "mass_send":
        actions.append(
            copilot.assign(
                group, playbook, origin=ORIGIN, summary=confirm_task(day), key=f"{key}:confirm"
            )
        )
    if delivery.kind == "owner_task":
        actions.append(
            copilot.assign(
                group,
                playbook,
                origin=ORIGIN,
                summary=paste_task(day),
                paste_text=fitted.text,
                key=key,
            )
        )
    blocks = fitted.blocks
    if blocks is not None and blocks.knowledge_item_id is not None:
        actions.append(RecordKnowledgeUse(group.chat_id, blocks.knowledge_item_id, day, now))
    if blocks is not None:
        actions += demands_feed.publish_actions(
            group.chat_id, day, blocks.demands, blocks.shown_demands
        )
    return actions


def record_sent(
    report: DailyReport, fitted: Fitted, delivery: Delivery, *, now: datetime, trigger: str
) -> None:
    report.status = "sent"
    report.trigger = trigger
    report.text = fitted.text
    report.parts = len(fitted.parts)
    report.delivery = delivery.kind
    report.outbox_key = (
        report_key(report.chat_id, report.report_date) if delivery.kind != "owner_task" else None
    )
    report.knowledge_item_id = fitted.blocks.knowledge_item_id if fitted.blocks else None
    report.mass_send_state = "queued" if delivery.kind == "mass_send" else None
    report.reason = ("trimmed to fit: " + "; ".join(fitted.trimmed)) if fitted.trimmed else None
    report.finished_at = now


def record_skipped(report: DailyReport, reason: str, *, now: datetime) -> Outcome:
    report.status, report.reason, report.finished_at = "skipped", reason, now
    return Outcome("skipped", reason)


async def compose_report(
    session: AsyncSession,
    group: Group,
    playbook: Playbook,
    section: DailyReportSection,
    day: date,
    *,
    at: datetime,
    tz: tzinfo,
) -> tuple[Blocks, Fitted, Delivery]:
    """The day's blocks, the text fitted to the group's delivery, and the delivery."""
    blocks = await read_blocks(session, group, playbook, section, day, at=at, tz=tz)
    delivery = group_delivery(group)
    fitted = fit(section.text, blocks, max_bytes=delivery.max_bytes, max_parts=delivery.max_parts)
    return blocks, fitted, delivery


async def produce(
    executor: Executor,
    session: AsyncSession,
    report: DailyReport,
    group: Group,
    playbook: Playbook,
    section: DailyReportSection,
    *,
    at: datetime,
    now: datetime,
    tz: ZoneInfo,
    playbooks: PlaybookSet,
    trigger: str,
    send_empty: bool = False,
) -> Outcome:
    """Render, queue and record one claimed row in the caller's transaction. Raises
    (so the caller's savepoint or transaction rolls back) when nothing could be queued."""
    day = report.report_date
    blocks, fitted, delivery = await compose_report(
        session, group, playbook, section, day, at=at, tz=tz
    )
    if not blocks.has_news() and section.skip_when_empty and not send_empty:
        return record_skipped(report, NOTHING_TO_SAY, now=now)
    if delivery.kind == "owner_task" and not copilot.recipients_for(group, playbook):
        raise NotQueued("the bot cannot post here and the group has no owner or operator")
    actions = report_actions(group, playbook, fitted, delivery, day=day, now=now)
    effects = await executor.execute_due(
        actions, session, now=now, tz=tz, playbooks=playbooks, source_id=f"{ORIGIN}:{report.id}"
    )
    if delivery.kind != "owner_task" and not effects.queued:
        raise NotQueued("; ".join(effects.notes) or "the channel queued nothing")
    record_sent(report, fitted, delivery, now=now, trigger=trigger)
    note = f"{delivery.kind}, {len(fitted.parts)} part(s)"
    if report.reason:
        note += f"; {report.reason}"
    return Outcome("sent", note, tuple(effects.queued))
