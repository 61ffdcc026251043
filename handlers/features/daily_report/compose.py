"""The 早报's text from its blocks, fitted to the channel: a group reads one or two
messages, never a flood. When the text needs more parts than allowed, the lowest
blocks give way first: yesterday's highlights, then demand posts from the last one
(the feed's block says how many wait, and they are not published, so tomorrow's
早报 offers them), then the leaderboard, then a long knowledge summary is shortened;
only then is the text cut."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from bot.config.playbooks.render import (
    GroupVars,
    HighlightVars,
    KnowledgeVars,
    LeaderVars,
    ResourceVars,
    daily_report_variables,
    render_text,
)
from handlers.channels import split_text
from handlers.features.daily_report.blocks import DemandsBlock

SHORT_SUMMARY_CHARS = 60


@dataclass(frozen=True)
class Blocks:
    """Everything one day's 早报 of one group may say."""

    day: date
    greeting: str
    group: GroupVars
    knowledge: KnowledgeVars | None = None
    knowledge_item_id: int | None = None
    demands: DemandsBlock = field(default_factory=DemandsBlock)
    highlights: tuple[HighlightVars, ...] = ()
    new_resources: tuple[ResourceVars, ...] = ()
    leaderboard: tuple[LeaderVars, ...] = ()
    leaderboard_month: str = ""
    sponsored: str | None = None
    shown_demands: int | None = None  # None: every demand listed

    def has_news(self) -> bool:
        """Something worth a message: a date, a greeting or an ad alone is not."""
        return bool(
            self.knowledge
            or self.demands.count
            or self.highlights
            or self.new_resources
            or self.leaderboard
        )

    def variables(self) -> dict[str, Any]:
        return daily_report_variables(
            day=self.day,
            greeting=self.greeting,
            group=self.group,
            knowledge=self.knowledge,
            demands=self.demands.text(self.shown_demands),
            demand_count=self.demands.count,
            highlights=self.highlights,
            new_resources=self.new_resources,
            leaderboard=self.leaderboard,
            leaderboard_month=self.leaderboard_month,
            sponsored=self.sponsored,
        )


@dataclass(frozen=True)
class Fitted:
    text: str
    parts: tuple[str, ...]
    trimmed: tuple[str, ...] = ()  # what gave way, for the record (English, for operators)
    blocks: Blocks | None = None  # the blocks the text was rendered from


def _shorter_summary(blocks: Blocks) -> Blocks:
    knowledge = blocks.knowledge
    if knowledge is None or len(knowledge["summary"]) <= SHORT_SUMMARY_CHARS:
        return blocks
    short = knowledge["summary"][: SHORT_SUMMARY_CHARS - 1].rstrip() + "…"
    return replace(blocks, knowledge={**knowledge, "summary": short})


def _trims(blocks: Blocks) -> list[tuple[str, Callable[[Blocks], Blocks]]]:
    """The ways to shorten, in the order they are tried (each on top of the last)."""
    steps: list[tuple[str, Callable[[Blocks], Blocks]]] = []
    if blocks.highlights or blocks.new_resources:
        steps.append(("highlights", lambda b: replace(b, highlights=(), new_resources=())))
    for shown in range(blocks.demands.count - 1, -1, -1):
        steps.append(
            (f"demands listed: {shown} of {blocks.demands.count}", _showing(shown)),
        )
    if blocks.leaderboard:
        steps.append(("leaderboard", lambda b: replace(b, leaderboard=())))
    steps.append(("knowledge summary shortened", _shorter_summary))
    return steps


def _showing(shown: int) -> Callable[[Blocks], Blocks]:
    return lambda b: replace(b, shown_demands=shown)


def fit(template: str, blocks: Blocks, *, max_bytes: int, max_parts: int) -> Fitted:
    """The text in at most `max_parts` parts of `max_bytes`, trimming the lowest blocks
    first. Raises what rendering raises (a template that fails on this day's data)."""
    trimmed: list[str] = []
    current = blocks
    text = render_text(template, current.variables())
    parts = split_text(text, max_bytes)
    steps = iter(_trims(blocks))
    while len(parts) > max_parts:
        step = next(steps, None)
        if step is None:
            parts = parts[:max_parts]
            text = "\n".join(parts)
            trimmed.append(f"cut to {max_parts} part(s)")
            break
        label, shorten = step
        shortened = shorten(current)
        if shortened == current:
            continue
        current = shortened
        # A demand step replaces the one before it: record only the last.
        if label.startswith("demands") and trimmed and trimmed[-1].startswith("demands"):
            trimmed[-1] = label
        else:
            trimmed.append(label)
        text = render_text(template, current.variables())
        parts = split_text(text, max_bytes)
    return Fitted(text, tuple(parts), tuple(trimmed), current)
