"""Engine, sessions and migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# The advisory-lock key every replica takes before migrating (any fixed 64-bit number;
# this one spells "wecombot" in ASCII). Other advisory locks in this project use other keys.
MIGRATION_LOCK_KEY = 0x7765636F6D626F74


def apply_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the `tick` CLI and a running server share the file; busy_timeout
    # makes a concurrent writer wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk (WAL fsynced) before WeCom hears `success`, power
    # loss included. Group commit (bot/sources/group_commit.py) pays that fsync once
    # per batch of callbacks, so durability costs little throughput.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("postgresql"):
        # A connection the server dropped (restart, failover, pg_terminate_backend) is
        # found at checkout and replaced, instead of failing the request that drew it.
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", apply_sqlite_pragmas)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def dialect_of(session: AsyncSession) -> str:
    """The session's database: "postgresql" or "sqlite"."""
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def json_elements(session: AsyncSession, column: Any) -> Any:
    """A JSON array column's elements as a table with one text column, `value` (to test
    membership in SQL on either database)."""
    if dialect_of(session) == "postgresql":
        return func.json_array_elements_text(column).table_valued("value").alias()
    return func.json_each(column).table_valued("value").alias()


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (DO NOTHING / DO UPDATE)."""
    return pg_insert if dialect_of(session) == "postgresql" else sqlite_insert


async def lock_keys(session: AsyncSession, space: int, keys: Iterable[str]) -> None:
    """Serialize this transaction with every other one that locks any of these keys
    in the same space, until it ends (PostgreSQL transaction advisory locks; SQLite
    has a single writer already). Locks are taken in one sorted order, so writers of
    several keys cannot deadlock; two keys sharing a 32-bit hash just take turns."""
    if dialect_of(session) != "postgresql":
        return
    ordered = sorted(set(keys))
    if not ordered:
        return
    await session.execute(
        text(lock_keys_sql(space=":space", keys="CAST(:keys AS text[])")),
        {"space": space, "keys": ordered},
    )


def lock_keys_sql(*, space: str, keys: str) -> str:
    """`lock_keys` as SQL, with the placeholders of the caller's driver (SQLAlchemy's
    `:name`, asyncpg's `$n`): a lock space (int) and the keys (a text array)."""
    return (
        f"SELECT pg_advisory_xact_lock({space}, s.h) FROM "
        f"(SELECT DISTINCT hashtext(k) AS h FROM unnest({keys}) AS k ORDER BY 1) AS s"
    )


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _serialize_migrations(connection: Connection) -> None:
    """Several replicas starting at once on a fresh database would each run
    `CREATE TABLE alembic_version` and all but one fail (duplicate key in pg_type). On
    PostgreSQL the first takes a transaction-level advisory lock and the others wait on it;
    the migration runs in that same transaction (alembic joins the open one), so a waiter
    proceeds only after the schema is committed, then finds it at head and does nothing.
    SQLite has a single writer already."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def _upgrade(connection: Connection, revision: str) -> None:
    _serialize_migrations(connection)
    command.upgrade(alembic_config(connection), revision)


def _downgrade(connection: Connection, revision: str) -> None:
    _serialize_migrations(connection)
    command.downgrade(alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, revision)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A transaction: commit on success, roll back on error."""
    async with factory() as session, session.begin():
        yield session
