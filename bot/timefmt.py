"""Times shown to people: ISO 8601 in BOT_TIMEZONE with its offset.

One helper, `local_iso`, used by the CLI, the log formatter (bot/logs.py) and the
admin API.
The database keeps UTC; only what a person reads is converted.

The admin API's response models declare `LocalTime` fields; the zone they are
shown in is the serving app's BOT_TIMEZONE, put in a context variable for each
request by `DisplayZoneMiddleware` (several apps with different zones can share
one process, as tests do).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Literal

from pydantic import PlainSerializer
from starlette.types import ASGIApp, Receive, Scope, Send

Precision = Literal["seconds", "auto"]

_display_zone: ContextVar[tzinfo | None] = ContextVar("display_zone", default=None)


def local_iso(when: datetime, tz: tzinfo, *, precision: Precision = "seconds") -> str:
    """`2026-11-30T14:05:00+08:00`: `when` in `tz`, with the offset. A naive value is UTC
    (that is what the database holds). `precision="auto"` keeps microseconds (the API,
    where rows minutes apart must still sort); people read whole seconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(tz).isoformat(timespec="auto" if precision == "auto" else "seconds")


def display_zone() -> tzinfo:
    zone = _display_zone.get()
    return zone if zone is not None else UTC


def _serialize(when: datetime) -> str:
    return local_iso(when, display_zone(), precision="auto")


# A datetime field of an admin API response: shown in BOT_TIMEZONE with its offset.
LocalTime = Annotated[
    datetime, PlainSerializer(_serialize, return_type=str, when_used="json-unless-none")
]


class DisplayZoneMiddleware:
    """Pure ASGI middleware: every request's responses show times in `tz`."""

    def __init__(self, app: ASGIApp, tz: tzinfo) -> None:
        self.app = app
        self.tz = tz

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _display_zone.set(self.tz)
        try:
            await self.app(scope, receive, send)
        finally:
            _display_zone.reset(token)
