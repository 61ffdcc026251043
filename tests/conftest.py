"""Shared fixtures: every storage/scheduler test runs on SQLite and, when
TEST_DATABASE_URL is set, on PostgreSQL too."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config.settings import Settings
from bot.sandbox.emulator import EmulatorState
from bot.sandbox.emulator.server import RunningEmulator, start_emulator_in_thread
from storage import db
from storage.inbox_append import InboxAppender, appender_for

ROOT = Path(__file__).resolve().parent.parent
TEST_CORP_ID = "wwTestCorp0001"
TEST_CORP_SECRET = "test-secret"
SHIPPED_TEMPLATES = ROOT / "sop_templates"

DB_PARAMS = ["sqlite"]
if os.environ.get("TEST_DATABASE_URL"):
    DB_PARAMS.append("postgres")


def _pg_url() -> str:
    url = os.environ["TEST_DATABASE_URL"]
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


def _admin(url: str, statement: str) -> None:
    """Run one statement outside any transaction, from any context (its own loop, own thread):
    this fixture is first requested from inside pytest-asyncio's running loop."""
    import asyncio
    import threading

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own, so two runs on one server never collide.

    Falls back to TEST_DATABASE_URL's database itself when the role may not create one.
    """
    import secrets

    given = _pg_url()
    name = f"wecombot_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _admin(given, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"conftest: cannot create a test database ({exc}); using {given} itself")
        yield given
        return
    try:
        yield _with_database(given, name)
    finally:
        _admin(given, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (never migrated), dropped after it.

    Skips the test when TEST_DATABASE_URL is not set or the role may not create databases."""
    import secrets

    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
    given = _pg_url()
    name = f"wecombot_fresh_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _admin(given, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        pytest.skip(f"cannot create a fresh database: {exc}")
    try:
        yield _with_database(given, name)
    finally:
        _admin(given, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _reset_postgres(url: str) -> None:
    engine = db.make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


@pytest.fixture(params=DB_PARAMS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        await _reset_postgres(url)
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = db.make_engine(database_url)
    await db.upgrade(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return db.make_sessionmaker(engine)


@pytest.fixture
async def appender(engine: AsyncEngine) -> AsyncIterator[InboxAppender]:
    """The driver-level way callbacks enter the inbox, on the test database."""
    appending = appender_for(engine)
    yield appending
    await appending.aclose()


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped playbooks that a test may edit."""
    target = tmp_path / "sop_templates"
    shutil.copytree(SHIPPED_TEMPLATES, target)
    return target


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    """An independent fake WeCom on a real port, with the test corp's credentials."""
    running = start_emulator_in_thread(
        EmulatorState(corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET)
    )
    yield running
    running.stop()


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"_env_file": None}
    values.update(overrides)
    return Settings(**values)
