"""`wecom-bot sandbox sent`: the emulator's log as a person reads it, full texts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from bot.timefmt import local_iso


def message_text(body: Mapping[str, Any]) -> str:
    """The text a recipient sees; the raw body when it is not a text or markdown message."""
    for kind in ("text", "markdown", "stream"):  # stream: a 智能机器人 long-connection reply
        part = body.get(kind)
        if isinstance(part, Mapping) and isinstance(part.get("content"), str):
            return str(part["content"])
    return json.dumps(body, ensure_ascii=False)


def sent_lines(records: Iterable[Mapping[str, Any]], tz: tzinfo) -> list[str]:
    """One header line per record, then its whole text (never cut), then a blank line."""
    lines: list[str] = []
    for record in records:
        at = record.get("at")
        when = (
            local_iso(datetime.fromtimestamp(float(at), UTC), tz)
            if isinstance(at, int | float)
            else "?"
        )
        lines.append(
            f"#{record.get('seq')}  {when}  {record.get('api', '')} → {record.get('target', '')}"
        )
        lines.extend(message_text(record.get("body") or {}).splitlines() or [""])
        lines.append("")
    return lines
