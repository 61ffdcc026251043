"""The message log: one compact row per group message (who, where, when, what kind,
how long, whom it answers), for points and group health to read. No content: the
inbox keeps that, and retention blanks it there.

A message taken back (revoke) marks its row instead of adding one, so what a
member withdrew counts for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.core.events import Event, Message
from handlers.core.executor import Executor
from handlers.features.questions import looks_like_question
from handlers.features.rules.matching import text_fingerprint
from storage.db import insert_for
from storage.models import MessageLog

MAX_ID = 128  # the log's id columns
QUESTION_KINDS = frozenset({"text", "mixed", "markdown"})


@dataclass(frozen=True)
class LogMessage(Action):
    chat_id: str
    member_id: str
    at: datetime
    kind: str
    length: int
    msg_id: str | None = None
    replies_to: str | None = None  # the member whose message this one quotes
    revokes: str | None = None  # set for a revoke: the msg_id to mark, nothing added
    source_id: str = ""
    text_hash: str | None = None  # the rules' "same text again" (no content kept)
    is_question: bool = False


def log_entry(event: Message, source_id: str) -> LogMessage | None:
    """The row a group message adds (or, for a revoke, marks); None outside groups."""
    if not event.chat_id or event.chat_type != "group" or not event.sender:
        return None
    quoted = event.quote.sender if event.quote is not None else None
    return LogMessage(
        chat_id=event.chat_id,
        member_id=event.sender[:MAX_ID],
        at=event.occurred_at,
        kind=event.msgtype,
        length=len(event.text),
        msg_id=event.msg_id[:MAX_ID] if event.msg_id else None,
        replies_to=quoted[:MAX_ID] if quoted and quoted != event.sender else None,
        revokes=event.revokes if event.msgtype == "revoke" else None,
        source_id=source_id,
        text_hash=text_fingerprint(event.text) if event.msgtype != "revoke" else None,
        is_question=event.msgtype in QUESTION_KINDS and looks_like_question(event.text),
    )


async def record(event: Event, ctx: Context) -> list[LogMessage]:
    assert isinstance(event, Message)
    # The source's id keeps a replayed event from adding a second row.
    source = ctx.source_id or (f"msg:{event.msg_id}" if event.msg_id else None)
    entry = log_entry(event, source[:64]) if source else None
    return [entry] if entry is not None else []


async def apply_entries(actions: Sequence[LogMessage], session: AsyncSession) -> None:
    """New rows in one executemany, then the revokes of the batch (a message and its
    revoke may arrive in the same batch). A replayed source adds nothing twice."""
    table = cast(Table, MessageLog.__table__)
    connection = await session.connection()
    fresh: dict[str, LogMessage] = {}
    for action in actions:
        if action.revokes is None:
            fresh.setdefault(action.source_id, action)
    if fresh:
        await connection.execute(
            insert_for(session)(table).on_conflict_do_nothing(index_elements=["source_id"]),
            [
                {
                    "chat_id": action.chat_id,
                    "member_id": action.member_id,
                    "sent_at": action.at,
                    "kind": action.kind,
                    "length": action.length,
                    "msg_id": action.msg_id,
                    "replies_to": action.replies_to,
                    "source_id": action.source_id,
                    "text_hash": action.text_hash,
                    "is_question": action.is_question,
                }
                for action in fresh.values()
            ],
        )
    revoked = [action for action in actions if action.revokes is not None]
    if revoked:
        await connection.execute(
            update(table)
            .where(
                table.c.chat_id == bindparam("b_chat"),
                table.c.msg_id == bindparam("b_msg"),
                table.c.revoked_at.is_(None),
            )
            .values(revoked_at=bindparam("b_at", type_=table.c.revoked_at.type)),
            [
                {"b_chat": action.chat_id, "b_msg": action.revokes, "b_at": action.at}
                for action in revoked
            ],
        )


def register(executor: Executor) -> None:
    executor.register_bulk(LogMessage, apply_entries)
