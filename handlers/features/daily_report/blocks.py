"""The 早报's blocks, each decided by a small pure function: the day's greeting, the
knowledge point the queue offers next, the leaderboard snippet, the windows of time
the blocks read, and the demands block (rendered by the demands feed)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from bot.config.playbooks.render import KnowledgeVars, LeaderVars
from handlers.features.content.library import ContentEntry
from handlers.features.points.ledger import Standing, local_day_bounds

ORIGIN = "daily_report"
KNOWLEDGE_TEXT_CHARS = 200  # a knowledge point with only a body shows its beginning


def report_key(chat_id: str, day: date) -> str:
    """The idempotency key of a group's 早报 for a local day (its outbox row's key)."""
    return f"{ORIGIN}:{chat_id}:{day.isoformat()}"


def greeting_for(day: date, at: time) -> str:
    """A greeting that fits the hour it is sent at and the day of the week."""
    hello = "早上好" if at < time(11) else "中午好" if at < time(13) else "下午好"
    if at >= time(18):
        hello = "晚上好"
    weekday = day.weekday()
    if weekday == 0:
        return f"{hello}！新的一周开始了。"
    if weekday == 4:
        return f"{hello}！明天就是周末啦。"
    if weekday >= 5:
        return f"周末{hello}！"
    return f"{hello}！"


def next_knowledge_point(
    candidates: Sequence[ContentEntry], last_used: Mapping[int, date]
) -> ContentEntry | None:
    """The queue: an item never used in the group comes before any used one (so nothing
    repeats until every item was used), then the least recently used; ties keep the
    candidates' order (own items first, then by id), the same on every replica."""
    if not candidates:
        return None
    position = {entry.id: index for index, entry in enumerate(candidates)}
    return min(
        candidates,
        key=lambda e: (e.id in last_used, last_used.get(e.id, date.min), position[e.id]),
    )


def knowledge_vars(entry: ContentEntry) -> KnowledgeVars:
    """What members read of a knowledge point: its summary, else the start of its body."""
    summary = entry.summary
    if not summary and entry.body:
        body = " ".join(entry.body.split())
        summary = (
            body
            if len(body) <= KNOWLEDGE_TEXT_CHARS
            else body[: KNOWLEDGE_TEXT_CHARS - 1].rstrip() + "…"
        )
    return {"title": entry.title, "summary": summary, "url": entry.url}


def top_members(
    standings: Sequence[Standing],
    *,
    excluded: Collection[str],
    names: Mapping[str, str | None],
    top: int,
    neutral_name: str,
) -> list[LeaderVars]:
    """The first `top` members by points (more than 0), hosts and leavers left out;
    ranks counted among those shown, equal points sharing one."""
    shown: list[LeaderVars] = []
    for standing in standings:
        if len(shown) >= top:
            break
        if standing.points <= 0 or standing.member_id in excluded:
            continue
        position = len(shown) + 1
        rank = shown[-1]["rank"] if shown and shown[-1]["points"] == standing.points else position
        name = names.get(standing.member_id) or neutral_name
        shown.append({"rank": rank, "name": name, "points": standing.points})
    return shown


def local_midnight(day: date, tz: tzinfo) -> datetime:
    return local_day_bounds(day, tz)[0]


def yesterday_window(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The local day before `day`, as [start, end) in UTC: what 「昨日精彩」 covers."""
    return local_midnight(day - timedelta(days=1), tz), local_midnight(day, tz)


def leaderboard_window(day: date, tz: tzinfo) -> tuple[datetime, datetime, str]:
    """The month to date as of the end of yesterday, and its label (「12月」): on the 1st
    the 早报 shows the month that just ended, never an empty new one."""
    yesterday = day - timedelta(days=1)
    first = yesterday.replace(day=1)
    return local_midnight(first, tz), local_midnight(day, tz), f"{first.month}月"


def due_at(day: date, at: time, tz: tzinfo) -> datetime:
    """When the 早报 of `day` is due: the playbook's wall-clock time that day."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


# The demands feed renders its own block (handlers/features/demands/feed.py
# `render_demands`): `render(entries, overflow)` lists the entries under its heading and
# says how many more wait for a later 早报 (`overflow`); empty when there are none.
DemandsRenderer = Callable[[Sequence[Any], int], str]


@dataclass(frozen=True)
class DemandsBlock:
    """The day's demand posts as the feed gave them, and how to render a part of them.
    Posts the 早报 does not list (the feed's own overflow, or those trimmed to fit the
    channel) are not published, so they wait for a later 早报."""

    entries: tuple[Any, ...] = ()
    ids: tuple[int, ...] = ()  # the entries' post ids, in order
    overflow: int = 0  # posts the feed already held back for a later day
    render: DemandsRenderer | None = None

    @property
    def count(self) -> int:
        return len(self.entries)

    def listed(self, shown: int | None = None) -> int:
        return self.count if shown is None else max(0, min(shown, self.count))

    def text(self, shown: int | None = None) -> str:
        """The block with the first `shown` entries listed (all when None)."""
        if not self.entries or self.render is None:
            return ""
        listed = self.listed(shown)
        return self.render(self.entries[:listed], self.overflow + self.count - listed)

    def published_ids(self, shown: int | None = None) -> tuple[int, ...]:
        """The posts the 早报 publishes: those it lists."""
        return self.ids[: self.listed(shown)]
