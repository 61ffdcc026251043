"""Helpers for tests that drive the real app: signed callbacks, waiting, a live app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.config.playbooks import PlaybookStore
from bot.config.settings import Settings
from bot.directory import GroupDirectory
from bot.metrics import Metrics
from bot.runtime import Runtime
from bot.sandbox.emulator.server import RunningEmulator
from bot.sandbox.simulate import change_external_chat_xml, sign_xml
from bot.wecom.client import WeComClient
from bot.wecom.crypto import WeComCrypto
from bot.workers.inbox import BatchOutcome, InboxProcessor
from handlers.core.registry import Registry
from tests.conftest import TEST_CORP_ID, TEST_CORP_SECRET, make_settings

CORP_ID = TEST_CORP_ID
TOKEN = "test-token"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
ADMIN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def configured_settings(
    *, database_url: str, templates_dir: Path, api_base: str, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "wecom_corp_id": CORP_ID,
        "wecom_corp_secret": TEST_CORP_SECRET,
        "wecom_agent_id": 1000002,
        "wecom_token": TOKEN,
        "wecom_encoding_aes_key": AES_KEY,
        "wecom_api_base": api_base,
        "database_url": database_url,
        "sop_templates_dir": templates_dir,
        "admin_token": ADMIN,
    }
    values.update(extra)
    return make_settings(**values)


def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def join_callback(
    chat_id: str, members: list[str], *, create_time: int | None = None
) -> tuple[dict[str, str], str]:
    xml = change_external_chat_xml(
        corp_id=CORP_ID,
        chat_id=chat_id,
        update_detail="add_member",
        members=members,
        join_scene=0,
        create_time=create_time,
    )
    signed = sign_xml(crypto(), xml)
    return signed.params, signed.body


def leave_callback(
    chat_id: str, members: list[str], *, create_time: int | None = None
) -> tuple[dict[str, str], str]:
    xml = change_external_chat_xml(
        corp_id=CORP_ID,
        chat_id=chat_id,
        update_detail="del_member",
        members=members,
        quit_scene=0,
        create_time=create_time,
    )
    signed = sign_xml(crypto(), xml)
    return signed.params, signed.body


@dataclass
class LiveApp:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def post_callback(self, params: dict[str, str], body: str) -> httpx.Response:
        return await self.http.post("/wecom/callback", params=params, content=body)


@asynccontextmanager
async def live_app(
    settings: Settings, *, background: bool = True, clock: Callable[[], datetime] | None = None
) -> AsyncIterator[LiveApp]:
    app = (
        create_app(settings, start_background=background, clock=clock)
        if clock is not None
        else create_app(settings, start_background=background)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield LiveApp(app=app, http=http)


# A fixed morning (10:00 in Shanghai): step times and quiet hours must not depend on
# when the suite runs.
MORNING = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@asynccontextmanager
async def live_webhook_group(
    *,
    database_url: str,
    templates_dir: Path,
    emulator: RunningEmulator,
    clock: Clock,
    chat_id: str,
    name: str,
    members: dict[str, str],
    joined: bool = False,
) -> AsyncIterator[LiveApp]:
    """The service (no background loops, on `clock`) with one group registered on a
    robot webhook; WeCom's join times follow the same clock. `joined`: the members
    have joined (one change_external_chat callback, processed) before it is yielded."""
    emulator.state.wall_clock = lambda: clock.now.timestamp()
    emulator.state.upsert_group(
        chat_id,
        name=name,
        owner="owner1",
        members=[{"userid": uid, "name": member} for uid, member in members.items()],
    )
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    async with live_app(settings, background=False, clock=clock) as app:
        response = await app.http.put(
            f"/admin/groups/{chat_id}",
            headers=AUTH,
            json={"name": name, "channel": {"type": "webhook", "key": "wk"}},
        )
        assert response.status_code == 200
        if joined:
            params, body = join_callback(chat_id, list(members))
            assert (await app.post_callback(params, body)).status_code == 200
            await settle(app)
        yield app


async def wait_for(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 5.0,
    interval: float = 0.05,
) -> float:
    """Poll until true; returns the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


class Clock:
    """A settable clock for the runtime; starts at the real now."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RunningClock:
    """Real time plus a settable offset, for apps whose background loops must keep moving."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


