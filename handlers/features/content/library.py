"""Content items: validation, writes that bump the library version, reads.

An item's `scope` lists chat ids and group tags it applies to; empty means every
group (`applies_to`). (title, source) names an item: a second item with both the same
is refused, and an import updates the item it names. Every write bumps the single
`content_library.version` row in the caller's transaction, so a replica that reads a
newer version than its index was built from knows to rebuild, and the UPDATE's row
lock orders concurrent writers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, Select, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.features.rules.matching import normalize
from storage.db import json_elements
from storage.models import ContentItem, ContentLibrary

Source = Literal["own", "external"]
SOURCES: tuple[Source, ...] = ("own", "external")

MAX_KEYWORDS = 50
MAX_KEYWORD_CHARS = 40
MAX_TAGS = 20
MAX_TAG_CHARS = 40
MAX_SCOPE = 200


def _text(value: str | None) -> str | None:
    """Stripped; blank is None (a spreadsheet's empty cell and JSON's null say the same)."""
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def _words(values: Sequence[str], *, what: str, most: int, longest: int, fold: bool) -> list[str]:
    """Stripped, blanks refused, duplicates dropped (the first spelling kept). `fold`:
    duplicates are judged the way lookup reads text (full-width, case, traditional), so
    "Python", "ｐｙｔｈｏｎ" and "python" are one keyword."""
    kept: list[str] = []
    seen: set[str] = set()
    for raw in values:
        word = raw.strip()
        if not word:
            raise ValueError(f"{what} must not be blank")
        if ";" in word or "；" in word:
            # the CSV form lists them separated by semicolons
            raise ValueError(f"{what} {word[:20]!r} must not contain a semicolon")
        if len(word) > longest:
            raise ValueError(f"{what} {word[:20]!r}… is longer than {longest} characters")
        key = normalize(word) if fold else word
        if key not in seen:
            seen.add(key)
            kept.append(word)
    if len(kept) > most:
        raise ValueError(f"at most {most} {what}s, got {len(kept)}")
    return kept


def _keywords(values: list[str]) -> list[str]:
    return _words(values, what="keyword", most=MAX_KEYWORDS, longest=MAX_KEYWORD_CHARS, fold=True)


def _tags(values: list[str]) -> list[str]:
    return _words(values, what="tag", most=MAX_TAGS, longest=MAX_TAG_CHARS, fold=True)


def _scope(values: list[str]) -> list[str]:
    # Chat ids are case-sensitive: kept as given, only exact repeats dropped.
    return _words(values, what="scope entry", most=MAX_SCOPE, longest=128, fold=False)


def _title(value: str) -> str:
    title = value.strip()
    if not title:
        raise ValueError("title must not be blank")
    if len(title) > 200:
        raise ValueError("title is longer than 200 characters")
    return title


def _url(value: str | None) -> str | None:
    url = _text(value)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("url must be an http:// or https:// link")
    if any(c.isspace() for c in url):
        raise ValueError("url must not contain spaces")
    return url


class ContentIn(BaseModel):
    """A content item as the admin API and imports give it."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, AfterValidator(_title)] = Field(description="1–200 characters")
    body: Annotated[str | None, AfterValidator(_text)] = Field(
        default=None, max_length=20_000, description="the text itself; body or url is needed"
    )
    url: Annotated[str | None, AfterValidator(_url)] = Field(
        default=None, max_length=2000, description="an http(s) link; body or url is needed"
    )
    summary: Annotated[str, AfterValidator(lambda s: s.strip())] = Field(
        default="", max_length=1000, description="one or two sentences replies show"
    )
    keywords: Annotated[list[str], AfterValidator(_keywords)] = Field(
        default_factory=list,
        description=f"0–{MAX_KEYWORDS} exact-hit words of 1–{MAX_KEYWORD_CHARS} characters; "
        "stripped, repeats (any case or width) dropped",
    )
    tags: Annotated[list[str], AfterValidator(_tags)] = Field(default_factory=list)
    source: Source = Field(default="own", description="own items always rank first")
    scope: Annotated[list[str], AfterValidator(_scope)] = Field(
        default_factory=list,
        description="chat ids or group tags the item applies to; empty: every group",
    )
    enabled: bool = True
    valid_from: date | None = Field(default=None, description="first local day it is offered")
    valid_until: date | None = Field(default=None, description="last local day it is offered")

    @model_validator(mode="after")
    def _coherent(self) -> ContentIn:
        if self.body is None and self.url is None:
            raise ValueError("an item needs a body or a url")
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        return self


