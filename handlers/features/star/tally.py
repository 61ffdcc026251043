"""贡献之星, the pure part: the calendar of a month's vote, who stands, what a reply
means, and how the replies are counted. No I/O; vote.py reads the facts.

Decisions (documented for operators in docs/architecture.md):
- Candidates are the top `candidates` of the month's leaderboard with points above 0,
  without the group's owner, admins and staff (the corp's own people run the group;
  the prize is for members) and without members who have left. Members tied with the
  last place are included too, up to twice `candidates`: a fair vote does not drop
  someone with the same points for the accident of their id; past that the
  leaderboard's order (points, then member id) decides.
- A reply is a vote when, after NFKC (full-width digits) and without spaces, it is a
  number, optionally written 投3, #3 or 3号 (with one closing 。.!！). Anything else
  is conversation.
- A member's first vote for a candidate counts; later ones, even for another number,
  are duplicates. A vote for oneself is not counted (a self-vote) and does not use up
  the member's vote. A number no candidate has is invalid and uses up nothing.
  Replies outside the window are not counted. Staff may vote: they are members of
  the group, only not candidates.
- The most votes win; all candidates tied at the top are winners together. No
  counted vote: no winner.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from bot.config.playbooks.points_section import StarVote
from handlers.core.months import next_month, previous_month

# An opening missed by more than this (the service was down) is skipped, not run late;
# an admin can still open that month's vote through the API.
LATE_GRACE = timedelta(days=1)
_VOTE = re.compile(r"^(?:投|#)?(\d{1,3})号?[.。!！]?$")


# --- the calendar ----------------------------------------------------------------------


def month_bounds(first: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of a local month, in UTC."""

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)

    return midnight(first), midnight(next_month(first))


def opening_at(voted: date, star: StarVote, tz: tzinfo) -> datetime:
    """When the vote on month `voted` opens: `open_day` of the following month at
    `open_at`, local time."""
    day = next_month(voted).replace(day=star.open_day)
    return datetime.combine(day, star.open_at, tzinfo=tz).astimezone(UTC)


def to_schedule(at: datetime, star: StarVote, tz: tzinfo) -> tuple[date, datetime] | None:
    """The vote a group should have on the books at `at`: last month's, due at its
    opening, from the first of the month until `LATE_GRACE` after the opening."""
    voted = previous_month(at.astimezone(tz).date())
    opens = opening_at(voted, star, tz)
    if at >= opens + LATE_GRACE:
        return None
    return voted, opens


# --- replies -----------------------------------------------------------------------------


def parse_vote(text: str) -> int | None:
    """The number a reply votes for, or None when it is not a vote."""
    compact = "".join(unicodedata.normalize("NFKC", text).split())
    match = _VOTE.match(compact)
    if match is None:
        return None
    number = int(match[1])
    return number if number >= 1 else None


# --- candidates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    number: int
    member_id: str
    name: str
    points: int

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "member_id": self.member_id,
            "name": self.name,
            "points": self.points,
        }


@dataclass(frozen=True)
class Scored:
    member_id: str
    points: int


def pick_candidates(
    standings: Sequence[Scored],
    *,
    excluded: set[str],
    names: Mapping[str, str | None],
    seats: int,
    neutral_name: str,
) -> list[Candidate]:
    """`standings` in leaderboard order (points down, then member id)."""
    eligible = [s for s in standings if s.points > 0 and s.member_id not in excluded]
    chosen = eligible[:seats]
    if chosen:
        cut = chosen[-1].points
        for extra in eligible[seats : seats * 2]:
            if extra.points != cut:
                break
            chosen.append(extra)
    return [
        Candidate(number, s.member_id, names.get(s.member_id) or neutral_name, s.points)
        for number, s in enumerate(chosen, start=1)
    ]


# --- the tally ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ballot:
    voter: str
    number: int
    cast_at: datetime
    seq: int = 0  # arrival order among replies of the same instant


@dataclass(frozen=True)
class Tally:
    votes: dict[int, int]  # candidate number → counted votes (every candidate listed)
    counted: int
    duplicates: int
    self_votes: int
    invalid: int
    outside_window: int
    winners: tuple[int, ...]  # numbers; several when tied at the top
    voters: frozenset[str] = field(default_factory=frozenset)

    def as_json(self) -> dict[str, Any]:
        return {
            "votes": {str(number): n for number, n in self.votes.items()},
            "counted": self.counted,
            "duplicates": self.duplicates,
            "self_votes": self.self_votes,
            "invalid": self.invalid,
            "outside_window": self.outside_window,
            "winners": list(self.winners),
        }


def tally(
    candidates: Mapping[int, str],
    ballots: Sequence[Ballot],
    *,
    opened_at: datetime,
    closes_at: datetime,
) -> Tally:
    """`candidates`: number → member id. Replies are taken in the order they were
    written, so "the first vote counts" does not depend on processing order."""
    votes = dict.fromkeys(sorted(candidates), 0)
    voted: set[str] = set()
    duplicates = self_votes = invalid = outside = 0
    for ballot in sorted(ballots, key=lambda b: (b.cast_at, b.seq)):
        if not opened_at <= ballot.cast_at < closes_at:
            outside += 1
        elif ballot.number not in candidates:
            invalid += 1
        elif ballot.voter in voted:
            duplicates += 1
        elif candidates[ballot.number] == ballot.voter:
            self_votes += 1
        else:
            voted.add(ballot.voter)
            votes[ballot.number] += 1
    top = max(votes.values(), default=0)
    winners = tuple(n for n, count in votes.items() if top > 0 and count == top)
    return Tally(
        votes=votes,
        counted=len(voted),
        duplicates=duplicates,
        self_votes=self_votes,
        invalid=invalid,
        outside_window=outside,
        winners=winners,
        voters=frozenset(voted),
    )