async def settle(live: LiveApp, *, at: datetime | None = None) -> None:
    """Process the inbox, run a tick, send what is queued: one turn of the service."""
    await live.runtime.inbox.drain()
    await live.runtime.tick(at)
    await live.runtime.dispatcher.drain()


def sent_texts(emulator: RunningEmulator, api: str = "webhook/send") -> list[str]:
    texts = []
    for record in emulator.state.sent_since(0):
        if record.api == api:
            body = record.body
            texts.append(str((body.get("text") or body.get("markdown") or {}).get("content", "")))
    return texts


PROCESSING_TIME = datetime(2026, 11, 30, 4, 1, tzinfo=UTC)


def inbox_processor(
    sessions: async_sessionmaker[AsyncSession],
    registry: Registry,
    templates_dir: Path,
    outcomes: list[BatchOutcome],
    batch_size: int = 200,
    clock: Callable[[], datetime] | None = None,
    wecom: RunningEmulator | None = None,
) -> InboxProcessor:
    """An inbox worker over `sessions` with the shipped features' registry or another,
    a WeCom client that is never reached (or the `wecom` emulator's), and a fixed clock."""
    client = WeComClient(
        api_base=wecom.base_url if wecom else "http://127.0.0.1:9",
        corp_id=TEST_CORP_ID if wecom else "ww",
        corp_secret=TEST_CORP_SECRET if wecom else "s",
        http=httpx.AsyncClient(),
    )
    store = PlaybookStore(templates_dir)
    return InboxProcessor(
        sessions,
        registry,
        GroupDirectory(client),
        playbooks=lambda: store.current,  # type: ignore[arg-type,return-value]
        tz=ZoneInfo("Asia/Shanghai"),
        metrics=Metrics(),
        clock=clock or (lambda: PROCESSING_TIME),
        default_channel=lambda snapshot: ("none", {}),
        on_processed=outcomes.append,
        batch_size=batch_size,
    )


def local_join_day(base_url: str, chat_id: str, member_id: str) -> date:
    """The day a member joined as the running service recorded it, in BOT_TIMEZONE
    (the admin API shows local times), not what the test's own clock says: a join
    just before midnight must not be planned from the next day."""
    got = httpx.get(f"{base_url}/admin/groups/{chat_id}/members", headers=AUTH, timeout=10)
    got.raise_for_status()
    [member] = [row for row in got.json() if row["member_id"] == member_id]
    return datetime.fromisoformat(member["joined_at"]).date()


def archive_text(
    msgid: str, sender: str, room: str, at: datetime, text: str, **extra: Any
) -> dict[str, Any]:
    """A decrypted 会话内容存档 text record, as POST /wecom/archive takes it (SPEC §6)."""
    return {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": [],
        "roomid": room,
        "msgtime": int(at.timestamp() * 1000),
        "msgtype": "text",
        "text": {"content": text},
        **extra,
    }


async def post_archive(app: LiveApp, records: list[dict[str, Any]]) -> None:
    """Archive records in, then one turn of the service."""
    response = await app.http.post("/wecom/archive", headers=AUTH, json=records)
    assert response.status_code == 200, response.text
    await settle(app)


async def points_of(app: LiveApp, chat_id: str, member: str) -> dict[str, Any]:
    """GET /admin/members/{member}/points for the group: balance, lines, …"""
    got = await app.http.get(
        f"/admin/members/{member}/points", headers=AUTH, params={"chat_id": chat_id}
    )
    assert got.status_code == 200, got.text
    return dict(got.json())


async def adjust_points(
    app: LiveApp, chat_id: str, member: str, delta: int, reason: str = "测试"
) -> None:
    """An audited manual adjustment (POST /admin/points) that must succeed."""
    response = await app.http.post(
        "/admin/points",
        headers=AUTH,
        json={"chat_id": chat_id, "member_id": member, "delta": delta, "reason": reason},
    )
    assert response.status_code == 201, response.text


async def redeem(app: LiveApp, chat_id: str, member: str, reward: str) -> httpx.Response:
    return await app.http.post(
        "/admin/redemptions",
        headers=AUTH,
        json={"chat_id": chat_id, "member_id": member, "reward": reward},
    )
