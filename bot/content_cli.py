"""The database side of `wecom-bot content import|export`: the same DATABASE_URL as
every command, migrated first (as `serve` does) so a fresh database works."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bot.config.settings import Settings
from handlers.features.content.library import ContentIn, UpsertCounts
from handlers.features.content.transfer import ParsedRow, export_items, store
from storage.db import make_engine, make_sessionmaker, upgrade


async def run_import(
    settings: Settings, rows: Sequence[ParsedRow], progress: Callable[[int], None]
) -> UpsertCounts:
    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
        return await store(
            make_sessionmaker(engine), rows, now=datetime.now(UTC), progress=progress
        )
    finally:
        await engine.dispose()


async def run_export(settings: Settings) -> list[ContentIn]:
    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
        return await export_items(make_sessionmaker(engine))
    finally:
        await engine.dispose()
