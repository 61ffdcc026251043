"""The one place actions become state: rows written in the caller's transaction.

Features decide (pure) and return actions; the executor applies them in order, in
the transaction of the event or due item that caused them, so an effect and the
"done" mark of its cause commit together or not at all. Messages become outbox
rows through the group's or member's channel object, each with an idempotency key
(the action's, or one derived from `Context.source_id`), so a replay queues
nothing twice. Features register the appliers of their own state actions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import PlaybookSet
from handlers.channels import (
    CannotPost,
    compose_aibot_reply,
    compose_group_text,
    compose_private_text,
    customer_sender,
)
from handlers.core.actions import (
    Action,
    CancelQueued,
    Note,
    QueueAibotReply,
    QueueGroupText,
    QueuePrivateText,
    Stop,
)
from handlers.core.context import Context, Deferred
from storage import outbox
from storage.members import get_membership
from storage.models import Group

Applier = Callable[[Any, Context], Awaitable[None]]
# Applies many actions of one type at once (bookkeeping that commutes: counters).
BulkApplier = Callable[[Sequence[Any], AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class Executed:
    stopped: bool
    stop_reason: str | None = None


class Executor:
    def __init__(self) -> None:
        self._appliers: dict[type[Action], Applier] = {
            Note: _note,
            QueueGroupText: _queue_group_text,
            QueuePrivateText: _queue_private_text,
            QueueAibotReply: _queue_aibot_reply,
            CancelQueued: _cancel_queued,
        }

        self._bulk: dict[type[Action], BulkApplier] = {}

    def register(self, action_type: type[Action], applier: Applier) -> None:
        self._refuse_second_applier(action_type)
        self._appliers[action_type] = applier

    def register_bulk(self, action_type: type[Action], applier: BulkApplier) -> None:
        """For actions no handler of the same batch reads back (counters): applied
        once per transaction when the context defers them, at once otherwise."""
        self._refuse_second_applier(action_type)
        self._bulk[action_type] = applier

    def _refuse_second_applier(self, action_type: type[Action]) -> None:
        if action_type in self._appliers or action_type in self._bulk:
            raise ValueError(f"{action_type.__name__} already has an applier")

    async def flush(self, deferred: Deferred, session: AsyncSession) -> None:
        """Apply what a batch deferred; call before the batch's commit."""
        for action_type, actions in deferred.actions.items():
            await self._bulk[action_type](actions, session)
        deferred.actions.clear()

    def knows(self, action_type: type[Action]) -> bool:
        return action_type is Stop or action_type in self._appliers or action_type in self._bulk

    async def execute(self, actions: Sequence[Action], ctx: Context) -> Executed:
        """Apply in order; a Stop is applied last whatever its position, so a feature
        that stops the rest still gets its own effects written."""
        stop: Stop | None = None
        for action in actions:
            if isinstance(action, Stop):
                stop = stop or action
                continue
            bulk = self._bulk.get(type(action))
            applier = self._appliers.get(type(action))
            if bulk is None and applier is None:
                raise TypeError(f"no applier registered for {type(action).__name__}")
            ctx.applied.add(type(action).__name__)
            if bulk is not None:
                if ctx.deferred is not None:
                    ctx.deferred.add(action)
                else:
                    await bulk([action], ctx.session)
                continue
            assert applier is not None
            await applier(action, ctx)
        if stop is not None:
            ctx.note(f"stopped: {stop.reason}")
            return Executed(True, stop.reason)
        return Executed(False)

    async def execute_due(
        self,
        actions: Sequence[Action],
        session: AsyncSession,
        *,
        now: datetime,
        tz: ZoneInfo,
        playbooks: PlaybookSet,
        source_id: str,
    ) -> Context:
        """Apply a due item's actions in its claim's transaction; the returned context
        says what was queued and noted."""
        ctx = Context(session=session, now=now, tz=tz, playbooks=playbooks, source_id=source_id)
        await self.execute(actions, ctx)
        return ctx


def _dedup_key(key: str | None, origin: str, ctx: Context, member_id: str | None) -> str | None:
    if key is not None:
        return key
    if ctx.source_id is None:
        return None
    return f"{ctx.source_id}:{origin}" + (f":{member_id}" if member_id else "")


async def _note(action: Note, ctx: Context) -> None:
    ctx.note(action.text)


async def _queue_group_text(action: QueueGroupText, ctx: Context) -> None:
    group = await ctx.session.get(Group, action.chat_id)
    if group is None:
        ctx.note(f"{action.origin}: no group {action.chat_id}; nothing posted")
        return
    try:
        messages = compose_group_text(
            chat_id=group.chat_id,
            channel_type=group.channel_type,
            channel_config=dict(group.channel_config or {}),
            owner=group.owner,
            text=action.text,
            origin=action.origin,
            dedup_key=_dedup_key(action.key, action.origin, ctx, None),
            member_id=action.member_id,
        )
    except CannotPost as exc:
        ctx.note(f"{action.origin}: group message not posted: {exc}")
        return
    for message in messages:
        ctx.queued.append((await outbox.enqueue(ctx.session, message, now=ctx.now)).id)


async def _queue_private_text(action: QueuePrivateText, ctx: Context) -> None:
    group = await ctx.session.get(Group, action.chat_id)
    membership = await get_membership(ctx.session, action.chat_id, action.member_id)
    sender = customer_sender(dict(group.channel_config or {}), group.owner) if group else None
    try:
        message = compose_private_text(
            member_id=action.member_id,
            member_type=membership.member_type if membership else None,
            sender=sender,
            text=action.text,
            origin=action.origin,
            chat_id=action.chat_id,
            dedup_key=_dedup_key(action.key, action.origin, ctx, action.member_id),
        )
    except CannotPost as exc:
        ctx.note(f"{action.origin}: private message to {action.member_id} not sent: {exc}")
        return
    ctx.queued.append((await outbox.enqueue(ctx.session, message, now=ctx.now)).id)


async def _queue_aibot_reply(action: QueueAibotReply, ctx: Context) -> None:
    reply_to = action.reply_to
    try:
        message = compose_aibot_reply(
            req_id=reply_to.req_id,
            response_url=reply_to.response_url,
            received_at=reply_to.received_at,
            text=action.text,
            origin=action.origin,
            chat_id=action.chat_id,
            member_id=action.member_id,
            dedup_key=_dedup_key(action.key, action.origin, ctx, action.member_id),
        )
    except CannotPost as exc:
        ctx.note(f"{action.origin}: 智能机器人 reply not sent: {exc}")
        return
    ctx.queued.append((await outbox.enqueue(ctx.session, message, now=ctx.now)).id)


async def _cancel_queued(action: CancelQueued, ctx: Context) -> None:
    cancelled = await outbox.cancel_for_member(
        ctx.session,
        member_id=action.member_id,
        chat_id=action.chat_id,
        reason=action.reason,
        now=ctx.now,
    )
    if cancelled:
        ctx.note(f"cancelled {cancelled} queued message(s) for {action.member_id}")
