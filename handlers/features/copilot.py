"""The operator's copilot: where the bot cannot act itself, a person gets a task.

In a customer group nothing can be posted or sent to a customer at once, and some
decisions (a report, an appeal) belong to people anyway. Such an outcome becomes an
owner task for the group owner and the playbook's operators: what happened, in
which group, about whom, and a ready-to-paste text. Tasks are gathered into one
app message per person: the first goes out after `gather_seconds` (so what happens
together arrives together), the next no sooner than `min_interval_seconds` after
the last; never one message per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from handlers.channels import CannotPost, compose_private_text, split_text
from handlers.channels.registry import PRIVATE_INTERNAL
from handlers.core.actions import Action, DueDecision
from handlers.core.context import Context
from handlers.core.executor import Executor
from handlers.features.welcome import batch_due_at
from scheduler.engine import DueContext, DueKind, Outcome, flushed
from storage import outbox
from storage.db import insert_for
from storage.models import Group, OwnerDigest, OwnerTask

ORIGIN = "owner_digest"
MAX_LISTED = 8  # tasks spelled out in one digest; the rest are counted


@dataclass(frozen=True)
class AssignOwnerTask(Action):
    """A task for people (the group owner and the playbook's operators)."""

    chat_id: str
    recipients: tuple[str, ...]
    origin: str  # what produced it: rule_remind, rule_report, appeal, raid_guard …
    summary: str  # what happened and what to do, one short paragraph
    paste_text: str | None = None  # what to send, ready to paste
    member_id: str | None = None
    key: str | None = None  # None: derived from the source event
    gather_seconds: int = 10
    min_interval_seconds: int = 300


@dataclass(frozen=True)
class QueueStaffText(Action):
    """An app message (message/send) to one of the corp's own members."""

    user_id: str
    text: str
    origin: str
    key: str


def recipients_for(group: Group, playbook: Playbook) -> tuple[str, ...]:
    """The group owner first, then the playbook's operators, each once."""
    people = [group.owner] if group.owner else []
    people += [p for p in playbook.copilot.operators if p not in people]
    return tuple(people)


def assign(
    group: Group,
    playbook: Playbook,
    *,
    origin: str,
    summary: str,
    paste_text: str | None = None,
    member_id: str | None = None,
    key: str | None = None,
) -> AssignOwnerTask:
    return AssignOwnerTask(
        chat_id=group.chat_id,
        recipients=recipients_for(group, playbook),
        origin=origin,
        summary=summary,
        paste_text=paste_text,
        member_id=member_id,
        key=key,
        gather_seconds=playbook.copilot.gather_seconds,
        min_interval_seconds=playbook.copilot.min_interval_seconds,
    )


# --- applying: tasks join the recipient's open digest ---------------------------------


async def _last_sent_at(session: AsyncSession, recipient: str) -> datetime | None:
    value: datetime | None = (
        await session.execute(
            select(func.max(OwnerDigest.flushed_at)).where(
                OwnerDigest.recipient == recipient, OwnerDigest.status == "sent"
            )
        )
    ).scalar_one_or_none()
    return value


async def _open_digest(
    session: AsyncSession, recipient: str, *, now: datetime, due_at: datetime
) -> OwnerDigest:
    # One open digest per person (a partial unique index): two replicas adding the
    # first task at once both land in the same digest.
    table = cast(Table, OwnerDigest.__table__)
    await session.execute(
        insert_for(session)(table)
        .values(recipient=recipient, status="open", opened_at=now, due_at=due_at)
        .on_conflict_do_nothing(index_elements=["recipient"], index_where=text("status = 'open'"))
    )
    digest = (
        await session.execute(
            select(OwnerDigest)
            .where(OwnerDigest.recipient == recipient, OwnerDigest.status == "open")
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return digest


async def apply_assign(action: AssignOwnerTask, ctx: Context) -> None:
    if not action.recipients:
        ctx.note(f"{action.origin}: no owner or operator to give the task to")
        return
    base = action.key or f"{ctx.source_id or 'manual'}:{action.origin}"
    if action.key is None and action.member_id:
        base += f":{action.member_id}"
    table = cast(Table, OwnerTask.__table__)
    for recipient in action.recipients:
        inserted = await ctx.session.execute(
            insert_for(ctx.session)(table)
            .values(
                recipient=recipient,
                chat_id=action.chat_id,
                member_id=action.member_id,
                origin=action.origin,
                summary=action.summary,
                paste_text=action.paste_text,
                dedup_key=base[:200],
                created_at=ctx.now,
            )
            .on_conflict_do_nothing(index_elements=["dedup_key", "recipient"])
            .returning(table.c.id)
        )
        task_id = inserted.scalar_one_or_none()
        if task_id is None:
            continue  # a replay: the task is there already
        due = batch_due_at(
            now=ctx.now,
            batch_window_seconds=action.gather_seconds,
            last_sent_at=await _last_sent_at(ctx.session, recipient),
            min_interval_seconds=action.min_interval_seconds,
        )
        digest = await _open_digest(ctx.session, recipient, now=ctx.now, due_at=due)
        task = await ctx.session.get(OwnerTask, task_id)
        assert task is not None
        task.digest_id = digest.id
        ctx.note(f"{action.origin}: task for {recipient} in digest {digest.id}")
    await ctx.session.flush()


async def apply_staff_text(action: QueueStaffText, ctx: Context) -> None:
    try:
        message = compose_private_text(
            member_id=action.user_id,
            member_type=1,
            sender=None,
            text=action.text,
            origin=action.origin,
            chat_id=None,
            dedup_key=action.key,
        )
    except CannotPost as exc:
        ctx.note(f"{action.origin}: app message to {action.user_id} not sent: {exc}")
        return
    ctx.queued.append((await outbox.enqueue(ctx.session, message, now=ctx.now)).id)


# --- the digest: one app message per person -------------------------------------------


@dataclass(frozen=True)
class TaskView:
    group_name: str
    at: datetime
    summary: str
    paste_text: str | None


def render_digest(tasks: Sequence[TaskView], *, tz: Any, max_bytes: int) -> str:
    """One message listing the tasks, oldest first, that fits an app message."""
    header = f"【社群助手】有 {len(tasks)} 件事需要你处理："
    blocks: list[str] = []
    for number, task in enumerate(tasks, start=1):
        block = f"{number}. {task.at.astimezone(tz):%H:%M}「{task.group_name}」{task.summary}"
        if task.paste_text:
            block += f"\n可直接复制：\n{task.paste_text}"
        blocks.append(block)
    shown = blocks[:MAX_LISTED]
    while True:
        rest = len(blocks) - len(shown)
        footer = (
            f"\n\n还有 {rest} 件，见管理后台的待复核列表（GET /admin/review）。" if rest else ""
        )
        body = header + "\n\n" + "\n\n".join(shown) + footer
        if len(body.encode("utf-8")) <= max_bytes or len(shown) <= 1:
            break
        shown = shown[:-1]
    if len(body.encode("utf-8")) > max_bytes:  # one huge task: cut it, keep the header
        body = split_text(body, max_bytes)[0]
    return body


def decide_digest(
    digest_id: int, recipient: str, tasks: Sequence[TaskView], *, tz: Any
) -> DueDecision:
    if not tasks:
        return DueDecision("skipped", "no tasks")
    text = render_digest(tasks, tz=tz, max_bytes=PRIVATE_INTERNAL.capabilities.max_text_bytes)
    action = QueueStaffText(recipient, text, ORIGIN, key=f"{ORIGIN}:{digest_id}")
    return DueDecision("sent", f"{len(tasks)} task(s)", (action,))


async def _task_views(session: AsyncSession, digest_id: int) -> list[TaskView]:
    tasks = list(
        (
            await session.execute(
                select(OwnerTask).where(OwnerTask.digest_id == digest_id).order_by(OwnerTask.id)
            )
        ).scalars()
    )
    names = await _group_names(session, {task.chat_id for task in tasks})
    return [
        TaskView(names.get(t.chat_id, t.chat_id), t.created_at, t.summary, t.paste_text)
        for t in tasks
    ]


async def _group_names(session: AsyncSession, chat_ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(chat_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(Group.chat_id, Group.name, Group.label).where(Group.chat_id.in_(wanted))
    )
    return {chat: name or label or "群聊" for chat, name, label in rows}


class OwnerDigestKind(DueKind):
    name = "owner_digest"
    model = OwnerDigest
    ready_status = "open"
    claimed_status = "flushing"
    due_by = "now"  # operators work on the real clock; a rehearsal tick sends nothing early

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        digest: OwnerDigest = row
        decision = decide_digest(
            digest.id, digest.recipient, await _task_views(session, digest.id), tz=ctx.tz
        )
        effects = await self.executor.execute_due(
            decision.actions,
            session,
            now=ctx.now,
            tz=ctx.tz,
            playbooks=ctx.playbooks,
            source_id=f"{ORIGIN}:{digest.id}",
        )
        return flushed(
            digest,
            status="sent" if effects.queued else "skipped",
            note="; ".join([decision.reason, *effects.notes]),
            queued=effects.queued,
            now=ctx.now,
        )

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "failed", "flushed_at": ctx.now, "note": error}


def register(executor: Executor) -> None:
    executor.register(AssignOwnerTask, apply_assign)
    executor.register(QueueStaffText, apply_staff_text)
