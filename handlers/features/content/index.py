"""The lookup over the content library: exact keywords first, then BM25. Pure.

One `ContentIndex` is built per library version by `build_index` (CPU-heavy: callers
run it with `asyncio.to_thread`), then answers `lookup()` without I/O.

Text goes through the group rules' `normalize` (NFKC folds full-width forms to
half-width, case folds, OpenCC turns traditional characters into simplified), so a
member writing 「增值稅發票」 or ＡＰＩ finds what the operator typed as 增值税发票 or api.
Unlike the rules, separators are not squeezed out: members asking a question are not
evading a filter, and squeezing would glue words together across punctuation.

Exact keywords: one Aho-Corasick automaton over the normalized keywords, fed the
text's UTF-16 bytes rather than its characters: pyahocorasick keeps a node's children
in a list it searches in turn, and with 10k Chinese keywords the root has thousands
of children (one step cost ~350 ns); over bytes a node has at most 256, and 200
characters take ~20 µs instead of ~72 µs (bench/keyword_lookup.py). Chinese has
no spaces, so a keyword is often a substring of ordinary words that mean something
else ("false friends"): 会计 inside 大会计划, 上市 inside 马上市场, 研究生 inside
研究生命科学, api inside rapid. A hit therefore counts only when it starts and ends on
a word boundary of the message as jieba segments it in search mode (which also yields
the words inside longer words, so 发票 still counts inside 开发票 and 会计 inside
会计师). The message is segmented only when the automaton found something.

Fuzzy questions: when no keyword hits, jieba (search mode) segments the normalized
title, summary and keywords of every item, and bm25s ranks them for the segmented
question. A raw BM25 score has no fixed scale, so the threshold is on a relative
score: the item's BM25 score divided by the score a document of average length that
contains each meaningful query word once would get (Σ idf / (1 + k1)). Query words
the library never uses count in that reference at the highest idf, so small talk
that shares one word with an item ("今天天气不错" vs an item about 天气) stays low;
function and request words (怎么, 有没有, 推荐, 资料 …) and single characters the
library never uses are left out, since they say how one asks, not what about.
`DEFAULT_THRESHOLD` 0.5 means "the item covers about half of what the question is
about", measured on the tests' library and the bench's.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import ahocorasick
import bm25s
import jieba
import numpy as np

from handlers.features.rules.matching import normalize

jieba.setLogLevel(logging.WARNING)  # its dictionary load logs at DEBUG to stderr

DEFAULT_THRESHOLD = 0.5
K1 = 1.5
B = 0.75

# Words that say how one asks, not what about: they would pull in every item whose
# summary happens to say 怎么 or 推荐.
_STOPWORD_LINES = (
    "的 了 吗 呢 吧 啊 呀 哦 嘛 么 是 在 有 和 与 或 及 我 你 他 她 它 我们 你们 大家 各位",
    "谁 哪 哪里 哪个 哪些 什么 怎么 怎么样 怎样 如何 为什么 请问 请教 问 问下 问一下 一下",
    "有没有 没有 有人 求 求助 推荐 介绍 分享 知道 想 想要 需要 要 能 能不能 可以 可不可以",
    "这个 那个 这些 那些 一个 一些 个 篇 份 文章 资料 东西 相关 关于 之类 谢谢 多谢",
)
STOPWORDS = frozenset(word for line in _STOPWORD_LINES for word in line.split())

# Characters jieba hands back as tokens that carry no meaning for ranking.
_PUNCTUATION = frozenset(
    " \t\r\n,.;:!?'\"()[]{}<>/\\|-_~`@#$%^&*+=，。、；：！？“”‘’（）【】《》…·"
)

# The global jieba tokenizer loads its dictionary once under its own lock, but
# `jieba.tokenize` and `lcut_for_search` only read it afterwards.
_init_lock = threading.Lock()


@dataclass(frozen=True)
class Indexable:
    """What the lookup needs of one content item."""

    id: int
    title: str
    summary: str
    keywords: tuple[str, ...]
    tags: tuple[str, ...]
    own: bool


@dataclass(frozen=True)
class Match:
    """One item found for a message: by which keywords, or by its BM25 relative score."""

    item_id: int
    score: float  # keyword: distinct keywords hit; bm25: relative score (see module doc)
    how: Literal["keyword", "bm25"]
    keywords: tuple[str, ...] = ()  # the keywords as the operator wrote them


def _ready() -> None:
    with _init_lock:
        if not jieba.dt.initialized:
            jieba.initialize()


def terms(text: str) -> list[str]:
    """Normalized text's words for BM25: jieba search mode, punctuation dropped."""
    return [
        word
        for word in (w.strip() for w in jieba.lcut_for_search(text))
        if word and not all(ch in _PUNCTUATION for ch in word)
    ]


