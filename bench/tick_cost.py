"""Tick cost with many enrolled members: is it O(due) or O(enrolled)?

Measures, in the same run, the scheduler tick with 1k members due out of
1k enrolled (the baseline) and 1k due out of 100k enrolled, and prints the
ratio. Target: within 1.5x.

    uv run python bench/tick_cost.py [--enrolled 100000] [--due 1000] [--repeat 3]
                                     [--database-url postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config.playbooks import load_playbooks  # noqa: E402
from handlers.wiring import build_features  # noqa: E402
from scheduler.engine import DueContext, DueEngine  # noqa: E402
from storage import db  # noqa: E402
from storage.models import (  # noqa: E402
    Enrollment,
    Group,
    Membership,
    OutboxItem,
    RateEvent,
    TouchStep,
)

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
CHUNK = 5000


async def populate(engine: AsyncEngine, enrolled: int, due: int) -> list[int]:
    """One group; `enrolled` members with 4 steps each; `due` of them have one step due."""
    joined = AT - timedelta(days=7)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Group).values(
                chat_id="wrBench",
                name="压测群",
                owner="owner",
                tags=[],
                channel_type="webhook",
                channel_config={"key": "bench"},
                origin="admin",
                created_at=joined,
                updated_at=joined,
            )
        )
        for start in range(0, enrolled, CHUNK):
            ids = range(start, min(enrolled, start + CHUNK))
            await conn.execute(
                insert(Membership),
                [
                    {
                        "chat_id": "wrBench",
                        "member_id": f"wm{i}",
                        "name": f"成员{i}",
                        "member_type": 2,
                        "joined_at": joined,
                        "join_count": 1,
                        "message_count": 0,
                        "opted_out": False,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                insert(Enrollment),
                [
                    {
                        "id": i + 1,
                        "chat_id": "wrBench",
                        "member_id": f"wm{i}",
                        "playbook": "default",
                        "status": "active",
                        "enrolled_at": joined,
                    }
                    for i in ids
                ],
            )
            steps: list[dict[str, Any]] = []
            for i in ids:
                for index, key in enumerate(("d0-hello", "d1-featured", "d3-intro", "d7-feedback")):
                    is_due = i < due and key == "d7-feedback"
                    steps.append(
                        {
                            "enrollment_id": i + 1,
                            "step_key": key,
                            "step_index": index,
                            # Not yet due: spread over the coming week, as in a live system.
                            "due_at": AT - timedelta(minutes=1)
                            if is_due
                            else AT + timedelta(hours=1 + (i % 160)),
                            "status": "pending",
                        }
                    )
            await conn.execute(insert(TouchStep), steps)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id FROM touch_steps WHERE due_at <= :at"),
            {"at": (AT).replace(tzinfo=None)},
        )
        return [row[0] for row in rows]


async def reset(engine: AsyncEngine, due_ids: list[int]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(TouchStep)
            .where(TouchStep.id.in_(due_ids))
            .values(status="pending", reason=None, outbox_id=None, done_at=None, sent_on=None)
        )
        await conn.execute(update(Enrollment).values(status="active", ended_at=None))
        await conn.execute(delete(OutboxItem))
        await conn.execute(delete(RateEvent))


async def measure(url: str, enrolled: int, due: int, repeat: int) -> list[float]:
    engine = db.make_engine(url)
    await db.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    playbooks = load_playbooks(ROOT / "sop_templates")
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    due_ids = await populate(engine, enrolled, due)
    engine_ = DueEngine(build_features().due_kinds)
    assert len(due_ids) == due, (len(due_ids), due)
    timings = []
    for _ in range(repeat):
        await reset(engine, due_ids)
        start = time.perf_counter()
        ctx = DueContext(at=AT, now=AT, tz=tz, playbooks=playbooks)
        report = await engine_.run(sessions, ctx)
        timings.append(time.perf_counter() - start)
        assert report.steps.get("sent") == due, report.steps
    await engine.dispose()
    return timings


async def fresh_url(base: str | None, workdir: Path, name: str) -> str:
    if base is None:
        return f"sqlite+aiosqlite:///{workdir / name}.db"
    engine = db.make_engine(base)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
    return base


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--enrolled", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (its schema is wiped)")
    parser.add_argument("--limit", type=float, default=1.5, help="ratio that counts as a pass")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        base_url = await fresh_url(args.database_url, workdir, "baseline")
        baseline = await measure(base_url, args.due, args.due, args.repeat)
        big_url = await fresh_url(args.database_url, workdir, "large")
        large = await measure(big_url, args.enrolled, args.due, args.repeat)
    base_s, large_s = statistics.median(baseline), statistics.median(large)
    ratio = large_s / base_s
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"backend: {backend}")
    print(
        f"baseline: {args.due:>7} enrolled, {args.due} due: {base_s * 1000:8.1f} ms"
        f" (median of {args.repeat})"
    )
    print(
        f"large:    {args.enrolled:>7} enrolled, {args.due} due: {large_s * 1000:8.1f} ms"
        f" (median of {args.repeat})"
    )
    verdict = "OK" if ratio <= args.limit else "OVER"
    print(f"ratio large/baseline: {ratio:.2f}x (target <= {args.limit}x) {verdict}")
    return 0 if ratio <= args.limit else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
