"""`keywords.mode: wait`, the holding part (SPEC §5.4; 群友交流 > 群主回答).

In wait mode a question that does not @-mention the bot is not answered at once: the
handler records a `keyword_waits` row, due `wait_minutes` later, with the reply
already written (the items as the library had them when asked). When it is due
(`keyword_wait_kind.py`) the bot answers only if no member answered meanwhile; this
module holds the row's insert and that pure judgement.

The same question asked again while its answer is held joins the held row
(`JoinWait`) instead of holding a second answer: one reply then names everyone who
asked, and the second asking is no "member answer" to the first. A question the
library had nothing for may be held as an `expert` wait (`experts.py`): its expert is
cued at the due time if nobody answered.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select

from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.features.health.signals import LoggedMessage, first_answers
from storage.db import insert_for
from storage.models import KeywordWait

ANSWER, EXPERT = "answer", "expert"


@dataclass(frozen=True)
class ScheduleWait(Action):
    """Hold a keyword answer (or an expert cue) until `due_at`; one per question message."""

    chat_id: str
    member_id: str
    source_key: str
    asked_at: datetime
    due_at: datetime
    item_ids: tuple[int, ...]
    question: str
    reply_text: str
    kind: str = ANSWER
    question_key: str = ""
    experts: tuple[str, ...] = ()


@dataclass(frozen=True)
class JoinWait(Action):
    """Another member asked what a held row already holds: add them to its askers."""

    wait_source_key: str
    member_id: str
    source_key: str


@dataclass
class PendingWait:
    """A held row as the handler matches later questions against it (batch memo)."""

    source_key: str
    kind: str
    item_ids: frozenset[int]
    question_key: str
    asked: set[str]  # source keys of the messages already joined (replays)
    experts: tuple[str, ...] = ()

    def holds(self, hold: ScheduleWait) -> bool:
        """The same question: the same words, or the same items found (an answer), or
        the same experts' field (a cue: one note about two askings, not two)."""
        if hold.kind != self.kind:
            return False
        if hold.question_key and hold.question_key == self.question_key:
            return True
        if hold.kind == ANSWER:
            return bool(hold.item_ids) and frozenset(hold.item_ids) == self.item_ids
        return bool(hold.experts) and hold.experts == self.experts


async def pending_waits(ctx: Context, chat_id: str) -> list[PendingWait]:
    """The group's held rows: one read per group and batch; the handler adds the
    batch's own."""
    key = ("keyword_waits", chat_id)
    known: list[PendingWait] | None = ctx.memo.extra.get(key)
    if known is None:
        rows = await ctx.session.execute(
            select(
                KeywordWait.source_key,
                KeywordWait.kind,
                KeywordWait.item_ids,
                KeywordWait.question_key,
                KeywordWait.askers,
                KeywordWait.experts,
            ).where(KeywordWait.chat_id == chat_id, KeywordWait.status == "pending")
        )
        known = [
            PendingWait(
                source_key=source_key,
                kind=kind,
                item_ids=frozenset(int(item) for item in item_ids),
                question_key=question_key,
                asked={source_key, *(str(pair[1]) for pair in askers)},
                experts=tuple(str(expert) for expert in experts),
            )
            for source_key, kind, item_ids, question_key, askers, experts in rows
        ]
        ctx.memo.extra[key] = known
    return known


def join_or_schedule(pending: list[PendingWait], action: ScheduleWait) -> Action | None:
    """The action for a question to hold: join a held row that holds the same, else the
    new row (remembered for the rest of the batch). None: this message already joined."""
    for wait in pending:
        if wait.holds(action):
            if action.source_key in wait.asked:
                return None
            wait.asked.add(action.source_key)
            return JoinWait(wait.source_key, action.member_id, action.source_key)
    pending.append(
        PendingWait(
            action.source_key,
            action.kind,
            frozenset(action.item_ids),
            action.question_key,
            {action.source_key},
            action.experts,
        )
    )
    return action


async def apply_join(action: JoinWait, ctx: Context) -> None:
    # Under the row's lock, so two replicas joining at once keep both askers.
    wait = await ctx.session.scalar(
        select(KeywordWait)
        .where(KeywordWait.source_key == action.wait_source_key)
        .with_for_update()
    )
    if wait is None or wait.status != "pending":
        return
    askers = [list(pair) for pair in wait.askers]
    if action.source_key in {pair[1] for pair in askers} or action.source_key == wait.source_key:
        return  # a replay
    wait.askers = [*askers, [action.member_id, action.source_key]]


def asker_ids(wait: KeywordWait) -> list[str]:
    """Everyone who asked, the first asker first, each once."""
    ids = [wait.member_id]
    for pair in wait.askers:
        if str(pair[0]) not in ids:
            ids.append(str(pair[0]))
    return ids


async def apply_wait(action: ScheduleWait, ctx: Context) -> None:
    # A replayed event (same message) schedules nothing new.
    table = cast(Table, KeywordWait.__table__)
    await ctx.session.execute(
        insert_for(ctx.session)(table)
        .values(
            chat_id=action.chat_id,
            member_id=action.member_id,
            source_key=action.source_key,
            asked_at=action.asked_at,
            due_at=action.due_at,
            item_ids=list(action.item_ids),
            question=action.question,
            reply_text=action.reply_text,
            status="pending",
            note="",
            kind=action.kind,
            question_key=action.question_key,
            askers=[],
            experts=list(action.experts),
        )
        .on_conflict_do_nothing(index_elements=["source_key"])
    )


def member_answerer(
    asker: str,
    asked_at: datetime,
    due_at: datetime,
    later: Sequence[LoggedMessage],
    hosts: Collection[str],
    askers: Collection[str] = (),
) -> str | None:
    """The member who answered the question within the wait, or None. Hosts (owner,
    admins, staff) do not count: the wait is for members to talk to each other, and a
    colleague's chat is not the community answering; nor do the others who asked the
    same meanwhile (`askers`). `later`: the group's messages from the question on, in
    time order (the question's own row may be among them)."""
    question = LoggedMessage(asker, asked_at, is_question=True)
    left_out = {*hosts, *askers}
    others = [m for m in later if m.member_id not in left_out and asked_at <= m.at <= due_at]
    [answer] = first_answers([question, *others], window=due_at - asked_at)
    return answer.answerer
