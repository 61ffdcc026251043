"""Appending new rows to the inbox, each call in a transaction of its own: the hot path.

Every acknowledged callback is a row written here before WeCom hears `success`
(bot/sources/group_commit.py gathers concurrent callbacks into one call). Through
an ORM session that write took more Python work per batch than verifying,
decrypting and parsing all of its callbacks (bench/README.md has the numbers), so
the two databases we ship for are written at driver level:

- SQLite: a connection of its own on a thread of its own. A batch is one call into
  that thread (BEGIN IMMEDIATE, a multi-row INSERT … RETURNING, the chats' heads,
  COMMIT) instead of a dozen hand-offs between the event loop and aiosqlite's thread
  with SQLAlchemy's work on every one.
- PostgreSQL (asyncpg): one INSERT … SELECT FROM unnest(column arrays), the same
  prepared statement whatever the batch size, on a connection held for the purpose
  and replaced when the server drops it.

Values pass through the columns' own SQLAlchemy bind processors, so a row is stored
exactly as `storage.inbox.insert_many` stores it (tests/test_inbox_append.py compares
them). Any other database, or an in-memory SQLite, appends through `insert_many` in
a session.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Column, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from storage import heads, inbox
from storage.db import apply_sqlite_pragmas, lock_keys_sql, make_sessionmaker
from storage.inbox import NewInboxRow

TABLE = inbox.TABLE
# The columns a new row sets, in the order the driver-level statements bind them.
COLUMNS: tuple[str, ...] = tuple(
    inbox.row_values(NewInboxRow("", "", "", "", None, None, ""), datetime.min)
)


class InboxAppender(Protocol):
    async def append(self, rows: Sequence[NewInboxRow], *, now: datetime) -> set[str]:
        """Store the rows not stored yet (ON CONFLICT on the dedup key DO NOTHING) and
        their chats' heads, in one transaction; returns the dedup keys this call stored."""
        ...

    async def aclose(self) -> None: ...


def appender_for(engine: AsyncEngine) -> InboxAppender:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.get_driver_name() == "aiosqlite":
        path = url.database
        if path and path != ":memory:" and url.query.get("mode") != "memory":
            return SqliteAppender(path, engine.dialect)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        return PostgresAppender(engine)
    return SessionAppender(make_sessionmaker(engine))


class _Values:
    """Rows as tuples of driver values in COLUMNS order, through each column's bind
    processor for `dialect` (naive-UTC timestamps, JSON text, booleans as SQLite has them)."""

    def __init__(self, dialect: Dialect) -> None:
        self._processors: list[tuple[int, Callable[[Any], Any]]] = []
        for index, name in enumerate(COLUMNS):
            column: Column[Any] = TABLE.c[name]
            process: Callable[[Any], Any] | None = column.type.bind_processor(dialect)
            if process is not None:
                if column.type.python_type is datetime:
                    process = _same_value_once(process)
                self._processors.append((index, process))

    def tuples(self, rows: Sequence[NewInboxRow], now: datetime) -> list[tuple[Any, ...]]:
        # This runs on every callback batch, holding the GIL that the event loop
        # needs: only the columns that have a processor are touched.
        processors = self._processors
        out = []
        for row in rows:
            values = list(inbox.row_values(row, now).values())
            for index, process in processors:
                values[index] = process(values[index])
            out.append(tuple(values))
        return out


