"""Import and export files of the content library (`wecom-bot content import|export`).

JSON: an array of objects with `ContentIn`'s fields. CSV: a header row naming those
fields, then one item per row; keywords, tags and scope separated by `;` (or `；`),
enabled as true/false (1/0, 是/否), dates as YYYY-MM-DD. Export writes exactly what
import reads, CSV as UTF-8 with a BOM (Excel). A cell Excel would run as a formula is
written with a leading `'`, which import takes off again.

Parsing is pure: every row comes back with its line number and either the item or
why it was refused, so one bad row never costs the good ones.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.features.content.library import (
    ContentIn,
    UpsertCounts,
    all_items,
    content_in_of,
    upsert_many,
)

FIELDS: tuple[str, ...] = tuple(ContentIn.model_fields)
LIST_FIELDS = frozenset({"keywords", "tags", "scope"})
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "是", "启用"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "否", "停用"})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 500  # rows per transaction when storing an import


class FileRefused(Exception):
    """The file as a whole cannot be read (not an array, an unknown column, …)."""


@dataclass(frozen=True, slots=True)
class ParsedRow:
    line: int  # where the row starts in the file, from 1
    item: ContentIn | None
    error: str | None = None


def describe(exc: ValidationError) -> str:
    """A validation error as one line: `field: what is wrong; …`."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _validated(line: int, data: Any) -> ParsedRow:
    if not isinstance(data, dict):
        return ParsedRow(line, None, "each entry must be an object with the item's fields")
    try:
        return ParsedRow(line, ContentIn.model_validate(data))
    except ValidationError as exc:
        return ParsedRow(line, None, describe(exc))


def parse_json(text: str) -> Iterator[ParsedRow]:
    """The items of a JSON array, each with the line its object starts on."""
    decoder = json.JSONDecoder()
    at, line = 0, 1

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n\ufeff":
            i += 1
        return i

    at = skip(0)
    if not text.startswith("[", at):
        raise FileRefused("a JSON import must be an array of objects: [{...}, {...}]")
    at = skip(at + 1)
    counted = 0
    while at < len(text) and text[at] != "]":
        line += text.count("\n", counted, at)
        counted = at
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise FileRefused(f"line {exc.lineno}: not valid JSON: {exc.msg}") from None
        yield _validated(line, value)
        at = skip(end)
        if text.startswith(",", at):
            at = skip(at + 1)
        elif not text.startswith("]", at):
            row = text.count("\n", 0, at) + 1
            raise FileRefused(f"line {row}: expected ',' or ']' between entries")
    if at >= len(text):
        raise FileRefused("the JSON array is not closed with ']'")


def _unescape(cell: str) -> str:
    if cell.startswith("'") and cell[1:2] and cell[1] in (*FORMULA_START, "'"):
        return cell[1:]
    return cell


def _escape(cell: str) -> str:
    return "'" + cell if cell.startswith((*FORMULA_START, "'")) else cell


def _flag(cell: str) -> bool | str:
    word = cell.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return cell  # left for validation to refuse with its own message


def _csv_record(header: Sequence[str], cells: Sequence[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, raw in zip(header, cells, strict=False):
        cell = _unescape(raw)
        if name in LIST_FIELDS:
            pieces = cell.replace("；", ";").split(";")
            record[name] = [p for p in pieces if p.strip()]
        elif not cell.strip():
            continue  # empty: the field's default
        elif name == "enabled":
            record[name] = _flag(cell)
        else:
            record[name] = cell
    return record


def parse_csv(text: str) -> Iterator[ParsedRow]:
    """The rows after the header, each with the line it starts on (a quoted cell may
    span lines). Rows with every cell empty are passed over."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise FileRefused("the CSV file is empty; its first row names the columns") from None
    unknown = [name for name in header if name not in FIELDS]
    if unknown:
        raise FileRefused(f"unknown column(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    if "title" not in header:
        raise FileRefused("the CSV header has no title column")
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileRefused(f"line {line}: {exc}") from None
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            yield ParsedRow(line, None, f"{len(cells)} cells for {len(header)} columns")
            continue
        yield _validated(line, _csv_record(header, cells))


def parse(name: str, text: str) -> list[ParsedRow]:
    """A file's rows by its extension (.json or .csv)."""
    lowered = name.lower()
    if lowered.endswith(".json"):
        return list(parse_json(text))
    if lowered.endswith(".csv"):
        return list(parse_csv(text))
    raise FileRefused("the file must end in .json or .csv")


def to_json(items: Sequence[ContentIn]) -> str:
    return (
        json.dumps([item.model_dump(mode="json") for item in items], ensure_ascii=False, indent=2)
        + "\n"
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return _escape(";".join(str(v) for v in value))  # import unescapes, then splits
    return _escape(str(value))


def to_csv(items: Sequence[ContentIn]) -> str:
    """UTF-8 text with a BOM (Excel reads the Chinese right), CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for item in items:
        data = item.model_dump(mode="json")
        writer.writerow([_cell(data[name]) for name in FIELDS])
    return "\ufeff" + buffer.getvalue()


def render(name: str, items: Sequence[ContentIn]) -> str:
    lowered = name.lower()
    if lowered.endswith(".json"):
        return to_json(items)
    if lowered.endswith(".csv"):
        return to_csv(items)
    raise FileRefused("the file must end in .json or .csv")


async def store(
    sessions: async_sessionmaker[AsyncSession],
    rows: Sequence[ParsedRow],
    *,
    now: datetime,
    progress: Callable[[int], None] = lambda _: None,
    chunk: int = CHUNK,
) -> UpsertCounts:
    """Upsert the good rows, `chunk` to a transaction; `progress(n)` after each chunk
    with the number of rows (good and bad) it covered."""
    created = updated = 0
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        good = [row.item for row in part if row.item is not None]
        async with sessions() as session, session.begin():
            counts = await upsert_many(session, good, now=now)
        created += counts.created
        updated += counts.updated
        progress(len(part))
    return UpsertCounts(created, updated)


async def export_items(sessions: async_sessionmaker[AsyncSession]) -> list[ContentIn]:
    async with sessions() as session:
        return [content_in_of(item) for item in await all_items(session)]