@dataclass(frozen=True, slots=True)
class ContentEntry:
    """What the lookup index keeps of an enabled, currently valid item."""

    id: int
    title: str
    summary: str
    url: str | None
    body: str | None
    keywords: tuple[str, ...]
    tags: tuple[str, ...]
    source: Source
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContentFilter:
    q: str | None = None  # in the title, summary or a keyword (any case)
    tag: str | None = None
    source: Source | None = None
    enabled: bool | None = None


class DuplicateContent(Exception):
    """Another item already has this title and source."""

    def __init__(self, title: str, source: str, existing_id: int) -> None:
        super().__init__(
            f"item {existing_id} already has the title {title!r} with source {source!r}"
        )
        self.existing_id = existing_id


def applies_to(scope: Iterable[str], chat_id: str, group_tags: Iterable[str]) -> bool:
    """Whether an item with `scope` is offered in this group: an empty scope means
    every group; otherwise the group's chat id or one of its tags must be listed."""
    wanted = set(scope)
    return not wanted or chat_id in wanted or not wanted.isdisjoint(group_tags)


async def library_version(session: AsyncSession) -> int:
    version = await session.scalar(select(ContentLibrary.version).where(ContentLibrary.id == 1))
    return int(version or 0)


async def bump_version(session: AsyncSession) -> int:
    """The next version, in the caller's transaction (commit publishes both)."""
    bumped = await session.scalar(
        update(ContentLibrary)
        .where(ContentLibrary.id == 1)
        .values(version=ContentLibrary.version + 1)
        .returning(ContentLibrary.version)
    )
    if bumped is None:  # the row the migration seeds is gone: put it back
        session.add(ContentLibrary(id=1, version=1))
        await session.flush()
        return 1
    return int(bumped)


def _assign(item: ContentItem, data: ContentIn, now: datetime) -> None:
    item.title = data.title
    item.body = data.body
    item.url = data.url
    item.summary = data.summary
    item.keywords = list(data.keywords)
    item.tags = list(data.tags)
    item.source = data.source
    item.scope = list(data.scope)
    item.enabled = data.enabled
    item.valid_from = data.valid_from
    item.valid_until = data.valid_until
    item.updated_at = now


async def _named(session: AsyncSession, title: str, source: str) -> ContentItem | None:
    found: ContentItem | None = await session.scalar(
        select(ContentItem).where(ContentItem.title == title, ContentItem.source == source)
    )
    return found


async def create_item(session: AsyncSession, data: ContentIn, *, now: datetime) -> ContentItem:
    """A new item; `DuplicateContent` (nothing written) when the name is taken."""
    await bump_version(session)  # first: its row lock orders writers before the check
    existing = await _named(session, data.title, data.source)
    if existing is not None:
        raise DuplicateContent(data.title, data.source, existing.id)
    item = ContentItem(created_at=now)
    _assign(item, data, now)
    session.add(item)
    await session.flush()
    return item


async def update_item(
    session: AsyncSession, item_id: int, data: ContentIn, *, now: datetime
) -> ContentItem | None:
    """Replace an item's fields; None when there is no such item."""
    await bump_version(session)
    item = await session.get(ContentItem, item_id)
    if item is None:
        return None
    other = await _named(session, data.title, data.source)
    if other is not None and other.id != item_id:
        raise DuplicateContent(data.title, data.source, other.id)
    _assign(item, data, now)
    await session.flush()
    return item


async def delete_item(session: AsyncSession, item_id: int) -> bool:
    await bump_version(session)
    result = await session.execute(delete(ContentItem).where(ContentItem.id == item_id))
    return bool(getattr(result, "rowcount", 0))


async def get_item(session: AsyncSession, item_id: int) -> ContentItem | None:
    return await session.get(ContentItem, item_id)


