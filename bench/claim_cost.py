"""Is a claim's cost independent of one chat's backlog?

Two databases in one run: one where a busy group has 10,000 pending events (and
an order key 10,000 queued messages), one where it has 100; both also hold 100
quiet chats with one event each. On each, time the worker's real operations:
claim a batch from the inbox, finish a chat's head (the next row becomes head),
claim from the outbox, and mark a sent message (its destination's next head).
Each operation runs in a transaction that is rolled back, so every repetition
sees the same state. Prints the median per operation and the deep/shallow ratio
(target ≤ 1.5x).

    uv run python bench/claim_cost.py                      # SQLite
    uv run python bench/claim_cost.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
      (creates and drops two databases of its own on that server)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker  # noqa: E402

from bench.databases import postgres_database  # noqa: E402
from storage import db, inbox, outbox  # noqa: E402
from storage.models import InboxItem, OutboxItem  # noqa: E402

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
QUIET_CHATS = 100

Operation = Callable[[AsyncSession], Awaitable[object]]


async def fill(sessions: async_sessionmaker[AsyncSession], backlog: int) -> None:
    rows = [
        inbox.NewInboxRow("bench", f"busy-{n}", "", "message", {}, "busy", "pending")
        for n in range(backlog)
    ] + [
        inbox.NewInboxRow("bench", f"quiet-{n}", "", "message", {}, f"quiet-{n}", "pending")
        for n in range(QUIET_CHATS)
    ]
    for start in range(0, len(rows), 500):
        async with sessions() as session, session.begin():
            await inbox.insert_many(session, rows[start : start + 500], now=NOW)
    for start in range(0, backlog, 500):
        async with sessions() as session, session.begin():
            for n in range(start, min(backlog, start + 500)):
                await outbox.enqueue(session, _message("busy", n), now=NOW)
    async with sessions() as session, session.begin():
        for n in range(QUIET_CHATS):
            await outbox.enqueue(session, _message(f"quiet-{n}", n), now=NOW)


def _message(order_key: str, n: int) -> outbox.NewMessage:
    return outbox.NewMessage(
        channel="webhook",
        target="k",
        payload={"msgtype": "text", "text": {"content": str(n)}},
        rate_key="webhook:k",
        order_key=order_key,
    )


async def _inbox_head(session: AsyncSession, chat_id: str) -> int:
    found = await session.execute(
        select(InboxItem.id).where(InboxItem.chat_id == chat_id, InboxItem.is_head)
    )
    return int(found.scalar_one())


async def _outbox_head(session: AsyncSession, order_key: str) -> int:
    found = await session.execute(
        select(OutboxItem.id).where(OutboxItem.order_key == order_key, OutboxItem.is_head)
    )
    return int(found.scalar_one())


async def claim_inbox(session: AsyncSession) -> object:
    return await inbox.claim(session, now=NOW, lease=LEASE, limit=200, token="bench-1")


async def finish_inbox_head(session: AsyncSession) -> object:
    head = await _inbox_head(session, "busy")
    return await inbox.mark(session, head, status="done", now=NOW)


async def claim_outbox(session: AsyncSession) -> object:
    return await outbox.claim(session, now=NOW, lease=LEASE, limit=20, token="bench-1")


async def sent_outbox_head(session: AsyncSession) -> object:
    head = await _outbox_head(session, "busy")
    await outbox.mark_sent(session, head, now=NOW, result=None)
    return head


OPERATIONS: dict[str, Operation] = {
    "inbox claim (200)": claim_inbox,
    "inbox finish head": finish_inbox_head,
    "outbox claim (20)": claim_outbox,
    "outbox sent head": sent_outbox_head,
}


async def timed_once(sessions: async_sessionmaker[AsyncSession], op: Operation) -> float:
    async with sessions() as session:
        transaction = await session.begin()
        started = time.perf_counter()
        await op(session)
        elapsed = time.perf_counter() - started
        await transaction.rollback()
    return elapsed


async def prepare(url: str, backlog: int) -> AsyncEngine:
    engine = db.make_engine(url)
    await db.upgrade(engine)
    await fill(db.make_sessionmaker(engine), backlog)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:  # committed: statistics roll back too
            await conn.execute(text("ANALYZE"))
    return engine


async def measure(urls: dict[int, str], repeat: int) -> dict[int, dict[str, float]]:
    """Both databases are measured in alternation, repetition by repetition, so a
    busy moment of the machine weighs on both alike."""
    engines = {backlog: await prepare(url, backlog) for backlog, url in urls.items()}
    try:
        samples: dict[int, dict[str, list[float]]] = {
            backlog: {name: [] for name in OPERATIONS} for backlog in urls
        }
        makers = {backlog: db.make_sessionmaker(engine) for backlog, engine in engines.items()}
        for _ in range(repeat):
            for name, op in OPERATIONS.items():
                for backlog, sessions in makers.items():
                    samples[backlog][name].append(await timed_once(sessions, op))
        return {
            backlog: {name: statistics.median(values) for name, values in ops.items()}
            for backlog, ops in samples.items()
        }
    finally:
        for engine in engines.values():
            await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL server to use (default: SQLite)")
    parser.add_argument("--deep", type=int, default=10_000)
    parser.add_argument("--shallow", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()
    backlogs = (args.shallow, args.deep)
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            names = {backlog: f"wecombot_bench_claims_{backlog}" for backlog in backlogs}
            urls = {
                backlog: await postgres_database(args.database_url, name, create=True)
                for backlog, name in names.items()
            }
        else:
            urls = {
                backlog: f"sqlite+aiosqlite:///{tmp}/claims-{backlog}.db" for backlog in backlogs
            }
        try:
            results = await measure(urls, args.repeat)
        finally:
            if args.database_url:
                for name in names.values():
                    await postgres_database(args.database_url, name, create=False)
    engine = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{engine}: backlog of one chat {args.deep} vs {args.shallow} (median of {args.repeat})")
    worst = 0.0
    for name in OPERATIONS:
        shallow, deep = results[args.shallow][name], results[args.deep][name]
        ratio = deep / shallow
        worst = max(worst, ratio)
        print(f"  {name:<20} {deep * 1000:7.2f} ms vs {shallow * 1000:7.2f} ms  ratio {ratio:.2f}x")
    print(f"worst ratio {worst:.2f}x (target ≤ 1.5x)")


if __name__ == "__main__":
    asyncio.run(main())
