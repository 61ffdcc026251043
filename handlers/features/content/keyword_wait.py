"""`keywords.mode: wait`, the holding part (SPEC §5.4; 群友交流 > 群主回答).

In wait mode a question that does not @-mention the bot is not answered at once: the
handler records a `keyword_waits` row, due `wait_minutes` later, with the reply
already written (the items as the library had them when asked). When it is due
(`keyword_wait_kind.py`) the bot answers only if no member answered meanwhile; this
module holds the row's insert and that pure judgement.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table

from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.features.health.signals import LoggedMessage, first_answers
from storage.db import insert_for
from storage.models import KeywordWait


@dataclass(frozen=True)
class ScheduleWait(Action):
    """Hold a keyword answer until `due_at`; one per question message."""

    chat_id: str
    member_id: str
    source_key: str
    asked_at: datetime
    due_at: datetime
    item_ids: tuple[int, ...]
    question: str
    reply_text: str


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
        )
        .on_conflict_do_nothing(index_elements=["source_key"])
    )


def member_answerer(
    asker: str,
    asked_at: datetime,
    due_at: datetime,
    later: Sequence[LoggedMessage],
    hosts: Collection[str],
) -> str | None:
    """The member who answered the question within the wait, or None. Hosts (owner,
    admins, staff) do not count: the wait is for members to talk to each other, and a
    colleague's chat is not the community answering. `later`: the group's messages
    from the question on, in time order (the question's own row may be among them)."""
    question = LoggedMessage(asker, asked_at, is_question=True)
    others = [m for m in later if m.member_id not in hosts and asked_at <= m.at <= due_at]
    [answer] = first_answers([question, *others], window=due_at - asked_at)
    return answer.answerer