def _where(session: AsyncSession, filter: ContentFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filter.source is not None:
        clauses.append(ContentItem.source == filter.source)
    if filter.enabled is not None:
        clauses.append(ContentItem.enabled.is_(filter.enabled))
    if filter.tag:
        tags = json_elements(session, ContentItem.tags)
        clauses.append(exists(select(1).select_from(tags).where(tags.c.value == filter.tag)))
    if filter.q:
        words = json_elements(session, ContentItem.keywords)
        clauses.append(
            or_(
                ContentItem.title.icontains(filter.q, autoescape=True),
                ContentItem.summary.icontains(filter.q, autoescape=True),
                exists(
                    select(1)
                    .select_from(words)
                    .where(words.c.value.icontains(filter.q, autoescape=True))
                ),
            )
        )
    return clauses


async def list_items(
    session: AsyncSession, filter: ContentFilter, *, limit: int, offset: int
) -> tuple[int, list[ContentItem]]:
    """(how many match, one page of them, newest first)."""
    clauses = _where(session, filter)
    total = await session.scalar(select(func.count()).select_from(ContentItem).where(*clauses))
    page: Select[ContentItem] = (
        select(ContentItem)
        .where(*clauses)
        .order_by(ContentItem.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return int(total or 0), list((await session.scalars(page)).all())


async def all_items(session: AsyncSession) -> list[ContentItem]:
    """Every item in id order (export)."""
    return list((await session.scalars(select(ContentItem).order_by(ContentItem.id))).all())


def entry_of(item: ContentItem) -> ContentEntry:
    source: Source = "external" if item.source == "external" else "own"
    return ContentEntry(
        id=item.id,
        title=item.title,
        summary=item.summary,
        url=item.url,
        body=item.body,
        keywords=tuple(item.keywords),
        tags=tuple(item.tags),
        source=source,
        scope=tuple(item.scope),
    )


async def load_enabled(
    session: AsyncSession, *, today: date, tag: str | None = None
) -> list[ContentEntry]:
    """The items lookup may offer on local day `today`: enabled and within their dates
    (and carrying `tag`, exactly as written, when given), own ones first, then by id (so
    ties rank the same on every replica)."""
    rows = await session.scalars(
        select(ContentItem)
        .where(
            ContentItem.enabled.is_(True),
            or_(ContentItem.valid_from.is_(None), ContentItem.valid_from <= today),
            or_(ContentItem.valid_until.is_(None), ContentItem.valid_until >= today),
            *_where(session, ContentFilter(tag=tag)),
        )
        .order_by((ContentItem.source == "external").asc(), ContentItem.id)
    )
    return [entry_of(item) for item in rows]


def content_in_of(item: ContentItem) -> ContentIn:
    """An item as its input form (export, and an update's starting point)."""
    return ContentIn.model_validate(
        {
            "title": item.title,
            "body": item.body,
            "url": item.url,
            "summary": item.summary,
            "keywords": item.keywords,
            "tags": item.tags,
            "source": item.source,
            "scope": item.scope,
            "enabled": item.enabled,
            "valid_from": item.valid_from,
            "valid_until": item.valid_until,
        }
    )


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    created: int
    updated: int


async def upsert_many(
    session: AsyncSession, items: Sequence[ContentIn], *, now: datetime
) -> UpsertCounts:
    """Store a chunk of an import in the caller's transaction: an item whose (title,
    source) exists is updated, others created; a later repeat in the chunk wins. One
    version bump for the chunk."""
    if not items:
        return UpsertCounts(0, 0)
    await bump_version(session)
    titles = sorted({item.title for item in items})
    existing = {
        (row.title, row.source): row
        for row in await session.scalars(select(ContentItem).where(ContentItem.title.in_(titles)))
    }
    created = updated = 0
    for data in items:
        row = existing.get((data.title, data.source))
        if row is None:
            row = ContentItem(created_at=now)
            session.add(row)
            existing[(data.title, data.source)] = row
            created += 1
        else:
            updated += 1
        _assign(row, data, now)
    await session.flush()
    return UpsertCounts(created, updated)