def _same_value_once(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`process` of an immutable value, remembering its last answer: a batch's rows
    share their timestamps."""
    last: list[Any] = [object(), None]

    def remembered(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, process(value)
        return last[1]

    return remembered


class SessionAppender:
    """Through SQLAlchemy: for databases without a driver-level path."""

    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self._sessions = sessions

    async def append(self, rows: Sequence[NewInboxRow], *, now: datetime) -> set[str]:
        if not rows:
            return set()
        async with self._sessions() as session, session.begin():
            return await inbox.insert_many(session, rows, now=now)

    async def aclose(self) -> None:
        return None


@functools.lru_cache(maxsize=64)
def _sqlite_insert(count: int) -> str:
    one = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    return (
        f"INSERT INTO {TABLE.name} ({', '.join(COLUMNS)}) VALUES "
        + ", ".join([one] * count)
        + " ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, chat_id"
    )


class SqliteAppender:
    """One sqlite3 connection, used only on its own thread; a batch is one call there.

    SQLite has one writer at a time: BEGIN IMMEDIATE takes the write lock first (the
    busy timeout makes it wait for the workers' transactions), so the heads computed
    before COMMIT cannot be changed under it."""

    def __init__(self, path: str, dialect: Dialect, *, max_variables: int | None = None) -> None:
        self._path = path
        self._values = _Values(dialect)
        self._max_variables = max_variables
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-append")
        self._connection: sqlite3.Connection | None = None  # touched on that thread only

    async def append(self, rows: Sequence[NewInboxRow], *, now: datetime) -> set[str]:
        if not rows:
            return set()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._append, list(rows), now)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            # isolation_level=None: no implicit transactions, this code says BEGIN/COMMIT.
            connection = sqlite3.connect(self._path, isolation_level=None)
            apply_sqlite_pragmas(connection, None)
            self._connection = connection
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _per_statement(self, connection: sqlite3.Connection) -> int:
        limit = self._max_variables or connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return max(1, limit // len(COLUMNS))

    def _append(self, rows: list[NewInboxRow], now: datetime) -> set[str]:
        connection = self._connect()
        values = self._values.tuples(rows, now)
        per_statement = self._per_statement(connection)
        stored: list[tuple[str, str | None]] = []
        connection.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(values), per_statement):
                chunk = values[start : start + per_statement]
                flat = [value for row in chunk for value in row]
                stored.extend(connection.execute(_sqlite_insert(len(chunk)), flat).fetchall())
            chats = sorted({chat for _key, chat in stored if chat is not None})
            if chats:
                connection.executemany(heads.INBOX.promote_sql(), [{"k": chat} for chat in chats])
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return {key for key, _chat in stored}


def _postgres_insert(dialect: Dialect) -> str:
    """INSERT … SELECT FROM unnest($1 … $n): one array per column, in COLUMNS order."""
    arrays, selected = [], []
    for number, name in enumerate(COLUMNS, start=1):
        column: Column[Any] = TABLE.c[name]
        sql_type = column.type.compile(dialect=dialect)
        if sql_type in ("JSON", "JSONB"):
            # Sent as text and cast here: the array's element codec is then plain text.
            arrays.append(f"${number}::text[]")
            selected.append(f"CAST(u.{name} AS {sql_type})")
        else:
            arrays.append(f"${number}::{sql_type}[]")
            selected.append(f"u.{name}")
    return (
        f"INSERT INTO {TABLE.name} ({', '.join(COLUMNS)}) "
        f"SELECT {', '.join(selected)} "
        f"FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({', '.join(COLUMNS)}, n) "
        # Ids in arrival order: a chat's events are handled in id order.
        "ORDER BY u.n "
        "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, chat_id"
    )


class PostgresAppender:
    """asyncpg under SQLAlchemy's pool: one connection held for appending, one batch
    at a time on it. A connection the server dropped (restart, failover,
    pg_terminate_backend) is replaced and the batch written again once: rows a lost
    COMMIT did store are then found by ON CONFLICT, so nothing is stored twice."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "postgresql":
            raise TypeError("PostgresAppender needs a PostgreSQL engine")
        self._engine = engine
        self._values = _Values(engine.dialect)
        self._insert = _postgres_insert(engine.dialect)
        self._promote = heads.INBOX.promote_sql(key="$1")
        self._lock = lock_keys_sql(space="$1", keys="$2::text[]")
        self._held: AsyncConnection | None = None
        self._one_at_a_time = asyncio.Lock()

    async def append(self, rows: Sequence[NewInboxRow], *, now: datetime) -> set[str]:
        if not rows:
            return set()
        columns = list(zip(*self._values.tuples(rows, now), strict=True))
        async with self._one_at_a_time:
            driver = await self._driver()
            try:
                return await self._write(driver, columns)
            except Exception:
                if not driver.is_closed():
                    raise
                await self._drop()
            return await self._write(await self._driver(), columns)

    async def _write(self, driver: Any, columns: list[tuple[Any, ...]]) -> set[str]:
        async with driver.transaction():
            stored = await driver.fetch(self._insert, *columns)
            chats = sorted({row["chat_id"] for row in stored if row["chat_id"] is not None})
            if chats:
                await driver.execute(self._lock, heads.INBOX.lock_space, chats)
                await driver.executemany(self._promote, [(chat,) for chat in chats])
        return {row["dedup_key"] for row in stored}

    async def _driver(self) -> Any:
        if self._held is None:
            self._held = await self._engine.connect()
        raw = await self._held.get_raw_connection()
        return raw.driver_connection

    async def _drop(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await held.invalidate()
            await held.close()

    async def aclose(self) -> None:
        async with self._one_at_a_time:
            held, self._held = self._held, None
            if held is not None:
                await held.close()
