"""The FastAPI application: routes, and a lifespan that owns the runtime."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from bot.api import (
    admin_content,
    admin_daily_report,
    admin_demands,
    admin_groups,
    admin_growth,
    admin_health,
    admin_ladder,
    admin_members,
    admin_outbox,
    admin_playbooks,
    admin_points,
    admin_points_extras,
    admin_questions,
    admin_sandbox,
    admin_star,
    admin_touch,
    admin_violations,
    admin_weekly_digest,
    archive,
    callback,
    health,
)
from bot.config.settings import SANDBOX_API_BASE, SANDBOX_API_PATH, Settings
from bot.datafiles import sandbox_admin_token, sandbox_archive_path, sandbox_log_path
from bot.runtime import SANDBOX_WEBHOOK_KEY, Runtime, build_runtime, utc_now
from bot.sandbox.emulator import EmulatorState, create_emulator_app
from bot.sandbox.emulator.aibot_ws import AibotHub
from bot.timefmt import DisplayZoneMiddleware
from scheduler.runner import build_scheduler
from storage.groups import upsert_group

log = logging.getLogger(__name__)

SANDBOX_DEMO_CHAT = "wrSandboxDemoGroup"
__all__ = ["SANDBOX_API_BASE", "SANDBOX_DEMO_CHAT", "create_app"]


async def _seed_sandbox(runtime: Runtime, emulator: EmulatorState) -> None:
    """A demo group so `simulate join` works out of the box."""
    emulator.upsert_group(SANDBOX_DEMO_CHAT, name="沙盒体验群", owner="sandbox-owner")
    async with runtime.sessions() as session, session.begin():
        group, _ = await upsert_group(
            session,
            SANDBOX_DEMO_CHAT,
            label="沙盒体验群",
            wecom_name="沙盒体验群",  # the emulator's name for it, as groupchat/get says
            tags=None,
            channel_type="webhook",
            channel_config={"key": SANDBOX_WEBHOOK_KEY},
            now=runtime.clock(),
        )
        # As groupchat/get would tell: whom owner tasks and customers' private
        # messages go through before anyone has joined.
        group.owner = group.owner or "sandbox-owner"


def create_app(
    settings: Settings,
    *,
    start_background: bool = True,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    emulator: EmulatorState | None = None
    emulator_app: FastAPI | None = None
    if settings.sandbox:
        emulator = EmulatorState()
        emulator.load_log(sandbox_log_path(settings))
        emulator.load_archive(sandbox_archive_path(settings))
        emulator.start_archive_at(int(time.time() * 1000))
        emulator_app = create_emulator_app(emulator)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub: AibotHub | None = None
        if emulator is not None and start_background:
            # The 智能机器人 long connection goes to the emulator's endpoint (loopback).
            hub = AibotHub(emulator)
            await asyncio.to_thread(hub.start)
        try:
            async with _serving(app, hub):
                yield
        finally:
            if hub is not None:
                await asyncio.to_thread(hub.stop)

    @asynccontextmanager
    async def _serving(app: FastAPI, hub: AibotHub | None) -> AsyncIterator[None]:
        http: httpx.AsyncClient | None = None
        api_base = settings.wecom_api_base
        if emulator_app is not None:
            # In-process: the client reaches the emulator without touching the network.
            http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=emulator_app), base_url=SANDBOX_API_BASE
            )
            api_base = SANDBOX_API_BASE
        runtime = await build_runtime(
            settings,
            api_base=api_base,
            http=http,
            clock=clock,
            aibot_ws_url=hub.url if hub is not None else None,
        )
        app.state.runtime = runtime
        if emulator is not None:
            await _seed_sandbox(runtime, emulator)
        await runtime.recover()
        scheduler = build_scheduler(
            tz=settings.tz,
            tick=runtime.scheduled_tick,
            tick_seconds=settings.scheduler_tick_seconds,
        )
        if start_background:
            runtime.start_background()
            scheduler.start()
        try:
            yield
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            await runtime.aclose()
            if http is not None:
                await http.aclose()

    # /docs and /redoc serve Swagger UI's and ReDoc's files from the installed package,
    # not a CDN: mainland networks and intranets often cannot reach one.
    app = FastAPIOffline(
        title="wecom-bot",
        summary="Community operations for WeCom groups",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(DisplayZoneMiddleware, tz=settings.tz)
    app.state.emulator = emulator
    admin_token = settings.admin_token
    if not admin_token and settings.sandbox:
        # Printed by `serve` on its own line; never in a log line.
        admin_token, token_path = sandbox_admin_token(settings)
        log.info("sandbox mode: admin token kept in %s", token_path)
    app.state.admin_token = admin_token
    callback.add_routes(app)
    for module in (
        archive,
        admin_groups,
        admin_playbooks,
        admin_touch,
        admin_members,
        admin_health,
        admin_ladder,
        admin_points,
        admin_violations,
        admin_outbox,
        admin_sandbox,
        health,
        admin_growth,
        admin_star,
        admin_points_extras,
        admin_content,
        admin_questions,
        admin_daily_report,
        admin_weekly_digest,
        admin_demands,
    ):
        app.include_router(module.router)
    if emulator_app is not None:
        app.mount(SANDBOX_API_PATH, emulator_app)
    return app
