"""Good content (+`points.good_content`): a good resource or question, as an admin
judges it, earns its author points once per message.

Two ways to say so, one ledger key (`msg:<msg_id>` with reason `good_content`), so
they never grant twice: an admin's call to `POST /admin/points/good-content`, or
a reaction in the group — an owner, admin or staff member quotes the message and
answers with nothing but a reaction word (`points.reaction_words`, 精华 by
default). A reaction needs to know what it quotes: 智能机器人 (aibot) callbacks
carry the quoted text (the admin writes "@机器人 精华" quoting the message), which
is found again in the message log by its text digest; archive records usually
carry no quote, so there the API is the way. Nobody earns from their own message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks.points_section import PointsSection
from handlers.core.actions import Action, Note
from handlers.core.context import Context
from handlers.core.events import Event, Message
from handlers.features.message_log import LogMessage
from handlers.features.points.ledger import AddPoints, add_line, points_group
from handlers.features.roles import roles_of
from handlers.features.rules.matching import text_fingerprint
from storage.models import MessageLog, PointsEntry

GOOD_CONTENT = "good_content"
JUDGES = frozenset({"owner", "admin", "staff"})  # whose reaction word grants points
QUOTE_WINDOW = timedelta(days=7)  # how far back a quoted text is looked for
# "精华！" and "精华 。" are the word too; emoji and words around it are not.
_TRIM = re.compile(r"^[\s!！.。~～]+|[\s!！.。~～]+$")


def reaction_word(text: str, words: tuple[str, ...]) -> str | None:
    """The reaction word the whole message is, or None."""
    said = _TRIM.sub("", text)
    return said if said and said in words else None


def good_content_key(msg_id: str) -> str:
    return f"msg:{msg_id}"


@dataclass(frozen=True)
class QuotedMessage:
    """The message a reaction points at, as the message log knows it."""

    author: str
    key: str  # the ledger key: msg:<msg_id>, or log:<source> for a row without an id


def decide_reaction(
    *,
    reactor: str,
    reactor_roles: frozenset[str],
    quoted: QuotedMessage | None,
    chat_id: str,
    points: int,
    word: str,
    at: datetime,
) -> list[Action]:
    if not reactor_roles & JUDGES:
        return [Note(f"{reactor} said {word} but is not owner, admin or staff")]
    if quoted is None:
        return [Note(f"{word} by {reactor}: the quoted message is not in the log")]
    if quoted.author == reactor:
        return [Note(f"{word} by {reactor} on their own message: no self-grants")]
    if points <= 0:
        return []
    return [
        AddPoints(
            chat_id,
            quoted.author,
            points,
            GOOD_CONTENT,
            quoted.key[:160],
            at,
            actor=reactor[:64],
            note=f"回复「{word}」",
        )
    ]


def message_key(msg_id: str | None, source_id: str) -> str:
    """A logged message's ledger key: by its id, else by the log row's source."""
    return good_content_key(msg_id) if msg_id else f"log:{source_id}"


async def find_quoted(event: Message, ctx: Context) -> QuotedMessage | None:
    """The quoted message's author and key: by its id when the source gives one, else
    the newest logged message (of the quoted sender, if known) with the same text
    digest in the last week, the batch's not-yet-written rows included."""
    quote = event.quote
    assert quote is not None and event.chat_id
    if quote.msg_id:
        author = (
            await ctx.session.execute(
                select(MessageLog.member_id)
                .where(MessageLog.chat_id == event.chat_id, MessageLog.msg_id == quote.msg_id)
                .limit(1)
            )
        ).scalar_one_or_none()
        author = author or quote.sender
        return QuotedMessage(author, good_content_key(quote.msg_id)) if author else None
    digest = text_fingerprint(quote.text)
    if digest is None:
        return None
    pending = ctx.deferred.actions.get(LogMessage, []) if ctx.deferred is not None else []
    for row in reversed(pending):
        if (
            row.chat_id == event.chat_id
            and row.revokes is None
            and row.text_hash == digest
            and row.at <= event.occurred_at
            and (quote.sender is None or row.member_id == quote.sender)
            and row.member_id != event.sender
        ):
            return QuotedMessage(row.member_id, message_key(row.msg_id, row.source_id))
    query = select(MessageLog.member_id, MessageLog.msg_id, MessageLog.source_id).where(
        MessageLog.chat_id == event.chat_id,
        MessageLog.sent_at >= event.occurred_at - QUOTE_WINDOW,
        MessageLog.sent_at <= event.occurred_at,
        MessageLog.text_hash == digest,
        MessageLog.revoked_at.is_(None),
        MessageLog.member_id != event.sender,
    )
    if quote.sender:
        query = query.where(MessageLog.member_id == quote.sender)
    found = (
        await ctx.session.execute(
            query.order_by(MessageLog.sent_at.desc(), MessageLog.id.desc()).limit(1)
        )
    ).first()
    if found is None:
        return None
    member, msg_id, source_id = found
    return QuotedMessage(str(member), message_key(msg_id, str(source_id)))


async def on_message(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, Message)
    found = await points_group(event, ctx) if event.quote is not None else None
    if found is None:
        return []
    assert event.chat_id
    points = found.points
    word = reaction_word(event.text, points.reaction_words)
    if word is None:
        return []
    return decide_reaction(
        reactor=event.sender,
        reactor_roles=await roles_of(ctx.session, event.chat_id, event.sender),
        quoted=await find_quoted(event, ctx),
        chat_id=event.chat_id,
        points=points.good_content,
        word=word,
        at=event.occurred_at,
    )


# --- the admin's grant ---------------------------------------------------------------


class GrantRefused(Exception):
    """The grant cannot be made (the message was taken back, points are off, …)."""


class UnknownMessage(Exception):
    pass


@dataclass(frozen=True)
class Granted:
    entry: PointsEntry
    new: bool  # False: the message had its points already; nothing changed


async def grant(
    session: AsyncSession,
    points: PointsSection | None,
    *,
    chat_id: str,
    msg_id: str,
    by: str,
    note: str | None,
    now: datetime,
) -> Granted:
    """Grant the message's author `good_content` points, once per message."""
    row = (
        await session.execute(
            select(MessageLog)
            .where(MessageLog.chat_id == chat_id, MessageLog.msg_id == msg_id)
            .order_by(MessageLog.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        raise UnknownMessage(
            f"no message {msg_id} in the message log of {chat_id} "
            "(unknown, or older than RETENTION_LOG_DAYS)"
        )
    if row.revoked_at is not None:
        raise GrantRefused(f"message {msg_id} was taken back by its author")
    if points is None or not points.enabled or points.good_content <= 0:
        raise GrantRefused(f"points for good content are off in the playbook of {chat_id}")
    if by == row.member_id:
        raise GrantRefused(f"{by} wrote message {msg_id}: no self-grants")
    key = good_content_key(msg_id)
    new = await add_line(
        session,
        chat_id=chat_id,
        member_id=row.member_id,
        delta=points.good_content,
        reason=GOOD_CONTENT,
        source_key=key,
        at=now,
        actor=by,
        note=note,
    )
    entry = (
        await session.execute(
            select(PointsEntry).where(
                PointsEntry.chat_id == chat_id,
                PointsEntry.member_id == row.member_id,
                PointsEntry.reason == GOOD_CONTENT,
                PointsEntry.source_key == key,
            )
        )
    ).scalar_one()
    return Granted(entry, new)
