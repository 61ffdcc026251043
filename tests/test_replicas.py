"""Several replicas on one PostgreSQL database: start-up migrations serialize, and each
welcome and touch step goes out once even when a replica dies."""

from __future__ import annotations

import asyncio
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import yaml
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, select

from bot.sandbox.emulator import EmulatorState, Fault
from bot.sandbox.emulator.server import start_emulator_in_thread
from storage import db
from storage.models import InboxItem, OutboxItem
from tests.conftest import SHIPPED_TEMPLATES, TEST_CORP_ID, TEST_CORP_SECRET
from tests.helpers import AUTH, join_callback, sent_texts
from tests.procs import ROOT, Server, cli_env, free_port, run_cli, wait_until
from tests.test_end_to_end import configured_env

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


async def _outbox_and_inbox(url: str) -> tuple[list[OutboxItem], list[InboxItem]]:
    engine = db.make_engine(url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            outbox = list((await session.execute(select(OutboxItem))).scalars())
            inbox = list((await session.execute(select(InboxItem))).scalars())
            return outbox, inbox
    finally:
        await engine.dispose()


def _rows(url: str) -> tuple[list[OutboxItem], list[InboxItem]]:
    return asyncio.run(_outbox_and_inbox(url))


def test_three_replicas_send_each_welcome_and_step_once_with_one_killed(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """Three `serve` replicas started at once on a fresh PostgreSQL database; joins in
    several groups arrive at all of them; touch steps come due through `tick --at`
    (another process sending too); one replica is killed with kill -9 while sends are
    failing and rows are claimed. The fake WeCom then holds every welcome and every
    step exactly once.

    The kill lands while WeCom answers 系统繁忙: a process killed between WeCom's
    accepting a message and the row being marked would send it again (at-least-once
    is all a webhook allows), and that window is not what this test is about."""
    templates = tmp_path / "sop_templates"
    shutil.copytree(SHIPPED_TEMPLATES, templates)
    default = yaml.safe_load((templates / "default.yaml").read_text(encoding="utf-8"))
    default["welcome"]["min_interval_seconds"] = 0  # welcomes soon after each join
    default["welcome"]["batch_window_seconds"] = 1
    (templates / "default.yaml").write_text(yaml.safe_dump(default, allow_unicode=True))
    steps = default["touch_sequence"]["steps"]

    fake = start_emulator_in_thread(
        EmulatorState(corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET)
    )
    groups = [f"wrRep{g}" for g in range(5)]
    members = {f"wmRep{i:02d}": f"副本{i:02d}" for i in range(30)}
    group_of = {uid: groups[n % len(groups)] for n, uid in enumerate(members)}
    for index, chat_id in enumerate(groups):
        fake.state.upsert_group(
            chat_id,
            name=f"多副本群{index}",
            owner=f"owner{index}",
            members=[{"userid": u, "name": members[u]} for u in members if group_of[u] == chat_id],
        )
    env = configured_env(tmp_path, api_base=fake.base_url, database_url=fresh_postgres_url)
    # Short leases: the killed replica's claims come back within seconds.
    env.update(OUTBOX_LEASE_SECONDS="4", INBOX_LEASE_SECONDS="4")
    replicas = [Server(env, tmp_path, free_port()) for _ in range(3)]

    def welcomed_count(name: str) -> int:
        return sum(text.count(name) for text in sent_texts(fake))

    def touches(uid: str) -> list[str]:
        return [
            str(r.body["text"]["content"])
            for r in fake.state.sent_since(0)
            if r.api == "add_msg_template" and r.body.get("external_userid") == [uid]
        ]

    def join(uids: list[str], alive: list[Server]) -> None:
        for n, uid in enumerate(uids):
            params, body = join_callback(group_of[uid], [uid])
            answer = httpx.post(
                f"{alive[n % len(alive)].url}/wecom/callback",
                params=params,
                content=body,
                timeout=10,
            )
            assert answer.text == "success", answer.text

    def tick(at: str) -> None:
        result = run_cli(["tick", "--at", at, "--json"], env, tmp_path)
        assert result.returncode == 0, result.stderr

    def planned_ticks() -> list[str]:
        """When each step comes due, whatever the hour of the run: the servers run on
        the real clock, and a join at 22:50 moves day 0's step past quiet hours. One
        tick per step, at the latest time any member has it planned."""
        due: list[dict[str, str]] = []

        def all_planned() -> bool:
            due[:] = httpx.get(
                f"{replicas[1].url}/admin/touch/due",
                headers=AUTH,
                params={"hours": 24 * 31, "limit": 5000},
                timeout=10,
            ).json()
            return len(due) == len(uids) * len(steps)

        wait_until(all_planned, timeout=60)
        latest: dict[str, datetime] = {}
        for row in due:
            at = datetime.fromisoformat(row["due_at"])
            latest[row["step_key"]] = max(latest.get(row["step_key"], at), at)
        return [at.isoformat() for at in sorted(latest.values())]

    try:
        # All three at once on an empty database: each runs the migrations at start.
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda replica: replica.start(timeout=60), replicas))
        for n, chat_id in enumerate(groups):
            httpx.put(
                f"{replicas[n % 3].url}/admin/groups/{chat_id}",
                headers=AUTH,
                json={"name": chat_id, "channel": {"type": "webhook", "key": f"k-{chat_id}"}},
                timeout=10,
            ).raise_for_status()
        uids = list(members)
        first, second = uids[:15], uids[15:]

        join(first, replicas)
        wait_until(lambda: all(welcomed_count(members[u]) >= 1 for u in first), timeout=60)

        # WeCom is busy: sends fail and wait for a retry while the next joins and the
        # day's touch steps are queued; then one replica dies holding whatever it holds.
        for api in ("webhook/send", "add_msg_template"):
            fake.state.add_fault(Fault(api, errcode=-1, times=100_000))
        join(second, replicas)
        first_tick, *later_ticks = planned_ticks()
        tick(first_tick)

        def retrying() -> bool:
            outbox, _ = _rows(fresh_postgres_url)
            return sum(1 for row in outbox if row.status == "pending" and row.attempts) >= 5

        wait_until(retrying, timeout=60, interval=0.5)
        replicas[0].kill9()
        survivors = replicas[1:]
        fake.state.clear_faults()

        def explain() -> str:
            outbox, inbox = _rows(fresh_postgres_url)
            return repr(
                (
                    [
                        (r.id, r.status, r.attempts, r.last_error)
                        for r in inbox
                        if r.status != "done"
                    ],
                    [
                        (r.id, r.origin, r.status, r.attempts, r.next_attempt_at, r.last_error)
                        for r in outbox
                        if r.status != "sent"
                    ],
                    {u: (welcomed_count(members[u]), len(touches(u))) for u in uids},
                )
            )

        try:
            wait_until(lambda: all(welcomed_count(members[u]) >= 1 for u in second), timeout=60)
            for at in later_ticks:
                tick(at)

            def everything_sent() -> bool:
                outbox, inbox = _rows(fresh_postgres_url)
                return (
                    all(row.status == "done" for row in inbox)
                    and all(row.status == "sent" for row in outbox)
                    and all(len(touches(u)) >= len(steps) for u in uids)
                )

            wait_until(everything_sent, timeout=120, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {explain()}") from None
        for survivor in survivors:  # nothing more goes out once they stop
            survivor.stop()
        assert {u: welcomed_count(members[u]) for u in uids} == dict.fromkeys(uids, 1)
        for uid in uids:
            received = touches(uid)
            assert len(received) == len(steps) == len(set(received)), (uid, received)
            assert received[0].startswith(f"{members[uid]}，你好")
    finally:
        for replica in replicas:
            replica.stop()
        fake.stop()
