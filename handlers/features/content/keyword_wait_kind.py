"""The due work of `keywords.mode: wait`: when a held answer is due, stay quiet if a
member answered the question meanwhile, else send it as immediate mode would have.

A row is claimed like any due item (`scheduler/engine.py`), so it is decided once
across replicas and restarts; `source_key` made it one per question. Who answered is
read from the message log (no content is needed) with the health signals' reading;
hosts (owner, admins, staff) and robots are left out first, so only members count.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.actions import Action
from handlers.core.executor import Executor
from handlers.core.playbooks import playbook_for
from handlers.features.content.keyword_answers import ORIGIN, RecordAnswer, delivery
from handlers.features.content.keyword_wait import member_answerer
from handlers.features.health.signals import LoggedMessage
from handlers.features.roles import HOST_ROLES, roles_in
from handlers.features.rules.handler import is_robot
from handlers.features.rules.texts import member_name
from scheduler.engine import DueContext, DueKind, Outcome
from storage.members import get_membership
from storage.models import Group, KeywordWait, MessageLog

ANSWERED_BY_MEMBER = "answered by a member"


async def logged_since(session: AsyncSession, wait: KeywordWait) -> list[LoggedMessage]:
    """The group's messages from the question to the end of the wait, in order."""
    rows = await session.execute(
        select(MessageLog.member_id, MessageLog.sent_at, MessageLog.replies_to, MessageLog.length)
        .where(
            MessageLog.chat_id == wait.chat_id,
            MessageLog.sent_at >= wait.asked_at,
            MessageLog.sent_at <= wait.due_at,
            MessageLog.revoked_at.is_(None),
        )
        .order_by(MessageLog.sent_at, MessageLog.id)
    )
    return [
        LoggedMessage(member_id, at, replies_to=replies_to, length=length)
        for member_id, at, replies_to, length in rows
    ]


async def hosts_of(session: AsyncSession, chat_id: str, members: set[str]) -> frozenset[str]:
    roles = await roles_in(session, chat_id, members)
    return frozenset(
        member for member, found in roles.items() if found & HOST_ROLES or is_robot(member)
    )


class KeywordWaitKind(DueKind):
    name = "keyword_wait"
    model = KeywordWait
    ready_status = "pending"
    claimed_status = "claimed"
    # Member-facing: a `tick --at` rehearsal judges the wait at the instant it names.

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def _done(self, wait: KeywordWait, status: str, note: str, ctx: DueContext) -> Outcome:
        wait.status, wait.note, wait.done_at = status, note[:200], ctx.now
        return Outcome(status, note)

    async def run(self, session: AsyncSession, row: Any, ctx: DueContext) -> Outcome:
        wait: KeywordWait = row
        group = await session.get(Group, wait.chat_id)
        if group is None or group.dismissed_at is not None:
            return self._done(wait, "skipped", "the group is gone", ctx)
        playbook = playbook_for(ctx.playbooks, group)
        if playbook.keywords is None or not playbook.keywords.enabled:
            return self._done(wait, "skipped", "keyword answers are off in the playbook", ctx)
        later = await logged_since(session, wait)
        speakers = {m.member_id for m in later if m.member_id != wait.member_id}
        hosts = await hosts_of(session, wait.chat_id, speakers)
        answerer = member_answerer(wait.member_id, wait.asked_at, wait.due_at, later, hosts)
        if answerer is not None:
            return self._done(wait, "quiet", f"{ANSWERED_BY_MEMBER} ({answerer})", ctx)
        membership = await get_membership(session, wait.chat_id, wait.member_id)
        item_ids = tuple(int(item) for item in wait.item_ids)
        actions: list[Action] = [
            RecordAnswer(wait.chat_id, wait.member_id, item_ids, wait.source_key, ctx.at),
            delivery(
                group,
                playbook,
                member_id=wait.member_id,
                name=member_name(membership, playbook),
                question=wait.question,
                text=wait.reply_text,
                source_key=wait.source_key,
            ),
        ]
        effects = await self.executor.execute_due(
            actions,
            session,
            now=ctx.now,
            tz=ctx.tz,
            playbooks=ctx.playbooks,
            source_id=f"{ORIGIN}:wait:{wait.id}",
        )
        note = "; ".join(["nobody answered within the wait", *effects.notes])
        wait.status, wait.note, wait.done_at = "sent", note[:200], ctx.now
        return Outcome("sent", note, tuple(effects.queued))

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "failed", "note": error[:200], "done_at": ctx.now}
