"""Highlights: what of a group's chat deserves to be kept once it has scrolled away —
the best threads of a period and the resources that became available in it. The
weekly 群刊 (handlers/features/weekly_digest) and the daily 早报 read them.

A thread is a run of the group's messages each within the thread window
(`health.thread_minutes`) of the one before; a longer silence starts the next. Threads
are ranked by member-to-member replies — the health signals' reading of who answers
whom (`member_rounds`), so hosts (owner, admins, staff) talking to themselves or
answered only by members count for nothing — then by 精华 marks (good_content ledger
lines on its messages), then by how many people took part, then the earlier first.

The message log keeps no content: a thread's opening text is read from the inbox row
its log row came from (`source_id` `inbox:<id>`). An opening whose row retention has
blanked, or that cannot be read, leaves its thread out; so does a message taken back
(revoked rows are not read at all). Members are named by their nickname, never by an
internal id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from handlers.core.events import Message, event_from_json
from handlers.features.content.library import applies_to
from handlers.features.health.signals import LoggedMessage, first_answers, member_rounds
from handlers.features.points.good_content import GOOD_CONTENT, message_key
from handlers.features.roles import HOST_ROLES, roles_in
from handlers.features.rules.handler import is_robot
from handlers.features.rules.texts import member_name, shorten
from storage.members import memberships_of
from storage.models import ContentItem, Group, InboxItem, MessageLog, PointsEntry

OPENING_CHARS = 60
INBOX_SOURCE = "inbox:"
# What a message without text is shown as (the log knows its kind, not its content).
KIND_LABELS = {
    "image": "[图片]",
    "voice": "[语音]",
    "video": "[视频]",
    "emotion": "[表情]",
    "file": "[文件]",
    "location": "[位置]",
    "chatrecord": "[聊天记录]",
}


@dataclass(frozen=True)
class LogRow:
    """One logged message as threads need it: the health signals' view plus where
    its content lives."""

    message: LoggedMessage
    msg_id: str | None
    source_id: str
    kind: str

    @property
    def essence_key(self) -> str:
        return message_key(self.msg_id, self.source_id)


@dataclass(frozen=True)
class ThreadScore:
    """A thread before its opening text is read."""

    opening: LogRow
    replies: int  # member-to-member replies in it (hosts and robots left out)
    participants: int  # people who wrote in it (robots left out)
    essence: int  # its messages marked 精华
    question: bool  # the opening reads as a question
    answered: bool  # … and a member (not a host) answered it within the window
    last_at: datetime


@dataclass(frozen=True)
class Thread:
    msg_id: str | None  # the opening message's id
    starter_id: str  # for operators; never shown to members
    starter_name: str  # the nickname, or the playbook's neutral name
    text: str  # the opening, trimmed to about OPENING_CHARS characters
    replies: int
    participants: int
    essence: int
    started_at: datetime
    question: bool = False
    answered: bool = False


@dataclass(frozen=True)
class Resource:
    """A content-library item that became available, or a message marked 精华."""

    kind: Literal["library", "essence"]
    title: str  # the item's title, or the marked message's opening text
    at: datetime  # when it became available / was marked
    url: str | None = None
    summary: str = ""
    item_id: int | None = None
    msg_id: str | None = None
    author_id: str | None = None  # the marked message's author; never shown to members
    author_name: str | None = None


# --- the pure core ----------------------------------------------------------------------


def split_threads(rows: Sequence[LogRow], window: timedelta) -> list[list[LogRow]]:
    """Runs of messages (in time order) each within `window` of the previous one."""
    threads: list[list[LogRow]] = []
    for row in rows:
        if threads and row.message.at - threads[-1][-1].message.at <= window:
            threads[-1].append(row)
        else:
            threads.append([row])
    return threads


def score_thread(
    thread: Sequence[LogRow], hosts: Collection[str], window: timedelta, marked: Collection[str]
) -> ThreadScore:
    messages = [row.message for row in thread]
    opening = thread[0]
    answered = False
    if opening.message.is_question:
        first = first_answers(messages, window)[0]  # the opening's: it comes first
        answered = first.answerer is not None and first.answerer not in hosts
    return ThreadScore(
        opening=opening,
        replies=member_rounds(messages, hosts, window),
        participants=len({m.member_id for m in messages}),
        essence=sum(1 for row in thread if row.essence_key in marked),
        question=opening.message.is_question,
        answered=answered,
        last_at=messages[-1].at,
    )


def rank_threads(
    rows: Sequence[LogRow], hosts: Collection[str], window: timedelta, marked: Collection[str]
) -> list[ThreadScore]:
    """Threads worth showing, best first: some member-to-member reply or a 精华 mark.
    `rows` in time order, robots already left out."""
    scored = [score_thread(t, hosts, window, marked) for t in split_threads(rows, window)]
    kept = [s for s in scored if s.replies > 0 or s.essence > 0]
    return sorted(
        kept,
        key=lambda s: (-s.replies, -s.essence, -s.participants, s.opening.message.at),
    )


def opening_text(event: object, kind: str) -> str | None:
    """What a message says, on one line and trimmed; None when there is nothing to show."""
    if not isinstance(event, Message) or event.msgtype == "revoke":
        return None
    said = event.text or event.title or KIND_LABELS.get(kind or event.msgtype, "")
    flat = " ".join(said.split())
    return shorten(flat, OPENING_CHARS) if flat else None


def became_available(
    created_at: datetime, valid_from: date | None, valid_until: date | None, tz: tzinfo
) -> datetime | None:
    """When a library item first could be offered: its creation, or the local start of
    its first valid day if later; None if it expired before it ever could be."""
    at = created_at
    if valid_from is not None:
        at = max(at, datetime.combine(valid_from, time(0), tzinfo=tz))
    if valid_until is not None and at.astimezone(tz).date() > valid_until:
        return None
    return at


# --- reads ------------------------------------------------------------------------------


async def _log_rows(
    session: AsyncSession, chat_id: str, start: datetime, end: datetime
) -> list[LogRow]:
    rows = await session.execute(
        select(
            MessageLog.member_id,
            MessageLog.sent_at,
            MessageLog.is_question,
            MessageLog.replies_to,
            MessageLog.length,
            MessageLog.msg_id,
            MessageLog.source_id,
            MessageLog.kind,
        )
        .where(
            MessageLog.chat_id == chat_id,
            MessageLog.sent_at >= start,
            MessageLog.sent_at < end,
            MessageLog.revoked_at.is_(None),
        )
        .order_by(MessageLog.sent_at, MessageLog.id)
    )
    return [
        LogRow(
            LoggedMessage(member, at, bool(question), replies_to, int(length)),
            msg_id,
            str(source),
            str(kind),
        )
        for member, at, question, replies_to, length, msg_id, source, kind in rows
        if not is_robot(member)  # the bot's own posts are neither threads nor replies
    ]


async def _hosts(session: AsyncSession, chat_id: str, members: Iterable[str]) -> frozenset[str]:
    roles = await roles_in(session, chat_id, members)
    return frozenset(m for m, found in roles.items() if found & HOST_ROLES)


async def _marked_keys(session: AsyncSession, chat_id: str, since: datetime) -> set[str]:
    """The ledger keys of messages marked 精华 at or after `since` (a mark always comes
    after its message, so this covers every message of a window starting then)."""
    rows = await session.execute(
        select(PointsEntry.source_key).where(
            PointsEntry.chat_id == chat_id,
            PointsEntry.reason == GOOD_CONTENT,
            PointsEntry.created_at >= since,
        )
    )
    return {str(key) for key in rows.scalars()}


async def opening_texts(session: AsyncSession, rows: Sequence[LogRow]) -> dict[str, str]:
    """Each row's text by its source id, from its inbox row; rows whose inbox row is
    gone or blanked by retention, or that say nothing, are missing."""
    ids = {
        int(row.source_id[len(INBOX_SOURCE) :]): row
        for row in rows
        if row.source_id.startswith(INBOX_SOURCE) and row.source_id[len(INBOX_SOURCE) :].isdigit()
    }
    if not ids:
        return {}
    found = await session.execute(
        select(InboxItem.id, InboxItem.event).where(
            InboxItem.id.in_(sorted(ids)), InboxItem.raw != ""
        )
    )
    texts: dict[str, str] = {}
    for inbox_id, event in found:
        row = ids[int(inbox_id)]
        try:
            parsed = event_from_json(event)
        except ValueError:  # a row no handler could read: nothing to show
            continue
        said = opening_text(parsed, row.kind)
        if said is not None:
            texts[row.source_id] = said
    return texts


async def _names(
    session: AsyncSession, chat_id: str, members: Iterable[str], playbook: Playbook
) -> dict[str, str]:
    wanted = sorted(set(members))
    found = await memberships_of(session, chat_id, wanted)
    return {m: member_name(found.get(m), playbook) for m in wanted}


def _window(playbook: Playbook) -> timedelta:
    return timedelta(minutes=playbook.health.thread_minutes)


async def best_threads(
    session: AsyncSession,
    chat_id: str,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    playbook: Playbook | None = None,
) -> list[Thread]:
    """The group's best threads started in [start, end), best first (see the module
    doc). `playbook` gives the thread window and the neutral name (defaults otherwise)."""
    if limit <= 0:
        return []
    playbook = playbook or Playbook()
    window = _window(playbook)
    # A thread that starts just before `start` is not this window's: read from a window
    # earlier, so its tail is not mistaken for a thread of its own.
    rows = await _log_rows(session, chat_id, start - window, end)
    hosts = await _hosts(session, chat_id, {row.message.member_id for row in rows})
    marked = await _marked_keys(session, chat_id, start - window)
    ranked = [
        s for s in rank_threads(rows, hosts, window, marked) if start <= s.opening.message.at < end
    ]
    threads: list[Thread] = []
    # Openings that cannot be shown are left out, so read a few more than asked.
    for offset in range(0, len(ranked), limit * 2):
        chunk = ranked[offset : offset + limit * 2]
        texts = await opening_texts(session, [s.opening for s in chunk])
        shown = [s for s in chunk if s.opening.source_id in texts]
        names = await _names(
            session, chat_id, (s.opening.message.member_id for s in shown), playbook
        )
        for s in shown:
            starter = s.opening.message.member_id
            threads.append(
                Thread(
                    msg_id=s.opening.msg_id,
                    starter_id=starter,
                    starter_name=names[starter],
                    text=texts[s.opening.source_id],
                    replies=s.replies,
                    participants=s.participants,
                    essence=s.essence,
                    started_at=s.opening.message.at,
                    question=s.question,
                    answered=s.answered,
                )
            )
            if len(threads) == limit:
                return threads
    return threads


async def _library_resources(
    session: AsyncSession, group: Group | None, chat_id: str, start: datetime, end: datetime
) -> list[Resource]:
    tz = start.tzinfo
    assert tz is not None, "the window must be aware"
    tags = list(group.tags or []) if group is not None else []
    # Candidates: created in the window, or first valid on one of its local days (a day
    # either side for the zone); became_available() decides.
    first_day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    items = await session.scalars(
        select(ContentItem)
        .where(
            ContentItem.enabled.is_(True),
            ContentItem.created_at < end,
            or_(
                ContentItem.created_at >= start,
                ContentItem.valid_from.between(first_day, last_day),
            ),
        )
        .order_by(ContentItem.id)
    )
    found: list[tuple[bool, datetime, int, Resource]] = []
    for item in items:
        if not applies_to(item.scope, chat_id, tags):
            continue
        at = became_available(item.created_at, item.valid_from, item.valid_until, tz)
        if at is None or not start <= at < end:
            continue
        resource = Resource(
            kind="library",
            title=item.title,
            at=at,
            url=item.url,
            summary=item.summary,
            item_id=item.id,
        )
        found.append((item.source == "external", at, item.id, resource))
    return [r for *_, r in sorted(found, key=lambda f: f[:3])]


async def _essence_resources(
    session: AsyncSession, chat_id: str, start: datetime, end: datetime, playbook: Playbook
) -> list[Resource]:
    marks = (
        await session.execute(
            select(PointsEntry.source_key, PointsEntry.member_id, PointsEntry.created_at)
            .where(
                PointsEntry.chat_id == chat_id,
                PointsEntry.reason == GOOD_CONTENT,
                PointsEntry.created_at >= start,
                PointsEntry.created_at < end,
            )
            .order_by(PointsEntry.created_at, PointsEntry.id)
        )
    ).all()
    if not marks:
        return []
    by_msg = {str(k)[4:]: (str(m), at) for k, m, at in marks if str(k).startswith("msg:")}
    by_log = {str(k)[4:]: (str(m), at) for k, m, at in marks if str(k).startswith("log:")}
    query = select(
        MessageLog.member_id,
        MessageLog.sent_at,
        MessageLog.msg_id,
        MessageLog.source_id,
        MessageLog.kind,
    ).where(MessageLog.chat_id == chat_id, MessageLog.revoked_at.is_(None))
    logged: list[LogRow] = []
    for column, keys in ((MessageLog.msg_id, by_msg), (MessageLog.source_id, by_log)):
        if keys:
            for member, at, msg_id, source, kind in await session.execute(
                query.where(column.in_(sorted(keys)))
            ):
                logged.append(LogRow(LoggedMessage(member, at), msg_id, str(source), str(kind)))
    texts = await opening_texts(session, logged)
    names = await _names(session, chat_id, (row.message.member_id for row in logged), playbook)
    resources: dict[str, Resource] = {}
    for row in logged:
        key = row.essence_key
        mark = by_msg.get(row.msg_id or "") if key.startswith("msg:") else by_log.get(row.source_id)
        text = texts.get(row.source_id)
        if mark is None or text is None or key in resources:
            continue
        author = row.message.member_id
        resources[key] = Resource(
            kind="essence",
            title=text,
            at=mark[1],
            msg_id=row.msg_id,
            author_id=author,
            author_name=names[author],
        )
    return sorted(resources.values(), key=lambda r: r.at)


async def new_resources(
    session: AsyncSession,
    chat_id: str,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    playbook: Playbook | None = None,
) -> list[Resource]:
    """What became available to the group in [start, end): content-library items for
    it (enabled, in scope, created or first valid in the window; own before external,
    then in the order they came), then messages marked 精华 in the window with their
    opening text (in the order they were marked). At most `limit` in all. `start`
    must be aware: its zone turns the items' valid dates into instants."""
    if limit <= 0:
        return []
    playbook = playbook or Playbook()
    group = await session.get(Group, chat_id)
    found = await _library_resources(session, group, chat_id, start, end)
    if len(found) < limit:
        found += await _essence_resources(session, chat_id, start, end, playbook)
    return found[:limit]
