"""The `rules:` playbook section: the SPEC §7 example loads, humane defaults, and
mistakes reported at their YAML line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config.playbooks import load_playbooks
from bot.config.playbooks.rules_section import AllowWindow, RulesSection
from tests.test_playbooks import DEFAULT, issues, where, write

SPEC_EXAMPLE = """\
rules:
  dry_run: false
  warning_ttl_days: 14
  appeal_word: 申诉
  ladder: [remind, warn, report]
  exempt_roles: [owner, admin, staff, 讲师]
  items:
    - name: ads
      match: {keywords: ["加我微信", "低价代理"], links: true, weapp: true}
      allow_windows: [{days: [fri], start: "20:00", end: "21:00"}]
    - name: flood
      match: {flood: {messages: 8, seconds: 10}}
  raid_guard: {joins: 20, seconds: 60}
"""

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def pb_dir(tmp_path: Path) -> Path:
    write(tmp_path, "default.yaml", DEFAULT)
    return tmp_path


def test_the_spec_example_loads_with_humane_defaults(pb_dir: Path) -> None:
    write(pb_dir, "community.yaml", SPEC_EXAMPLE)
    rules = load_playbooks(pb_dir).playbooks["community"].rules
    assert isinstance(rules, RulesSection)
    ads, flood = rules.items
    assert ads.match.keywords == ("加我微信", "低价代理") and ads.match.links
    assert flood.match.flood is not None and flood.match.flood.messages == 8
    assert rules.raid_guard is not None and rules.raid_guard.strict_minutes == 30
    assert rules.exempt_roles_of(ads) == ("owner", "admin", "staff", "讲师")
    assert not rules.is_dry_run(ads) and ads.ladder_family == "ads"
    assert (rules.appeal_window_hours, rules.min_step_seconds) == (72, 60)


def test_defaults_warn_before_acting_and_exempt_the_team() -> None:
    rules = RulesSection()
    assert rules.ladder == ("remind", "warn", "report")
    assert rules.exempt_roles == ("owner", "admin", "staff")
    assert rules.warning_ttl_days == 14 and not rules.dry_run


@pytest.mark.parametrize(
    ("yaml", "line", "field", "words"),
    [
        (
            "rules:\n  items:\n    - name: a\n      match: {regex: ['(unclosed']}\n",
            4,
            "rules.items.0.match.regex.0",
            "regular expression",
        ),
        (
            "rules:\n  items:\n    - name: a\n      match: {links: false}\n",
            4,
            "rules.items.0.match",
            "must match something",
        ),
        (
            "rules:\n  items:\n    - {name: a, match: {links: true}}\n"
            "    - {name: a, match: {weapp: true}}\n",
            4,
            "rules.items.1.name",
            "duplicate rule name",
        ),
        (
            "rules:\n  ladder: [remove, remind]\n",
            2,
            "rules.ladder.0",
            "remove must be the last",
        ),
        (
            "rules:\n  ladder: [remind, remind]\n",
            2,
            "rules.ladder.1",
            "appears twice",
        ),
        (
            "rules:\n  items:\n    - name: a\n      match: {links: true}\n"
            "      allow_windows: [{days: [fri], start: '20:00', end: '20:00'}]\n",
            5,
            "rules.items.0.allow_windows.0.end",
            "must not be empty",
        ),
    ],
)
def test_mistakes_point_at_their_line(
    pb_dir: Path, yaml: str, line: int, field: str, words: str
) -> None:
    write(pb_dir, "camp.yaml", yaml)
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", line, field)]
    assert words in issue.message


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        (datetime(2026, 11, 27, 20, 0), True),  # Friday 20:00
        (datetime(2026, 11, 27, 20, 59), True),
        (datetime(2026, 11, 27, 21, 0), False),  # the end is not inside
        (datetime(2026, 11, 26, 20, 30), False),  # Thursday
    ],
)
def test_allow_window(local: datetime, inside: bool) -> None:
    window = AllowWindow.model_validate({"days": ["fri"], "start": "20:00", "end": "21:00"})
    assert window.contains(local.replace(tzinfo=SHANGHAI)) is inside


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    window = AllowWindow.model_validate({"days": ["fri"], "start": "23:00", "end": "01:00"})
    assert window.contains(datetime(2026, 11, 27, 23, 30, tzinfo=SHANGHAI))  # Friday
    assert window.contains(datetime(2026, 11, 28, 0, 30, tzinfo=SHANGHAI))  # Saturday night
    assert not window.contains(datetime(2026, 11, 28, 23, 30, tzinfo=SHANGHAI))  # Saturday
