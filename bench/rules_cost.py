"""What group rules cost the inbox worker.

The same N archived group messages (10 registered groups, 300 members, one message
a second: a busy afternoon, no floods) are processed by the inbox worker twice, in
one run and in alternation: with the shipped playbooks (default.yaml's rules on)
and with the rules section switched off. Prints events/s and the ratio of the
times (the cost of matching, flood/repeat windows and the raid guard per message).

    uv run python bench/rules_cost.py [--messages 5000] [--repeat 3]
    uv run python bench/rules_cost.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.databases import postgres_database  # noqa: E402
from bot.config.playbooks import PlaybookStore  # noqa: E402
from bot.directory import GroupDirectory  # noqa: E402
from bot.metrics import Metrics  # noqa: E402
from bot.sources.archive import ArchiveRecord, normalize_archive  # noqa: E402
from bot.sources.normalized import store_many  # noqa: E402
from bot.wecom.client import WeComClient  # noqa: E402
from bot.workers.inbox import InboxProcessor  # noqa: E402
from handlers.wiring import build_features  # noqa: E402
from storage import db  # noqa: E402
from storage.groups import upsert_group  # noqa: E402
from storage.inbox_append import appender_for  # noqa: E402

GROUPS, MEMBERS = 10, 300
START_MS = 1_764_000_000_000


def records(count: int, offset: int) -> list[dict[str, object]]:
    return [
        {
            "msgid": f"bench-{offset + n}",
            "action": "send",
            "from": f"wm{n % MEMBERS}",
            "tolist": [],
            "roomid": f"wrBench{n % GROUPS}",
            "msgtime": START_MS + (offset + n) * 1000,
            "msgtype": "text",
            "text": {"content": f"第 {n} 条：这周的活动复盘大家看了吗，有几点想聊聊"},
        }
        for n in range(count)
    ]


async def drain(url: str, templates: Path, count: int, offset: int) -> float:
    """Seconds the worker takes for `count` stored messages on a fresh schema."""
    engine = db.make_engine(url)
    await db.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    appender = appender_for(engine)
    now = datetime.now(UTC)
    try:
        async with sessions() as session, session.begin():
            for g in range(GROUPS):
                await upsert_group(
                    session,
                    f"wrBench{g}",
                    label=None,
                    tags=None,
                    channel_type="webhook",
                    channel_config={"key": "bench"},
                    now=now,
                )
        items = [
            normalize_archive(ArchiveRecord.model_validate(raw), raw)
            for raw in records(count, offset)
        ]
        for start in range(0, count, 1000):
            await store_many(appender, items[start : start + 1000], now=now)
        store = PlaybookStore(templates)
        async with httpx.AsyncClient() as http:
            client = WeComClient(
                api_base="http://127.0.0.1:9", corp_id="ww", corp_secret="s", http=http
            )
            worker = InboxProcessor(
                sessions,
                build_features().registry,
                GroupDirectory(client),
                playbooks=lambda: store.current,
                tz=ZoneInfo("Asia/Shanghai"),
                metrics=Metrics(),
                clock=lambda: datetime.now(UTC),
                default_channel=lambda snapshot: ("none", {}),
                on_processed=lambda outcome: None,
            )
            started = time.perf_counter()
            done = 0
            while done < count:
                got = await worker.run_once()
                if not got:
                    raise SystemExit(f"the worker stopped after {done} of {count} events")
                done += got
            return time.perf_counter() - started
    finally:
        await appender.aclose()
        await engine.dispose()


def templates_without_rules(shipped: Path, target: Path) -> Path:
    shutil.copytree(shipped, target)
    default = target / "default.yaml"
    text = default.read_text(encoding="utf-8")
    default.write_text(text.replace("\nrules:\n", "\nrules:\n  enabled: false\n"), encoding="utf-8")
    return target


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="PostgreSQL base URL (a database of its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with_rules = work / "with_rules"
        shutil.copytree(ROOT / "sop_templates", with_rules)
        without = templates_without_rules(ROOT / "sop_templates", work / "without_rules")
        times: dict[str, list[float]] = {"rules on": [], "rules off": []}
        for run in range(args.repeat):
            for label, templates in (("rules off", without), ("rules on", with_rules)):
                name = f"wecombot_bench_rules_{run}_{label.split()[1]}"
                if args.database_url:
                    url = await postgres_database(args.database_url, name, create=True)
                else:
                    url = f"sqlite+aiosqlite:///{work / name}.db"
                try:
                    times[label].append(await drain(url, templates, args.messages, 0))
                finally:
                    if args.database_url:
                        await postgres_database(args.database_url, name, create=False)
    engine = "PostgreSQL" if args.database_url else "SQLite"
    on, off = statistics.median(times["rules on"]), statistics.median(times["rules off"])
    print(f"{engine}: {args.messages} archived messages, {GROUPS} groups (median of {args.repeat})")
    print(f"  rules off: {args.messages / off:7.0f} events/s ({off:.2f} s)")
    print(f"  rules on:  {args.messages / on:7.0f} events/s ({on:.2f} s)")
    print(f"  ratio {on / off:.2f}x (target ≤ 2x; and ≥ 1,000 events/s with rules on)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
