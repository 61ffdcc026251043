"""The lookup index of one process, rebuilt when the library changes (SPEC §5.4).

One `IndexCache` per runtime (built with the handlers, so two services in one
process, as in tests, never share an index across databases). A batch that asks
reads `library_version` once (the batch memo); when it or the local day differs from
what the index was built from (items have validity dates, which need no write to
start or end), that batch loads the enabled items and builds the new index with
`asyncio.to_thread` — the loop keeps serving. One build at a time: a batch that finds
a build under way answers from the previous index (seconds stale) rather than wait
for it with its transaction open; only the first build, with nothing to fall back
on, is waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.features.content.index import ContentIndex, Indexable, build_index
from handlers.features.content.library import ContentEntry, library_version, load_enabled


@dataclass(frozen=True, slots=True)
class Library:
    """An index with the items it was built from (what replies show of them)."""

    version: int
    day: date
    index: ContentIndex
    items: dict[int, ContentEntry]


def indexable(entry: ContentEntry) -> Indexable:
    return Indexable(
        id=entry.id,
        title=entry.title,
        summary=entry.summary,
        keywords=entry.keywords,
        tags=entry.tags,
        own=entry.source == "own",
    )


def build_library(entries: Sequence[ContentEntry], version: int, day: date) -> Library:
    """CPU-heavy (the index): run it off the event loop."""
    index = build_index([indexable(entry) for entry in entries], version)
    return Library(version, day, index, {entry.id: entry for entry in entries})


class IndexCache:
    def __init__(
        self, build: Callable[[Sequence[ContentEntry], int, date], Library] = build_library
    ) -> None:
        self._build = build
        self._current: Library | None = None
        self._lock = asyncio.Lock()
        self.builds = 0  # how many indexes this process built (tests, metrics)

    @property
    def building(self) -> bool:
        return self._lock.locked()

    async def library(self, session: AsyncSession, *, today: date) -> Library:
        version = await library_version(session)
        current = self._current
        if current is not None and (current.version, current.day) == (version, today):
            return current
        if current is not None and self.building:
            return current  # another batch is building the new one
        async with self._lock:
            current = self._current
            if current is not None and (current.version, current.day) == (version, today):
                return current
            entries = await load_enabled(session, today=today)
            built = await asyncio.to_thread(self._build, entries, version, today)
            self._current = built
            self.builds += 1
            return built
