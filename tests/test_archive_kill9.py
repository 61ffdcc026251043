"""kill -9 mid-pull: a real `serve` pulling a large archive from the emulator on a real
port is killed with SIGKILL, restarted, and every record is in the inbox exactly once."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from sqlalchemy import func, select

from bot.config.settings import SANDBOX_ARCHIVE_SECRET
from bot.sandbox.emulator import EmulatorState, Fault
from bot.sandbox.emulator.server import start_emulator_in_thread
from bot.sandbox.simulate import archive_text_record
from storage import db
from storage.models import ArchiveCursor, InboxItem
from tests.conftest import SHIPPED_TEMPLATES, TEST_CORP_ID, TEST_CORP_SECRET
from tests.procs import Server, free_port, wait_until
from tests.test_end_to_end import configured_env

RECORDS = 4000  # four full pages of 1000


async def _state(url: str) -> tuple[int, int, int]:
    """(archive rows in the inbox, distinct msgids among them, the cursor)."""
    engine = db.make_engine(url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            archived = InboxItem.dedup_key.like("archive:%")
            rows = await session.scalar(select(func.count()).where(archived))
            distinct = await session.scalar(
                select(func.count(func.distinct(InboxItem.dedup_key))).where(archived)
            )
            cursor = await session.scalar(select(ArchiveCursor.seq))
            return int(rows or 0), int(distinct or 0), int(cursor or 0)
    finally:
        await engine.dispose()


def _read(url: str) -> tuple[int, int, int]:
    return asyncio.run(_state(url))


def test_a_pull_killed_midway_resumes_with_every_record_once(
    tmp_path: Path, database_url: str
) -> None:
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    fake = start_emulator_in_thread(
        EmulatorState(corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET)
    )
    try:
        entries = fake.state.append_archive(
            [
                archive_text_record(
                    chat_id=f"wrKill{n % 10}",
                    sender=f"wm{n % 50:02d}",
                    content=f"第 {n} 条",
                    msg_id=f"kill-{n}",
                )
                for n in range(RECORDS)
            ]
        )
        last = entries[-1].seq
        # Every page takes a second to come: the kill lands between pages, mid-pull.
        fake.state.add_fault(Fault(api="finance/getchatdata", delay=1.0, times=50))
        env = configured_env(tmp_path, api_base=fake.base_url, database_url=database_url)
        env.update(
            WECOM_ARCHIVE_SECRET=SANDBOX_ARCHIVE_SECRET,
            ARCHIVE_SOURCE="emulator",
            ARCHIVE_PULL_SECONDS="1",
            ARCHIVE_LEASE_SECONDS="3",  # PostgreSQL: the dead replica's lease ends soon
        )
        port = free_port()
        first = Server(env, tmp_path, port)
        first.start()
        try:
            wait_until(lambda: _read(database_url)[2] > 0, timeout=60, interval=0.05)
            first.kill9()
        finally:
            first.stop()
        rows, distinct, cursor = _read(database_url)
        assert 0 < cursor < last, "the kill was meant to land mid-pull"
        assert rows == distinct

        second = Server(env, tmp_path, port)
        second.start()
        try:
            wait_until(lambda: _read(database_url)[2] == last, timeout=90, interval=0.2)
        finally:
            second.stop()
        assert _read(database_url) == (RECORDS, RECORDS, last)
    finally:
        fake.stop()
