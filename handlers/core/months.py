"""Calendar months as operators write them (YYYY-MM, BOT_TIMEZONE): leaderboards and
the 贡献之星 vote read the same labels."""

from __future__ import annotations

import re
from datetime import date

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_label(first: date) -> str:
    return f"{first.year:04d}-{first.month:02d}"


def parse_month(text: str) -> date | None:
    match = MONTH.match(text)
    return date(int(match[1]), int(match[2]), 1) if match else None


def next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def previous_month(day: date) -> date:
    first = day.replace(day=1)
    return date(first.year - 1, 12, 1) if first.month == 1 else first.replace(month=first.month - 1)
