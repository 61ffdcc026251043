"""Start-up checks and the `tick` command's runtime, kept out of the CLI module."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.config.playbooks import PlaybookLoadError, load_playbooks
from bot.config.settings import SANDBOX_API_PATH, Settings
from bot.runtime import build_runtime
from bot.timefmt import local_iso
from storage import outbox
from storage.db import make_engine, upgrade


async def preflight(settings: Settings) -> str | None:
    """One line naming what is wrong, or None: migrations applied, playbooks valid,
    the archive SDK installed when the archive is to be pulled with it."""
    if settings.archive_pulling and not settings.sandbox and settings.archive_source == "sdk":
        from bot.sources.archive_pull.sdk import sdk_problem

        problem = sdk_problem()
        if problem:
            return problem
    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
    except Exception as exc:
        return f"DATABASE_URL: cannot open or migrate the database: {type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()
    try:
        load_playbooks(settings.sop_templates_dir)
    except PlaybookLoadError as exc:
        first = exc.issues[0] if exc.issues else "unknown problem"
        more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
        return f"SOP_TEMPLATES_DIR: {first}{more}"
    return None


async def run_tick_command(
    settings: Settings, at: datetime, server_url: str | None
) -> dict[str, Any]:
    """`server_url`: the running server whose emulator takes the sends (sandbox)."""
    api_base = (
        server_url + SANDBOX_API_PATH
        if settings.sandbox and server_url
        else settings.wecom_api_base
    )
    runtime = await build_runtime(settings, api_base=api_base)
    try:
        report = await runtime.tick(at, periodic=False)
        await runtime.dispatcher.drain(max_rounds=5)
        async with runtime.sessions() as session:
            statuses = await outbox.statuses(session, report.outbox_ids)
    finally:
        await runtime.aclose()
    waiting = sum(1 for status in statuses.values() if status in ("pending", "sending"))
    return {
        "at": local_iso(at, settings.tz),
        "welcomes": report.welcomes,
        "steps": report.steps,
        "reports": report.by_kind.get("daily_report", {}),
        "queued": report.queued,
        "sent": sum(1 for status in statuses.values() if status == "sent"),
        "waiting": waiting,
        "failed": sum(1 for status in statuses.values() if status == "failed"),
    }
