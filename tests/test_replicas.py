"""Several replicas on one PostgreSQL database: start-up migrations serialize."""

from __future__ import annotations

import asyncio
import sys

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from storage import db
from tests.procs import ROOT, cli_env

# One replica's start-up migration, in a process of its own as a replica would be (Alembic
# keeps module-level state, so in-process concurrency would not be what production does).
_UPGRADE = "import asyncio, sys\nfrom storage import db\n" + (
    "async def main() -> None:\n"
    "    engine = db.make_engine(sys.argv[1])\n"
    "    try:\n"
    "        await db.upgrade(engine)\n"
    "    finally:\n"
    "        await engine.dispose()\n"
    "asyncio.run(main())\n"
)


def _current_and_head(connection: Connection) -> tuple[set[str], set[str]]:
    current = set(MigrationContext.configure(connection).get_current_heads())
    head = set(ScriptDirectory.from_config(db.alembic_config()).get_heads())
    return current, head


async def test_three_replicas_migrate_a_fresh_database_at_once(fresh_postgres_url: str) -> None:
    env = cli_env(ROOT)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _UPGRADE,
            fresh_postgres_url,
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = await asyncio.wait_for(
        asyncio.gather(*(proc.communicate() for proc in procs)), timeout=90
    )
    assert [proc.returncode for proc in procs] == [0, 0, 0], [out for out, _ in outputs]
    engine = db.make_engine(fresh_postgres_url)
    try:
        async with engine.connect() as conn:
            current, head = await conn.run_sync(_current_and_head)
    finally:
        await engine.dispose()
    assert current == head
