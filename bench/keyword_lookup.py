"""What the content lookup costs with a 10k-item library.

The library is synthetic but Chinese: words from jieba's own dictionary (nouns of
two to four characters, by frequency), one distinct keyword per item (10k keywords),
titles of two or three words and summaries of a dozen. Messages are 200 characters
of dictionary words, most carrying two of the keywords. Prints, measured in one run:

1. keyword matching of a 200-character message against the 10k keywords: the
   index's automaton pass, and the whole keyword step (automaton + the jieba word
   boundary check), each as a ratio to a naive scan (`kw in text` for every keyword)
   over the same messages;
2. BM25 query time for questions without a keyword hit (median of N);
3. the index build time.

    uv run python bench/keyword_lookup.py [--items 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jieba  # noqa: E402

from handlers.features.content.index import (  # noqa: E402
    DEFAULT_THRESHOLD,
    Indexable,
    build_index,
)
from handlers.features.rules.matching import normalize  # noqa: E402

NOUNS = ("n", "nz", "vn", "nr", "ns", "nt")


def dictionary_words(rng: random.Random) -> tuple[list[str], list[str]]:
    """Nouns for keywords and titles, and common words of any kind for filler."""
    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    nouns: list[tuple[int, str]] = []
    common: list[tuple[int, str]] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            word, freq, tag = line.split()
            if not all("\u4e00" <= ch <= "\u9fff" for ch in word):
                continue
            if tag in NOUNS and 2 <= len(word) <= 4:
                nouns.append((int(freq), word))
            if len(word) <= 3:
                common.append((int(freq), word))
    nouns.sort(reverse=True)
    common.sort(reverse=True)
    # Keywords name specific things (增值税发票, not 问题): nouns past the 5,000 most
    # frequent; chat filler is the 5,000 most frequent words of any kind.
    return [w for _f, w in nouns[5_000:45_000]], [w for _f, w in common[:5_000]]


def library(count: int, rng: random.Random) -> tuple[list[Indexable], list[str], list[str]]:
    nouns, common = dictionary_words(rng)
    keywords = rng.sample(nouns, count)
    items = []
    for n, keyword in enumerate(keywords):
        title = "".join(rng.sample(nouns, rng.randint(2, 3)))
        summary = "，".join(
            "".join(rng.sample(nouns, 2)) + rng.choice(common) for _ in range(rng.randint(4, 6))
        )
        items.append(Indexable(n + 1, title, summary, (keyword,), ("bench",), n % 3 != 0))
    return items, keywords, common


def message(rng: random.Random, common: Sequence[str], keywords: Sequence[str]) -> str:
    words = [rng.choice(common) for _ in range(120)]
    if rng.random() < 0.8:
        for keyword in rng.sample(keywords, 2):
            words.insert(rng.randrange(60), keyword)
    text = ""
    for n, word in enumerate(words):
        if len(text) + len(word) + 1 > 200:
            break
        text += word + ("，" if n % 6 == 5 else "")  # chat has a clause every few words
    return text.ljust(200, "。")


def per_call(run: Callable[[str], object], texts: Sequence[str], rounds: int) -> float:
    """Median seconds per message over `rounds` passes over all texts."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for text in texts:
            run(text)
        timings.append((time.perf_counter() - started) / len(texts))
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(10)

    jieba.initialize()  # the dictionary load is not part of a build
    items, keywords, common = library(args.items, rng)
    started = time.perf_counter()
    index = build_index(items, version=1)
    build = time.perf_counter() - started

    texts = [normalize(message(rng, common, keywords)) for _ in range(args.messages)]
    kws = [normalize(keyword) for keyword in keywords]

    def naive(text: str) -> list[str]:
        return [kw for kw in kws if kw in text]

    hits = sum(bool(index.keyword_matches(text)) for text in texts)
    naive_s = per_call(naive, texts, args.rounds)
    scan_s = per_call(index.candidates, texts, args.rounds)
    step_s = per_call(index.keyword_matches, texts, args.rounds)
    naive_again = per_call(naive, texts, args.rounds)  # alternated: drift shows here
    naive_s = statistics.median([naive_s, naive_again])

    # Fuzzy questions: words of an item's summary, none of the keywords.
    questions = []
    for item in rng.sample(items, args.queries):
        words = [w for w in jieba.lcut(item.summary) if len(w) > 1 and w not in item.keywords]
        questions.append(normalize("请问" + "".join(rng.sample(words, min(3, len(words)))) + "？"))
    times = []
    found = 0
    for question in questions:
        started = time.perf_counter()
        matches = index.bm25_matches(question, DEFAULT_THRESHOLD)
        times.append(time.perf_counter() - started)
        found += bool(matches)

    print(f"library: {len(items)} items, {len(set(kws))} keywords; {len(texts)} messages")
    print(f"  of 200 chars, {hits} with a keyword hit after the word-boundary check")
    print(f"naive scan:              {naive_s * 1e6:9.1f} µs/message")
    print(
        f"automaton pass:          {scan_s * 1e6:9.1f} µs/message  "
        f"ratio {naive_s / scan_s:7.1f}x (target ≥ 100x)"
    )
    print(
        f"keyword step (+ jieba):  {step_s * 1e6:9.1f} µs/message  ratio {naive_s / step_s:7.1f}x"
    )
    print(
        f"BM25 query:              median {statistics.median(times) * 1e3:.2f} ms, "
        f"p90 {statistics.quantiles(times, n=10)[-1] * 1e3:.2f} ms over {len(times)} questions"
        f" ({found} above the threshold)"
    )
    print(f"index build:             {build:.2f} s")


if __name__ == "__main__":
    main()
