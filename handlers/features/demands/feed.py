"""What the 早报 takes from the demand posts: the day's block and its bookkeeping.

The contract that makes "a demand post submitted during the day appears in the next
早报 and not the one after" true:

- `demands_for_report` gives a group's report of `report_date` the approved posts in
  its scope that were submitted (and approved) before `cutoff` and were not published
  in the group by another day's report: oldest first, at most `max_per_report`; the
  rest wait for the next day (`overflow` counts them).
- the 早报 applies `PublishDemands` in the transaction that queues its message, so the
  posts it shows are published in that group once and never again; a replayed or
  resent 早报 of the same day shows the same posts (they are this day's).
- `render_demands` writes the block (pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from handlers.core.actions import Action
from handlers.core.context import Context
from handlers.features.demands.store import APPROVED, in_scope
from storage.db import insert_for
from storage.models import DemandPost, DemandPublication, Group

HEADING = "【今日供需】"


@dataclass(frozen=True, slots=True)
class DemandEntry:
    """One post as the 早报 shows it."""

    id: int
    kind: str
    text: str
    name: str  # may be empty (an operator's post without a name)
    contact: str | None


class DemandFeed(list[DemandEntry]):
    """The posts for one report, oldest first; `overflow` more wait for a later one."""

    def __init__(self, entries: Iterable[DemandEntry] = (), overflow: int = 0) -> None:
        super().__init__(entries)
        self.overflow = overflow

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(entry.id for entry in self)


async def demands_for_report(
    session: AsyncSession,
    group: Group,
    playbook: Playbook,
    report_date: date,
    cutoff: datetime,
) -> DemandFeed:
    """The posts the group's 早报 of `report_date` publishes (see the module's doc).
    Posts last seen more than `expire_days` before the cutoff are stale and left out,
    and so are kinds the group's playbook does not list."""
    section = playbook.demands
    published_before = exists(
        select(1).where(
            DemandPublication.demand_id == DemandPost.id,
            DemandPublication.chat_id == group.chat_id,
            DemandPublication.report_date != report_date,
        )
    )
    rows = await session.scalars(
        select(DemandPost)
        .where(
            DemandPost.status == APPROVED,
            DemandPost.submitted_at < cutoff,
            DemandPost.decided_at < cutoff,
            DemandPost.last_seen_at >= cutoff - timedelta(days=section.expire_days),
            DemandPost.kind.in_(section.kinds),
            in_scope(session, group.chat_id, [str(tag) for tag in (group.tags or ())]),
            ~published_before,
        )
        .order_by(DemandPost.submitted_at, DemandPost.id)
    )
    entries = [entry_of(post) for post in rows]
    shown = entries[: section.max_per_report]
    return DemandFeed(shown, overflow=len(entries) - len(shown))


def entry_of(post: DemandPost) -> DemandEntry:
    return DemandEntry(
        id=post.id, kind=post.kind, text=post.text, name=post.name, contact=post.contact
    )


@dataclass(frozen=True)
class PublishDemands(Action):
    """The group's 早报 of `report_date` published these posts: once per group ever."""

    chat_id: str
    report_date: date
    demand_ids: tuple[int, ...]


async def apply_publish(action: PublishDemands, ctx: Context) -> None:
    if not action.demand_ids:
        return
    await ctx.session.execute(
        insert_for(ctx.session)(DemandPublication)
        .values(
            [
                {
                    "demand_id": demand_id,
                    "chat_id": action.chat_id,
                    "report_date": action.report_date,
                    "published_at": ctx.now,
                }
                for demand_id in sorted(set(action.demand_ids))
            ]
        )
        .on_conflict_do_nothing(index_elements=["demand_id", "chat_id"])
    )
    ctx.note(f"demands: {len(action.demand_ids)} published in {action.chat_id}")


def render_demands(
    entries: Sequence[DemandEntry], overflow: int = 0, *, kinds: Sequence[str] = ()
) -> str:
    """The 早报's block: the heading, then one line per post grouped by kind (in `kinds`'
    order, then by first appearance), and how many wait for tomorrow. Empty when there
    is nothing to show, so a template can leave the block out."""
    if not entries:
        return ""
    order = [kind for kind in kinds if any(entry.kind == kind for entry in entries)]
    for entry in entries:
        if entry.kind not in order:
            order.append(entry.kind)
    lines = [HEADING]
    for kind in order:
        lines += [_line(entry) for entry in entries if entry.kind == kind]
    if overflow > 0:
        lines.append(f"还有 {overflow} 条在排队，明天的早报接着发。")
    return "\n".join(lines)


def _line(entry: DemandEntry) -> str:
    text = " ".join(entry.text.split())  # one post, one line
    who = f"{entry.kind} · {entry.name}" if entry.name else entry.kind
    contact = f"（联系：{entry.contact}）" if entry.contact else ""
    return f"{who}：{text}{contact}"
