"""Cueing an expert (SPEC §5.4, issue 10): a question the library has nothing for and
nobody in the group answered within `keywords.expert_after_minutes` goes to the member
who knows the field, by the playbook's `keywords.experts` tags. Pure: who, and what
they read."""

from __future__ import annotations

from collections.abc import Sequence

from bot.config.playbooks.keywords_section import Expert
from handlers.features.rules.matching import normalize

QUESTION_CHARS = 60


def experts_for(question: str, experts: Sequence[Expert], asker: str) -> tuple[str, ...]:
    """The experts whose tags the question mentions, in playbook order, never the asker
    (an expert asking in their own field wants someone else's view)."""
    folded = normalize(question)
    found: list[str] = []
    for expert in experts:
        if any(normalize(tag) in folded for tag in expert.tags):
            found.extend(m for m in expert.members if m != asker and m not in found)
    return tuple(found)


def _shown(question: str) -> str:
    text = " ".join(question.split())
    return text if len(text) <= QUESTION_CHARS else text[: QUESTION_CHARS - 1] + "…"


def group_cue_text(expert_names: Sequence[str], askers: Sequence[str], question: str) -> str:
    """An @-cue in the group: the expert is asked, kindly, in front of the askers."""
    mentions = " ".join(f"@{name}" for name in expert_names)
    who = "、".join(askers)
    return (
        f"{mentions} {who}刚才问：「{_shown(question)}」，群里还没人接上。"
        "这方面您最在行，方便时帮忙解答一下？"
    )


def private_cue_text(group_name: str, askers: Sequence[str], question: str, minutes: int) -> str:
    """A private note to the expert: the group is not disturbed, the expert decides."""
    who = "、".join(askers)
    return (
        f"「{group_name}」里{who}问：「{_shown(question)}」，过了 {minutes} 分钟还没人回答，"
        "资料库里也没有现成的内容。这是您熟悉的领域，方便时去群里帮忙解答一下？"
    )


def owner_cue_summary(askers: Sequence[str], question: str, minutes: int) -> str:
    """Customer groups: the owner gets the cue as a task (the bot cannot post there)."""
    who = "、".join(askers)
    return (
        f"{who}在群里问：「{_shown(question)}」，{minutes} 分钟没人回答，资料库里也没有。"
        "可以请专家来答，下面的话可以直接粘贴到群里。"
    )
