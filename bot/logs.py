"""Logging for `serve`, the CLI and the emulator: one handler on the root logger,
times in BOT_TIMEZONE, and no secret in any line.

uvicorn's own loggers (access and error) propagate here, so every line gets the
same stamp and the same redaction.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, tzinfo

from bot.timefmt import local_iso

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


# Query parameters and fields whose values are credentials: WeCom's access_token in
# every API URL, corpsecret in gettoken, the robot webhook's key, the callback's
# echostr (decrypts to a one-time secret), and our own admin token.
SENSITIVE_NAMES = (
    "access_token",
    "provider_access_token",
    "suite_access_token",
    "corpsecret",
    "secret",
    "key",
    "echostr",
    "token",
    "admin_token",
    "encoding_aes_key",
    "password",
)
_NAMES = "|".join(sorted(SENSITIVE_NAMES, key=len, reverse=True))
# name=value in a query string or an assignment (not part of a longer name)
_ASSIGNED = re.compile(rf"(?i)(?<![\w-])({_NAMES})=([^&\s\"'#,;)\]]+)")
# "name": "value" in JSON or a dict repr
_QUOTED = re.compile(rf"""(?i)(["'])({_NAMES})\1(\s*:\s*)(["'])(.*?)(?<!\\)\4""")
_BEARER = re.compile(r"(?i)\b(Bearer\s+)[A-Za-z0-9._~+/=-]+")
MASK = "***"


def redact(text: str) -> str:
    """`text` with the values of sensitive parameters replaced by ***."""
    text = _ASSIGNED.sub(rf"\1={MASK}", text)
    text = _QUOTED.sub(rf"\1\2\1\3\4{MASK}\4", text)
    return _BEARER.sub(rf"\1{MASK}", text)


class RedactSecrets(logging.Filter):
    """A handler filter: message, exception text and stack never show a credential.

    On the handler, not a logger, so records propagated from any library (uvicorn's
    access log, httpx) pass through it too."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


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
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request (redacted, but noise); APScheduler logs every
    # one-second tick; alembic narrates each start-up.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
