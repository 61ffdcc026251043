"""Logging for `serve` and the CLI: one handler on the root logger, times in BOT_TIMEZONE.

uvicorn's own loggers (access and error) propagate here, so every line gets the
same stamp.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo

from bot.timefmt import local_iso

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class LocalTimeFormatter(logging.Formatter):
    """Log lines stamped in BOT_TIMEZONE with the offset, not the host's local time."""

    def __init__(self, fmt: str, tz: tzinfo) -> None:
        super().__init__(fmt)
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return local_iso(datetime.fromtimestamp(record.created, UTC), self.tz)


def configure_logging(tz: tzinfo, level: int = logging.INFO) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(LocalTimeFormatter(LOG_FORMAT, tz))
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs full URLs, and WeCom puts the access token in the query string;
    # APScheduler logs every one-second tick; alembic narrates each start-up.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
