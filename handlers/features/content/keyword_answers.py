"""Keyword answers in groups (SPEC §5.4; priority group 40, after points).

A member's group message that asks (a trigger word, a question, an @-mention of the
bot; `answers.asking`) is looked up in the content library's index; the items that
apply to the group (scope) and were not offered there within the playbook's
`group_cooldown_seconds` are listed in one short reply, own items first. Where the
group's channel posts at once the reply goes into the group; elsewhere (customer
groups) the owner gets a task with the reply ready to paste. Either way a
`keyword_answers` row records what was offered, in the same transaction, so the
cooldown holds across batches and replicas. A question the library has nothing for
is kept in `unanswered_questions` for the content team.

Staff are answered too: a colleague asking in the group is asking for the members
who will read the answer. The bot's own messages and other robots are not.
A question put to the 智能机器人 (an @-mention in a group, or 单聊) with a response_url
or a long-connection req_id is answered through the bot itself, at once and past the
cooldown, also in groups nobody registered and in 单聊 (the default playbook's
`keywords:`); when the library has nothing, the asker still gets a short "nothing yet".
In `mode: wait` a question that does not @-mention the bot is held instead
(`keyword_wait.py`): answered `wait_minutes` later only if no member answered first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from bot.config.playbooks.keywords_section import KeywordsSection
from handlers.channels.aibot_reply import reply_target
from handlers.channels.registry import group_channel
from handlers.core.actions import Action, AibotReplyTo, QueueAibotReply, QueueGroupText
from handlers.core.context import Context
from handlers.core.events import Event, Message
from handlers.core.executor import Executor
from handlers.core.playbooks import playbook_for
from handlers.features import copilot
from handlers.features.content.answers import (
    MAX_QUESTION_CHARS,
    Offered,
    asking,
    bare_text,
    markdown_reply,
    nothing_found_text,
    question_key,
    reply_text,
    task_summary,
)
from handlers.features.content.experts import experts_for
from handlers.features.content.index_cache import IndexCache, Library
from handlers.features.content.keyword_wait import (
    EXPERT,
    JoinWait,
    ScheduleWait,
    apply_join,
    apply_wait,
    join_or_schedule,
    pending_waits,
)
from handlers.features.content.library import applies_to
from handlers.features.points.query import is_query
from handlers.features.rules.handler import is_robot
from handlers.features.rules.texts import member_name
from storage.db import insert_for
from storage.members import get_membership
from storage.models import Group, KeywordAnswer, UnansweredQuestion

ORIGIN = "keyword_answer"
ASKED_KINDS = ("text", "mixed")


@dataclass(frozen=True)
class RecordAnswer(Action):
    """What a reply (or owner task) offered in a group, for the per-item cooldown."""

    chat_id: str
    member_id: str
    item_ids: tuple[int, ...]
    source_key: str
    answered_at: datetime


@dataclass(frozen=True)
class RecordUnanswered(Action):
    """A question the library had nothing for."""

    chat_id: str
    member_id: str
    text: str
    normalized_key: str
    source_key: str
    asked_at: datetime


async def _insert_once(session: AsyncSession, model: Any, values: dict[str, Any]) -> None:
    # A replayed event (same source key) changes nothing.
    table: Table = model.__table__
    await session.execute(
        insert_for(session)(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source_key"])
    )


async def apply_answer(action: RecordAnswer, ctx: Context) -> None:
    await _insert_once(
        ctx.session,
        KeywordAnswer,
        {
            "chat_id": action.chat_id,
            "member_id": action.member_id,
            "item_ids": list(action.item_ids),
            "source_key": action.source_key,
            "answered_at": action.answered_at,
        },
    )


async def apply_unanswered(action: RecordUnanswered, ctx: Context) -> None:
    await _insert_once(
        ctx.session,
        UnansweredQuestion,
        {
            "chat_id": action.chat_id,
            "member_id": action.member_id,
            "text": action.text,
            "normalized_key": action.normalized_key,
            "source_key": action.source_key,
            "asked_at": action.asked_at,
        },
    )


async def offered_recently(ctx: Context, chat_id: str, since: datetime) -> dict[int, datetime]:
    """Item id → when it was last offered in the group: one read per group and batch;
    the handler adds what the batch offers."""
    key = ("keyword_answers", chat_id)
    known: dict[int, datetime] | None = ctx.memo.extra.get(key)
    if known is None:
        known = {}
        rows = await ctx.session.execute(
            select(KeywordAnswer.item_ids, KeywordAnswer.answered_at).where(
                KeywordAnswer.chat_id == chat_id, KeywordAnswer.answered_at >= since
            )
        )
        for item_ids, at in rows:
            for item_id in item_ids:
                if int(item_id) not in known or known[int(item_id)] < at:
                    known[int(item_id)] = at
        ctx.memo.extra[key] = known
    return known


@dataclass(frozen=True)
class Venue:
    """Where a question was asked: a registered group; or, for a 智能机器人 message the bot
    can answer itself, a group it is in that is not registered, or 单聊 with it."""

    chat_key: str  # the chat id; `single:<member>` for 单聊 (keyword_answers rows, scope)
    chat_id: str | None  # None in 单聊
    group: Group | None  # None: not a registered group
    playbook: Playbook
    tags: tuple[str, ...]


async def venue_of(event: Message, ctx: Context, reply_to: AibotReplyTo | None) -> Venue | None:
    """A registered group follows its playbook; elsewhere only a 智能机器人 message is
    answered (a group the bot is in but nobody registered: the playbook bound to that
    chat id, else the default; 单聊: the default playbook)."""
    if event.chat_type == "group":
        if not event.chat_id:
            return None
        group = await ctx.group(event.chat_id)
        if group is not None:
            tags = tuple(str(tag) for tag in (group.tags or ()))
            return Venue(
                group.chat_id, group.chat_id, group, playbook_for(ctx.playbooks, group), tags
            )
        if reply_to is None:
            return None
        playbook = ctx.playbooks.for_group(event.chat_id, ())
        return Venue(event.chat_id, event.chat_id, None, playbook, ())
    if reply_to is None:
        return None
    return Venue(reply_target(None, event.sender)[:128], None, None, ctx.playbooks.default, ())


class KeywordAnswers:
    """The handler with its process's index (one per runtime: `handlers/wiring.py`)."""

    def __init__(self, cache: IndexCache | None = None) -> None:
        self.cache = cache or IndexCache()

    async def _library(self, ctx: Context, at: datetime) -> Library:
        key = ("keyword_answers", "library")
        library: Library | None = ctx.memo.extra.get(key)
        if library is None:
            library = await self.cache.library(ctx.session, today=at.astimezone(ctx.tz).date())
            ctx.memo.extra[key] = library
        return library

    async def on_message(self, event: Event, ctx: Context) -> list[Action]:
        assert isinstance(event, Message)
        if event.msgtype not in ASKED_KINDS:
            return []
        if not event.sender or is_robot(event.sender):
            return []
        # A 智能机器人 message with a response_url or a long-connection req_id is answered
        # through the bot itself, wherever it was asked.
        reply_to = AibotReplyTo.of(event)
        venue = await venue_of(event, ctx, reply_to)
        if venue is None:
            return []
        playbook = venue.playbook
        section = playbook.keywords
        if section is None or not section.enabled:
            return []
        why = asking(event.text, section.triggers, mentioned_bot=event.mentioned_bot)
        if not why.asks:
            return []
        points = playbook.points
        if points is not None and points.enabled and is_query(event.text, points.query_words):
            return []  # 「我的积分？」 is the points query's, not a question for the library
        at = event.occurred_at
        source_key = (f"msg:{event.msg_id}" if event.msg_id else (ctx.source_id or ""))[:160]
        library = await self._library(ctx, at)
        cooldown = timedelta(seconds=section.group_cooldown_seconds)
        interval = timedelta(seconds=section.group_interval_seconds)
        recent = await offered_recently(ctx, venue.chat_key, at - max(cooldown, interval))
        if interval and not why.mentioned and recent:
            # One reply per interval in a group: a burst of questions is not a burst of bot.
            last = max(recent.values())
            if abs(at - last) < interval:
                ctx.note("keyword answer: the group had one within group_interval_seconds")
                return []

        def in_scope(item_id: int) -> bool:
            entry = library.items.get(item_id)
            return entry is not None and applies_to(entry.scope, venue.chat_key, venue.tags)

        def admit(item_id: int) -> bool:
            if reply_to is not None:
                return in_scope(item_id)  # asked of the bot itself: it always answers
            last = recent.get(item_id)
            return in_scope(item_id) and (last is None or abs(at - last) >= cooldown)

        asked = bare_text(event.text)
        matches = library.index.lookup(
            asked, limit=section.top_n, threshold=section.threshold, admit=admit
        )
        if not matches:
            # Everything it would get was just offered here: answered, not a miss.
            if library.index.lookup(asked, limit=1, threshold=section.threshold, admit=in_scope):
                ctx.note("keyword answer: in cooldown")
                return []
            return await self._miss(
                event, ctx, venue, section, why.triggered or why.question, source_key, reply_to
            )
        item_ids = tuple(match.item_id for match in matches)
        for item_id in item_ids:
            recent[item_id] = at
        return await self._answer(
            event,
            ctx,
            venue,
            section,
            library,
            item_ids,
            source_key,
            mentioned=why.mentioned,
            reply_to=reply_to,
        )

    async def _miss(
        self,
        event: Message,
        ctx: Context,
        venue: Venue,
        section: KeywordsSection,
        question: bool,
        source_key: str,
        reply_to: AibotReplyTo | None,
    ) -> list[Action]:
        key = question_key(event.text)
        # A question put to the 智能机器人 is a question even when not phrased as one.
        recorded = bool(key) and (question or reply_to is not None)
        asked = bare_text(event.text)[:MAX_QUESTION_CHARS]
        actions: list[Action] = []
        if recorded:
            actions.append(
                RecordUnanswered(
                    chat_id=venue.chat_key,
                    member_id=event.sender,
                    text=asked,
                    normalized_key=key,
                    source_key=source_key,
                    asked_at=event.occurred_at,
                )
            )
        experts = experts_for(asked, section.experts, event.sender) if recorded else ()
        if experts and venue.group is not None:
            # Nobody may answer it for a while: then the one who knows the field is asked.
            chat_id = venue.group.chat_id
            due = event.occurred_at + timedelta(minutes=section.expert_after_minutes)
            hold = ScheduleWait(
                chat_id=chat_id,
                member_id=event.sender,
                source_key=source_key,
                asked_at=event.occurred_at,
                due_at=due,
                item_ids=(),
                question=asked,
                reply_text="",
                kind=EXPERT,
                question_key=key,
                experts=experts,
            )
            held = join_or_schedule(await pending_waits(ctx, chat_id), hold)
            if held is not None:
                ctx.note(f"keyword answer: experts {list(experts)} cued at {due.isoformat()}")
                actions.append(held)
        if reply_to is not None:  # an @-mention deserves an answer, even "nothing yet"
            actions.append(
                aibot_reply(
                    reply_to,
                    chat_id=venue.chat_id,
                    member_id=event.sender,
                    text=nothing_found_text(recorded=recorded),
                    source_key=source_key,
                )
            )
        return actions

    async def _answer(
        self,
        event: Message,
        ctx: Context,
        venue: Venue,
        section: KeywordsSection,
        library: Library,
        item_ids: tuple[int, ...],
        source_key: str,
        *,
        mentioned: bool,
        reply_to: AibotReplyTo | None,
    ) -> list[Action]:
        playbook = venue.playbook
        offered = [
            Offered(entry.title, entry.url, entry.summary)
            for entry in (library.items[item_id] for item_id in item_ids)
        ]
        record = RecordAnswer(venue.chat_key, event.sender, item_ids, source_key, event.occurred_at)
        if reply_to is not None:
            ctx.note(f"keyword answer: items {list(item_ids)} (智能机器人 reply)")
            return [
                record,
                aibot_reply(
                    reply_to,
                    chat_id=venue.chat_id,
                    member_id=event.sender,
                    text=markdown_reply(offered),
                    source_key=source_key,
                ),
            ]
        group = venue.group
        assert group is not None  # only 智能机器人 messages are answered outside groups
        membership = await get_membership(ctx.session, group.chat_id, event.sender)
        name = member_name(membership, playbook)
        text = reply_text(name, offered)
        if section.mode == "wait" and not mentioned:
            # 群友交流 > 群主回答: give members the first word; answered later if nobody did.
            due = event.occurred_at + timedelta(minutes=section.wait_minutes)
            hold = ScheduleWait(
                chat_id=group.chat_id,
                member_id=event.sender,
                source_key=source_key,
                asked_at=event.occurred_at,
                due_at=due,
                item_ids=item_ids,
                question=bare_text(event.text)[:MAX_QUESTION_CHARS],
                reply_text=text,
                question_key=question_key(event.text),
            )
            held = join_or_schedule(await pending_waits(ctx, group.chat_id), hold)
            if isinstance(held, JoinWait):
                ctx.note(f"keyword answer: asked again, joins the wait of {held.wait_source_key}")
            elif held is not None:
                ctx.note(f"keyword answer: items {list(item_ids)} wait until {due.isoformat()}")
            return [held] if held is not None else []
        deliver = delivery(
            group,
            playbook,
            member_id=event.sender,
            name=name,
            question=bare_text(event.text),
            text=text,
            source_key=source_key,
        )
        ctx.note(f"keyword answer: items {list(item_ids)} ({section.mode})")
        return [record, deliver]


