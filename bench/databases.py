"""A PostgreSQL database of a benchmark's own, so a run never meets an earlier run's rows."""

from __future__ import annotations

from sqlalchemy import text

from storage import db


async def postgres_database(base: str, name: str, create: bool) -> str:
    admin = db.make_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if create:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name
