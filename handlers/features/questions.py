"""Whether a member's message reads as a question, for group health's "who answers
the questions: members or staff" (群友交流 > 群主回答).

A heuristic on purpose: a question mark, an opening like 请问 / 有没有 / 求推荐, or
a sentence ending in 吗 / 么. It errs towards "not a question" for chatter; the
figure is a share, so the same bias on both sides of it cancels out.
"""

from __future__ import annotations

import re
import unicodedata

QUESTION_WORDS = (
    "请问",
    "有没有",
    "有谁",
    "谁有",
    "谁知道",
    "谁能",
    "求推荐",
    "求助",
    "求问",
    "怎么",
    "如何",
    "为什么",
    "为啥",
    "哪里",
    "哪个",
    "哪家",
    "哪些",
    "能不能",
    "可不可以",
    "是不是",
    "有什么",
    "推荐一下",
)
# 吗 / 么 / 呢 closing a sentence (before optional punctuation or emoji-like tails).
QUESTION_ENDING = re.compile(r"[吗么呢嘛][\s。.!！~～…]*$")
MIN_LENGTH = 3


def looks_like_question(text: str) -> bool:
    folded = unicodedata.normalize("NFKC", text).strip()
    if len(folded) < MIN_LENGTH:
        return False
    if "?" in folded:  # NFKC folds the full-width ？ into ?
        return True
    if any(word in folded for word in QUESTION_WORDS):
        return True
    return any(QUESTION_ENDING.search(sentence) for sentence in re.split(r"[。！!\n]", folded))
