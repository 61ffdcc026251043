"""Keyword answers, the pure part: which messages ask the library at all, how a reply
reads, and how an unanswered question is keyed for counting (SPEC §5.4).

Only messages that ask get a lookup: a playbook trigger word (有没有, 求, 推荐, ?), a
sentence that reads as a question (`looks_like_question`), or an @-mention of the
bot. Small talk never reaches the index, so it can never get a reply.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.features.questions import looks_like_question
from handlers.features.rules.matching import normalize

LEADING_MENTIONS = re.compile(r"^(@\S+\s*)+")
MAX_QUESTION_CHARS = 200  # what operators read of a question nobody could answer
MAX_KEY_CHARS = 200
SUMMARY_CHARS = 60  # an item without a link shows this much of its summary
# Separators and punctuation do not change what is asked: 「有没有发票模板？」 and
# 「有没有 发票模板」 count as one question.
_NOT_MEANING = re.compile(r"[\s\W_]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Asking:
    """Why a message goes to the library: the bot was named, a trigger word, or the
    message reads as a question. `question` decides whether a miss is recorded."""

    mentioned: bool
    triggered: bool
    question: bool

    @property
    def asks(self) -> bool:
        return self.mentioned or self.triggered or self.question


def asking(text: str, triggers: Sequence[str], *, mentioned_bot: bool) -> Asking:
    folded = normalize(text)
    triggered = any(normalize(word) in folded for word in triggers)
    return Asking(mentioned_bot, triggered, looks_like_question(text))


def bare_text(text: str) -> str:
    """The message without its leading @mentions, stripped."""
    return LEADING_MENTIONS.sub("", unicodedata.normalize("NFKC", text).strip()).strip()


def question_key(text: str) -> str:
    """What groups the same question: normalized (width, case, traditional), leading
    @mentions, punctuation and spaces dropped."""
    return _NOT_MEANING.sub("", normalize(bare_text(text)))[:MAX_KEY_CHARS]


@dataclass(frozen=True, slots=True)
class Offered:
    """One item as a reply lists it."""

    title: str
    url: str | None
    summary: str


def _line(number: int, item: Offered) -> str:
    if item.url:
        return f"{number}. {item.title} {item.url}"
    summary = " ".join(item.summary.split())
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    return f"{number}. {item.title}：{summary}" if summary else f"{number}. {item.title}"


def reply_text(name: str, items: Sequence[Offered]) -> str:
    """`@名字 群里的资料可能有帮助：` and one numbered line per item, in lookup order
    (own items first)."""
    lines = [_line(number, item) for number, item in enumerate(items, start=1)]
    return "\n".join([_opening([name]), *lines])


def _opening(names: Sequence[str]) -> str:
    return " ".join(f"@{name}" for name in names) + " 群里的资料可能有帮助："


def addressed_to(reply: str, names: Sequence[str]) -> str:
    """A held reply addressed to everyone who asked the same during the wait."""
    _first, _, rest = reply.partition("\n")
    return "\n".join([_opening(names), rest]) if rest else _opening(names)


def _markdown_title(title: str) -> str:
    # Square brackets would end a link's text early.
    return " ".join(title.split()).replace("[", "【").replace("]", "】")


def markdown_reply(items: Sequence[Offered]) -> str:
    """A 智能机器人 reply (markdown; it answers the asker in place, so no @名字): one
    numbered line per item in lookup order, the title linked where the item has a link."""
    lines = ["这些资料可能有帮助："]
    for number, item in enumerate(items, start=1):
        title = _markdown_title(item.title)
        if item.url:
            lines.append(f"{number}. [{title}]({item.url})")
        else:
            lines.append(_line(number, Offered(title, None, item.summary)))
    return "\n".join(lines)


def nothing_found_text(*, recorded: bool) -> str:
    """An @-mention of the 智能机器人 that the library has nothing for still gets an answer."""
    if recorded:
        return "资料库里暂时还没有这方面的内容。你的问题已经记下来了，我们会尽快补上相关资料。"
    return "资料库里暂时还没有这方面的内容，换个说法再问问看？"


def task_summary(name: str, question: str) -> str:
    """The owner task in a customer group, where the bot cannot post itself."""
    shown = " ".join(question.split())
    if len(shown) > 60:
        shown = shown[:59] + "…"
    return f"{name} 在群里问：「{shown}」。资料库里有相关内容，可以把下面的回复粘贴到群里。"