def aibot_reply(
    reply_to: AibotReplyTo, *, chat_id: str | None, member_id: str, text: str, source_key: str
) -> QueueAibotReply:
    """The reply through the 智能机器人, keyed like every keyword answer (one per message)."""
    key = f"{ORIGIN}:{reply_target(chat_id, member_id)}:{source_key}"[:200]
    return QueueAibotReply(reply_to, chat_id, member_id, text, ORIGIN, key=key)


def delivery(
    group: Group,
    playbook: Playbook,
    *,
    member_id: str,
    name: str,
    question: str,
    text: str,
    source_key: str,
) -> Action:
    """Where a group reply goes: into the group where its channel posts at once, else an
    owner task with the reply ready to paste (customer groups). At once or after a wait
    alike. (A question asked of the 智能机器人 goes back through it: `aibot_reply`.)"""
    key = f"{ORIGIN}:{group.chat_id}:{source_key}"[:200]
    if group_channel(group.channel_type).capabilities.immediate:
        return QueueGroupText(group.chat_id, text, ORIGIN, key=key, member_id=member_id)
    return copilot.assign(
        group,
        playbook,
        origin=ORIGIN,
        summary=task_summary(name, question),
        paste_text=text,
        member_id=member_id,
        key=key,
    )


def register(executor: Executor) -> None:
    executor.register(RecordAnswer, apply_answer)
    executor.register(RecordUnanswered, apply_unanswered)
    executor.register(ScheduleWait, apply_wait)
    executor.register(JoinWait, apply_join)
