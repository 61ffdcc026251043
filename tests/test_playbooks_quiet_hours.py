"""Quiet hours in local wall-clock time, including periods that span midnight."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.config.playbooks import QuietHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
NIGHT = QuietHours.model_validate({"start": "22:30", "end": "08:00"})
LUNCH = QuietHours.model_validate({"start": "12:00", "end": "14:00"})


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("t", "quiet"),
    [
        (time(22, 29), False),
        (time(22, 30), True),  # start is inside
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),  # end is outside
        (time(12, 0), False),
    ],
)
def test_contains_across_midnight(t: time, quiet: bool) -> None:
    assert NIGHT.contains(t) is quiet


def test_contains_within_a_day() -> None:
    assert LUNCH.contains(time(13, 0))
    assert not LUNCH.contains(time(14, 0))
    assert not LUNCH.contains(time(23, 0))


def test_contains_ignores_tzinfo_on_the_time() -> None:
    assert NIGHT.contains(at(6, 23).timetz())


def test_next_end_before_midnight_is_tomorrow_morning() -> None:
    end = NIGHT.next_end(at(6, 23, 15))
    assert end == at(7, 8)
    assert end.tzinfo is SHANGHAI


def test_next_end_after_midnight_is_this_morning() -> None:
    assert NIGHT.next_end(at(7, 1, 30)) == at(7, 8)


def test_next_end_within_a_day() -> None:
    assert LUNCH.next_end(at(6, 12, 30)) == at(6, 14)


def test_next_end_keeps_the_callers_zone_for_utc_input() -> None:
    # 15:30 UTC is 23:30 in Shanghai; the caller converts to local time first.
    local = datetime(2025, 1, 6, 15, 30, tzinfo=ZoneInfo("UTC")).astimezone(SHANGHAI)
    assert NIGHT.next_end(local) == at(7, 8)


def test_next_end_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        NIGHT.next_end(datetime(2025, 1, 6, 23, 0))


def test_resume_at() -> None:
    assert NIGHT.resume_at(at(6, 20)) == at(6, 20)
    assert NIGHT.resume_at(at(6, 23)) == at(7, 8)


def test_start_equal_to_end_is_an_error() -> None:
    with pytest.raises(ValidationError):
        QuietHours.model_validate({"start": "08:00", "end": "08:00"})


@pytest.mark.parametrize("bad", ["25:00", "8", "08:60", "08:00:00", 480, None])
def test_times_must_be_hh_mm(bad: object) -> None:
    with pytest.raises(ValidationError):
        QuietHours.model_validate({"start": bad, "end": "08:00"})


def test_json_dump_writes_hh_mm() -> None:
    assert NIGHT.model_dump(mode="json") == {"start": "22:30", "end": "08:00"}
    assert str(NIGHT) == "22:30–08:00"
