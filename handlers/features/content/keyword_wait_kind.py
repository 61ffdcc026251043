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

from bot.config.playbooks import Playbook
from handlers.channels.registry import group_channel
from handlers.core.actions import Action, QueueGroupText, QueuePrivateText
from handlers.core.executor import Executor
from handlers.core.playbooks import playbook_for
from handlers.features import copilot
from handlers.features.content.answers import addressed_to
from handlers.features.content.experts import (
    group_cue_text,
    owner_cue_summary,
    private_cue_text,
)
from handlers.features.content.keyword_answers import ORIGIN, RecordAnswer, delivery
from handlers.features.content.keyword_wait import EXPERT, asker_ids, member_answerer
from handlers.features.health.signals import LoggedMessage
from handlers.features.roles import HOST_ROLES, roles_in
from handlers.features.rules.handler import is_robot
from handlers.features.rules.texts import member_name
from scheduler.engine import DueContext, DueKind, Outcome
from storage.members import get_membership
from storage.models import Group, KeywordAnswer, KeywordWait, MessageLog

ANSWERED_BY_MEMBER = "answered by a member"
OFFERED_MEANWHILE = "its items were offered in the group meanwhile"
EXPERT_ORIGIN = "keyword_expert"


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


async def offered_since(
    session: AsyncSession, wait: KeywordWait, item_ids: tuple[int, ...]
) -> bool:
    """Whether every held item was offered in the group after the question was asked."""
    rows = await session.scalars(
        select(KeywordAnswer.item_ids).where(
            KeywordAnswer.chat_id == wait.chat_id,
            KeywordAnswer.answered_at >= wait.asked_at,
            KeywordAnswer.source_key != wait.source_key,
        )
    )
    offered = {int(item) for ids in rows for item in ids}
    return bool(item_ids) and set(item_ids) <= offered


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
        askers = asker_ids(wait)
        later = await logged_since(session, wait)
        if wait.kind == EXPERT:
            return await self._cue(session, wait, group, playbook, askers, later, ctx)
        speakers = {m.member_id for m in later if m.member_id not in askers}
        hosts = await hosts_of(session, wait.chat_id, speakers)
        answerer = member_answerer(wait.member_id, wait.asked_at, wait.due_at, later, hosts, askers)
        if answerer is not None:
            return self._done(wait, "quiet", f"{ANSWERED_BY_MEMBER} ({answerer})", ctx)
        item_ids = tuple(int(item) for item in wait.item_ids)
        if await offered_since(session, wait, item_ids):
            # An @-mention got these items meanwhile: the group has them already.
            return self._done(wait, "quiet", OFFERED_MEANWHILE, ctx)
        names = [await self._name(session, wait.chat_id, member, playbook) for member in askers]
        actions: list[Action] = [
            RecordAnswer(wait.chat_id, wait.member_id, item_ids, wait.source_key, ctx.at),
            delivery(
                group,
                playbook,
                member_id=wait.member_id,
                name="、".join(names),
                question=wait.question,
                text=addressed_to(wait.reply_text, names),
                source_key=wait.source_key,
            ),
        ]
        return await self._execute(session, wait, actions, "nobody answered within the wait", ctx)

    async def _name(
        self, session: AsyncSession, chat_id: str, member_id: str, playbook: Playbook
    ) -> str:
        return member_name(await get_membership(session, chat_id, member_id), playbook)

    async def _cue(
        self,
        session: AsyncSession,
        wait: KeywordWait,
        group: Group,
        playbook: Playbook,
        askers: list[str],
        later: list[LoggedMessage],
        ctx: DueContext,
    ) -> Outcome:
        """An expert wait: anyone's answer (staff too) means the question was answered;
        else the playbook's experts are cued, privately or in the group."""
        section = playbook.keywords
        assert section is not None
        robots = {m.member_id for m in later if is_robot(m.member_id)}
        answerer = member_answerer(
            wait.member_id, wait.asked_at, wait.due_at, later, robots, askers
        )
        if answerer is not None:
            return self._done(wait, "quiet", f"answered ({answerer})", ctx)
        experts = [str(member) for member in wait.experts if str(member) not in askers]
        if not experts:
            return self._done(wait, "skipped", "no expert left to cue", ctx)
        asker_names = [await self._name(session, wait.chat_id, m, playbook) for m in askers]
        key = f"{ORIGIN}:expert:{wait.id}"
        actions: list[Action] = []
        if section.expert_cue == "private":
            text = private_cue_text(
                group.name or playbook.neutral_name,
                asker_names,
                wait.question,
                section.expert_after_minutes,
            )
            actions = [
                QueuePrivateText(wait.chat_id, expert, text, EXPERT_ORIGIN, key=f"{key}:{expert}")
                for expert in experts
            ]
        else:
            expert_names = [await self._name(session, wait.chat_id, e, playbook) for e in experts]
            text = group_cue_text(expert_names, asker_names, wait.question)
            if group_channel(group.channel_type).capabilities.immediate:
                actions = [QueueGroupText(wait.chat_id, text, EXPERT_ORIGIN, key=key)]
            else:
                actions = [
                    copilot.assign(
                        group,
                        playbook,
                        origin=EXPERT_ORIGIN,
                        summary=owner_cue_summary(
                            asker_names, wait.question, section.expert_after_minutes
                        ),
                        paste_text=text,
                        member_id=wait.member_id,
                        key=key,
                    )
                ]
        return await self._execute(session, wait, actions, f"experts cued: {experts}", ctx)

    async def _execute(
        self,
        session: AsyncSession,
        wait: KeywordWait,
        actions: list[Action],
        why: str,
        ctx: DueContext,
    ) -> Outcome:
        effects = await self.executor.execute_due(
            actions,
            session,
            now=ctx.now,
            tz=ctx.tz,
            playbooks=ctx.playbooks,
            source_id=f"{ORIGIN}:wait:{wait.id}",
        )
        note = "; ".join([why, *effects.notes])
        wait.status, wait.note, wait.done_at = "sent", note[:200], ctx.now
        return Outcome("sent", note, tuple(effects.queued))

    def failed_values(self, error: str, ctx: DueContext) -> dict[str, Any]:
        return {"status": "failed", "note": error[:200], "done_at": ctx.now}
