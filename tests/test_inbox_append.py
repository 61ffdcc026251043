"""The driver-level inbox append (storage/inbox_append.py) stores exactly what the
SQLAlchemy insert does, atomically, in arrival order, and survives a dropped
connection. Runs on SQLite and on PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import db, inbox
from storage.inbox import NewInboxRow
from storage.inbox_append import (
    InboxAppender,
    PostgresAppender,
    SessionAppender,
    SqliteAppender,
    appender_for,
)
from storage.models import InboxItem

T0 = datetime(2026, 11, 30, 12, 0, 5, 123456, tzinfo=UTC)


def _rows() -> list[NewInboxRow]:
    """Two chats, an event outside any chat, one nothing handles, Chinese text."""
    event = {"type": "message", "text": "有没有私域运营的资料？", "n": 1, "ok": True}
    return [
        NewInboxRow("callback", "m1", "<xml>1</xml>", "message", event, "wrA", "pending"),
        NewInboxRow("archive", "m2", '{"a": 1}', "message", event, "wrB", "pending"),
        NewInboxRow("callback", "m3", "<xml>3</xml>", "message", event, "wrA", "pending"),
        NewInboxRow("callback", "m4", "<xml>4</xml>", "message", event, None, "pending"),
        NewInboxRow("callback", "m5", "<xml>5</xml>", "enter_agent", None, None, "ignored"),
    ]


async def _stored(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    """Every column but the id, in id order, as the application reads them back."""
    async with sessions() as session:
        items = (await session.execute(select(InboxItem).order_by(InboxItem.id))).scalars()
        return [
            {
                column.key: getattr(item, column.key)
                for column in InboxItem.__table__.columns
                if column.key != "id"
            }
            for item in items
        ]


async def _stored_raw(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[Any, ...]]:
    """The same, as the database holds them (SQLite compares timestamps as text)."""
    columns = ", ".join(c.key for c in InboxItem.__table__.columns if c.key != "id")
    async with sessions() as session:
        rows = await session.execute(text(f"SELECT {columns} FROM inbox ORDER BY id"))
        return [tuple(row) for row in rows]


async def test_the_database_we_ship_for_gets_the_driver_level_path(
    engine: AsyncEngine, appender: InboxAppender
) -> None:
    expected = PostgresAppender if engine.dialect.name == "postgresql" else SqliteAppender
    assert isinstance(appender, expected)


async def test_an_in_memory_sqlite_appends_through_a_session() -> None:
    memory = db.make_engine("sqlite+aiosqlite://")
    try:
        assert isinstance(appender_for(memory), SessionAppender)
    finally:
        await memory.dispose()


async def test_rows_are_stored_exactly_as_the_sqlalchemy_insert_stores_them(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    async with sessions() as session, session.begin():
        by_orm = await inbox.insert_many(session, _rows(), now=T0)
    reference = await _stored(sessions)
    reference_raw = await _stored_raw(sessions)
    async with sessions() as session, session.begin():
        await session.execute(delete(InboxItem))

    by_driver = await appender.append(_rows(), now=T0)

    assert by_driver == by_orm == {"m1", "m2", "m3", "m4", "m5"}
    assert await _stored(sessions) == reference
    assert await _stored_raw(sessions) == reference_raw
    heads = {row["dedup_key"] for row in reference if row["is_head"]}
    assert heads == {"m1", "m2", "m4"}  # each chat's oldest, and the chatless event
    assert reference[0]["received_at"] == T0 and reference[0]["event"]["ok"] is True


async def test_a_key_already_stored_is_not_stored_again_and_keeps_its_head(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    first = _rows()[:2]
    assert await appender.append(first, now=T0) == {"m1", "m2"}
    again = [*first, NewInboxRow("callback", "m6", "<xml/>", "message", {}, "wrA", "pending")]
    assert await appender.append(again, now=T0) == {"m6"}
    stored = await _stored(sessions)
    assert [(row["dedup_key"], row["is_head"]) for row in stored] == [
        ("m1", True),
        ("m2", True),
        ("m6", False),  # behind m1 in its chat
    ]


async def test_a_batch_keeps_arrival_order(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    keys = [f"k{n:03d}" for n in range(300)][::-1]  # ids must follow the batch, not the keys
    rows = [NewInboxRow("callback", key, "", "message", {}, "wrA", "pending") for key in keys]
    await appender.append(rows, now=T0)
    assert [row["dedup_key"] for row in await _stored(sessions)] == keys


async def test_a_failing_batch_stores_nothing_and_the_next_one_is_stored(
    sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    broken = NewInboxRow("callback", "bad", None, "message", {}, "wrA", "pending")  # type: ignore[arg-type]
    with pytest.raises(Exception, match=r"(?i)null"):
        await appender.append([_rows()[0], broken], now=T0)
    assert await _stored(sessions) == []
    assert await appender.append(_rows()[:1], now=T0) == {"m1"}


async def test_sqlite_splits_a_batch_past_its_variable_limit(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'small.db'}"
    engine = db.make_engine(url)
    await db.upgrade(engine)
    # Room for three rows per statement: 10 rows take four INSERTs in one transaction.
    small = SqliteAppender(str(tmp_path / "small.db"), engine.dialect, max_variables=33)
    try:
        rows = [
            NewInboxRow("callback", f"s{n}", "", "message", {}, "wrA", "pending") for n in range(10)
        ]
        assert await small.append(rows, now=T0) == {f"s{n}" for n in range(10)}
        stored = await _stored(db.make_sessionmaker(engine))
        assert [row["dedup_key"] for row in stored] == [f"s{n}" for n in range(10)]
        assert [row["is_head"] for row in stored] == [True] + [False] * 9
    finally:
        await small.aclose()
        await engine.dispose()


async def test_postgres_replaces_a_connection_the_server_dropped(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], appender: InboxAppender
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL (set TEST_DATABASE_URL)")
    assert await appender.append(_rows()[:1], now=T0) == {"m1"}
    async with engine.connect() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert killed  # the appender's held connection was among them
    assert await appender.append(_rows()[1:3], now=T0) == {"m2", "m3"}
    assert [row["dedup_key"] for row in await _stored(sessions)] == ["m1", "m2", "m3"]
