"""Demand posts, the pure part: a post's text made fit to publish, what makes two posts
the same, and which messages are posts at all.

Duplicates are the point of collecting: the same 招聘 copied into five groups, or posted
again every morning with a word changed, should reach members once. Two posts are the
same when their texts say the same once width, case, script, spaces and punctuation are
folded away (whoever posted them), or when one member posts the same kind again with
nearly the same text (`NEAR_SAME` of the folded characters in common).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher

from handlers.features.questions import looks_like_question
from handlers.features.rules.matching import normalize

# Punctuation, spaces and symbols do not change what a post says.
_NOT_MEANING = re.compile(r"[\s\W_]+", re.UNICODE)
_LEADING_MENTIONS = re.compile(r"^(@\S+\s*)+")
NEAR_SAME = 0.85  # the share of folded text two posts of one member share to be one
# A question this short is asked of the group, now (大家招聘都用什么渠道？); a post with
# details that ends in a question (有意向吗？) is still a post.
QUESTION_MAX_CHARS = 30


def tidy(text: str) -> str:
    """What a post shows: leading @mentions dropped, lines kept, runs of spaces folded,
    blank lines dropped."""
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    return _LEADING_MENTIONS.sub("", "\n".join(line for line in lines if line)).strip()


def clip(text: str, max_chars: int) -> str:
    """At most `max_chars` characters; an ellipsis marks a cut."""
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1].rstrip() + "…"


def folded(text: str) -> str:
    """The text as duplicates are judged: normalized (width, case, traditional script)
    with spaces, punctuation and symbols removed."""
    return _NOT_MEANING.sub("", normalize(text))


def dedup_key(text: str) -> str:
    """A short digest of the folded text: equal for posts that say the same."""
    return hashlib.sha256(folded(text).encode("utf-8")).hexdigest()[:40]


def nearly_same(a: str, b: str) -> bool:
    """Two texts of one member that differ by a few characters (a date, a salary)."""
    left, right = folded(a), folded(b)
    if not left or not right:
        return left == right
    return SequenceMatcher(None, left, right, autojunk=False).ratio() >= NEAR_SAME


def reads_as_question(text: str) -> bool:
    """A short question for the group (大家招聘都用什么渠道？) is not a demand post: the
    group can answer it now, and tomorrow's 早报 would read it out oddly."""
    return looks_like_question(text) and len(folded(text)) <= QUESTION_MAX_CHARS


@dataclass(frozen=True, slots=True)
class Candidate:
    """A recent post a new one may duplicate."""

    id: int
    kind: str
    text: str
    member_id: str | None
    dedup_key: str
    submitted_at: datetime


def duplicate_of(
    *, kind: str, text: str, member_id: str | None, candidates: Iterable[Candidate]
) -> int | None:
    """The first (oldest) recent post the new one duplicates, or None: the same text from
    anyone, or the same member and kind with nearly the same text."""
    key = dedup_key(text)
    for candidate in sorted(candidates, key=lambda c: (c.submitted_at, c.id)):
        if candidate.dedup_key == key:
            return candidate.id
        if (
            member_id is not None
            and candidate.member_id == member_id
            and candidate.kind == kind
            and nearly_same(candidate.text, text)
        ):
            return candidate.id
    return None