# jieba segments each run of these characters on its own (everything else is a token
# by itself), so word boundaries inside one run do not depend on the rest of the text.
_RUN = re.compile(jieba.re_han_default.pattern)


class Boundaries:
    """Where words start or end in a normalized text, by jieba's search-mode
    segmentation, computed only for the runs of text a keyword hit touches: a long
    message with one hit costs one short segmentation, not the whole message's."""

    def __init__(self, normalized: str) -> None:
        self._text = normalized
        self._runs = [(m.start(), m.end()) for m in _RUN.finditer(normalized)]
        self._starts = [start for start, _end in self._runs]
        self._edges: set[int] = set()
        self._done: set[int] = set()

    def __contains__(self, offset: object) -> bool:
        if not isinstance(offset, int):
            return False
        run = bisect.bisect_right(self._starts, offset) - 1
        if run < 0 or not (self._runs[run][0] < offset < self._runs[run][1]):
            return True  # at a run's edge or outside any run: a boundary
        if run not in self._done:
            self._done.add(run)
            start, end = self._runs[run]
            for _word, first, stop in jieba.tokenize(self._text[start:end], mode="search"):
                self._edges.add(start + first)
                self._edges.add(start + stop)
        return offset in self._edges


class ContentIndex:
    """The lookup structures for one version of the library. Build with `build_index`."""

    def __init__(
        self,
        version: int,
        own: dict[int, bool],
        automaton: Any,
        doc_ids: Sequence[int],
        retriever: bm25s.BM25 | None,
        idf: dict[str, float],
        max_idf: float,
    ) -> None:
        self.version = version
        self._own = own
        self._automaton = automaton
        self._doc_ids = tuple(doc_ids)
        self._retriever = retriever
        self._idf = idf
        self._max_idf = max_idf

    def __len__(self) -> int:
        return len(self._own)

    def lookup(
        self,
        text: str,
        *,
        limit: int = 3,
        threshold: float = DEFAULT_THRESHOLD,
        admit: Callable[[int], bool] | None = None,
    ) -> list[Match]:
        """At most `limit` items for the message, own items first. Exact keyword hits
        (more distinct keywords first); only without any, BM25 above `threshold`.
        `admit` leaves items out before the limit (group scope, per-item cooldown)."""
        if limit <= 0 or not self._own:
            return []
        normalized = normalize(text)
        matches = self.keyword_matches(normalized, admit)
        if not matches:
            matches = self.bm25_matches(normalized, threshold, admit)
        return matches[:limit]

    def candidates(self, normalized: str) -> list[tuple[int, int, tuple[tuple[int, str], ...]]]:
        """Every keyword occurrence as (start, stop, ((item, keyword), …)), before the
        word-boundary check: the automaton's one pass over the text."""
        if self._automaton is None:
            return []
        encoded = _bytes_of(normalized)
        offsets: dict[int, int] | None = None  # byte → character, when not simply ÷ 2
        if len(encoded) != 2 * len(normalized):  # characters past the BMP (emoji)
            offsets = {}
            position = 0
            for index, char in enumerate(normalized):
                offsets[position] = index
                position += 4 if ord(char) > 0xFFFF else 2
            offsets[position] = len(normalized)
        found: list[tuple[int, int, tuple[tuple[int, str], ...]]] = []
        for end, (size, owners) in self._automaton.iter(encoded):
            first, stop = end + 1 - size, end + 1
            if offsets is None:
                if first % 2 == 0:  # else it began in the middle of a character
                    found.append((first // 2, stop // 2, owners))
            elif first in offsets and stop in offsets:
                found.append((offsets[first], offsets[stop], owners))
        return found

    def keyword_matches(
        self, normalized: str, admit: Callable[[int], bool] | None = None
    ) -> list[Match]:
        """Items whose keywords occur in the normalized text as words, best first."""
        raw = self.candidates(normalized)
        if not raw:
            return []
        edges = Boundaries(normalized)
        found: dict[int, dict[str, int]] = {}  # item → keyword → first offset
        for start, stop, owners in raw:
            if start not in edges or stop not in edges:
                continue  # a false friend: the keyword straddles other words
            for item_id, keyword in owners:
                if admit is None or admit(item_id):
                    found.setdefault(item_id, {}).setdefault(keyword, start)
        ranked = sorted(
            found.items(),
            key=lambda entry: (
                not self._own[entry[0]],
                -len(entry[1]),
                min(entry[1].values()),
                entry[0],
            ),
        )
        return [
            Match(item_id, float(len(hits)), "keyword", tuple(sorted(hits, key=hits.__getitem__)))
            for item_id, hits in ranked
        ]

    def bm25_matches(
        self, normalized: str, threshold: float, admit: Callable[[int], bool] | None = None
    ) -> list[Match]:
        """Items ranked by BM25 for the question, relative score above `threshold`."""
        if self._retriever is None:
            return []
        words = list(dict.fromkeys(self._meaningful(terms(normalized))))
        if not words:
            return []
        vocab: dict[str, int] = self._retriever.vocab_dict
        known = [vocab[word] for word in words if word in vocab]
        if not known:
            return []
        reference = sum(self._idf.get(word, self._max_idf) for word in words) / (1 + K1)
        scores: np.ndarray[Any, np.dtype[np.float32]] = self._retriever.get_scores(known)
        candidates = np.flatnonzero(scores >= threshold * reference)
        found = [
            (self._doc_ids[position], float(scores[position]) / reference)
            for position in candidates.tolist()
        ]
        found = [(item, score) for item, score in found if admit is None or admit(item)]
        found.sort(key=lambda entry: (not self._own[entry[0]], -entry[1], entry[0]))
        return [Match(item, round(score, 4), "bm25") for item, score in found]

    def _meaningful(self, words: Iterable[str]) -> Iterable[str]:
        for word in words:
            if word in STOPWORDS:
                continue
            if len(word) == 1 and word not in self._idf:
                continue  # a lone character the library never uses: 开, 讲, 啥
            yield word


def _bytes_of(text: str) -> str:
    """The text's UTF-16 bytes, one character each, for the automaton (module doc)."""
    return text.encode("utf-16-be").decode("latin-1")


def _document(item: Indexable) -> str:
    # Titles and keywords say what the item is about, so they count twice; the
    # summary adds the context words a question might use.
    keywords = " ".join(item.keywords)
    return normalize(f"{item.title} {item.title} {keywords} {keywords} {item.summary}")


def build_index(items: Sequence[Indexable], version: int) -> ContentIndex:
    """The index for one library version. CPU-heavy (jieba over every item, the
    automaton, the BM25 matrix): run it off the event loop."""
    _ready()
    own = {item.id: item.own for item in items}

    owners: dict[str, list[tuple[int, str]]] = {}
    for item in items:
        for keyword in dict.fromkeys(item.keywords):
            key = normalize(keyword).strip()
            if key:
                owners.setdefault(key, []).append((item.id, keyword))
    automaton: Any = None
    if owners:
        automaton = ahocorasick.Automaton()
        for key, holders in owners.items():
            encoded = _bytes_of(key)
            automaton.add_word(encoded, (len(encoded), tuple(holders)))
        automaton.make_automaton()

    corpus = [terms(_document(item)) for item in items]
    retriever: bm25s.BM25 | None = None
    idf: dict[str, float] = {}
    max_idf = 0.0
    if any(corpus):
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        retriever.index(corpus, show_progress=False)
        count = len(corpus)
        frequency: dict[str, int] = {}
        for words in corpus:
            for word in set(words):
                frequency[word] = frequency.get(word, 0) + 1
        # Lucene's idf, as bm25s's "lucene" method scores it.
        idf = {
            word: math.log(1 + (count - df + 0.5) / (df + 0.5)) for word, df in frequency.items()
        }
        max_idf = math.log(1 + (count + 0.5) / 0.5)
    return ContentIndex(
        version=version,
        own=own,
        automaton=automaton,
        doc_ids=[item.id for item in items],
        retriever=retriever,
        idf=idf,
        max_idf=max_idf,
    )
