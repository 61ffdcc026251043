"""Points seasons: a playbook may start balances afresh every month, quarter or year
(`points.reset`). Nothing is deleted: the ledger keeps every line, and a season's
balance is the sum of the lines from the season's first local midnight on, so the
lifetime figure and old seasons stay readable."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo

from bot.config.playbooks.points_section import PointsSection, Season


def season_first_day(reset: Season, today: date) -> date | None:
    """The first local day of the season `today` is in; None when seasons never reset."""
    if reset == "monthly":
        return today.replace(day=1)
    if reset == "quarterly":
        return date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    if reset == "yearly":
        return date(today.year, 1, 1)
    return None


def season_start(points: PointsSection | None, now: datetime, tz: tzinfo) -> datetime | None:
    """The instant (UTC) the current season began, by the local calendar; None: no reset."""
    reset: Season = points.reset if points is not None else "never"
    first = season_first_day(reset, now.astimezone(tz).date())
    if first is None:
        return None
    return datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
