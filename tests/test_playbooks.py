"""Playbook loading: the shipped set, every way a file can be wrong, extends, group binding."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from bot.config.playbooks import (
    PlaybookIssue,
    PlaybookLoadError,
    PlaybookSet,
    check_command,
    load_playbooks,
    schema_command,
)

SHIPPED = Path(__file__).resolve().parent.parent / "sop_templates"

DEFAULT = """\
welcome:
  text: "欢迎 {{ names }}"
"""


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")


def issues(directory: Path) -> list[PlaybookIssue]:
    with pytest.raises(PlaybookLoadError) as caught:
        load_playbooks(directory)
    return caught.value.issues


def where(found: list[PlaybookIssue]) -> list[tuple[str, int | None, str]]:
    return [(i.file, i.line, i.field) for i in found]


@pytest.fixture
def pb_dir(tmp_path: Path) -> Path:
    write(tmp_path, "default.yaml", DEFAULT)
    return tmp_path


# --- the shipped playbooks ------------------------------------------------------------


def test_shipped_playbooks_load_cleanly() -> None:
    playbooks = load_playbooks(SHIPPED)
    assert set(playbooks.playbooks) == {"default", "new_user", "camp", "delivery", "fans", "lead"}


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("新用户群", "new_user"),
        ("训练营", "camp"),
        ("交付群", "delivery"),
        ("铁粉群", "fans"),
        ("引流群", "lead"),
        ("没人认领的标签", "default"),
    ],
)
def test_shipped_playbooks_bind_by_tag(tag: str, expected: str) -> None:
    assert load_playbooks(SHIPPED).for_group("wrX", [tag]).name == expected


def test_shipped_default_follows_the_brief() -> None:
    default = load_playbooks(SHIPPED).playbooks["default"]
    assert default.welcome is not None and default.quiet_hours is not None
    assert default.welcome.batch_window_seconds == 3
    assert default.welcome.min_interval_seconds == 60
    assert default.welcome.during_quiet_hours == "send"
    assert str(default.quiet_hours) == "22:30–08:00"
    assert default.touch_sequence is not None
    assert max(step.day for step in default.touch_sequence.steps) == 7


def test_shipped_fans_defer_welcomes_at_night() -> None:
    fans = load_playbooks(SHIPPED).playbooks["fans"]
    assert fans.welcome is not None and fans.welcome.during_quiet_hours == "defer"


def test_shipped_sequences_touch_a_member_at_most_once_a_day() -> None:
    # Customers receive at most one enterprise mass message a day.
    for playbook in load_playbooks(SHIPPED).playbooks.values():
        assert playbook.touch_sequence is not None
        days = Counter(step.day for step in playbook.touch_sequence.steps)
        assert max(days.values()) == 1, playbook.name


def test_shipped_lead_is_a_light_touch() -> None:
    lead = load_playbooks(SHIPPED).playbooks["lead"]
    assert lead.touch_sequence is not None and len(lead.touch_sequence.steps) == 1


def test_shipped_camp_covers_the_camp_stages() -> None:
    camp = load_playbooks(SHIPPED).playbooks["camp"]
    assert camp.touch_sequence is not None
    keys = " ".join(step.key for step in camp.touch_sequence.steps)
    for stage in ("notice", "rules", "kickoff", "checkin", "nudge", "closing", "feedback"):
        assert stage in keys


# --- broken files -----------------------------------------------------------------------


def test_bad_time_is_reported_at_its_line(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        extends: default
        touch_sequence:
          steps:
            - key: d0
              day: 0
              at: "20:00"
              channel: private
              text: hi
            - key: d1
              day: 1
              at: "25:00"
              channel: private
              text: hi
        """,
    )
    [issue] = issues(pb_dir)
    assert str(issue).startswith("camp.yaml:11:touch_sequence.steps.1.at: ")
    assert "25:00" in issue.message


def test_unquoted_time_is_read_as_a_time_not_a_base_60_number(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        extends: default
        touch_sequence:
          steps:
            - {key: d0, day: 0, at: 20:00, channel: private, text: hi}
        """,
    )
    camp = load_playbooks(pb_dir).playbooks["camp"]
    assert camp.touch_sequence is not None
    assert camp.touch_sequence.steps[0].at.strftime("%H:%M") == "20:00"


def test_unknown_key_suggests_the_right_one(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        welcome:
          text: hi
          batch_windw_seconds: 5
        """,
    )
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 3, "welcome.batch_windw_seconds")]
    assert "batch_window_seconds" in issue.message


def test_unknown_top_level_key(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", "description: x\nwelcom:\n  text: hi\n")
    assert where(issues(pb_dir)) == [("camp.yaml", 2, "welcom")]


def test_unknown_variable_in_a_template(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        description: 训练营
        welcome:
          text: |
            欢迎 {{ nmes }} 加入
        """,
    )
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 3, "welcome.text")]
    assert "'nmes'" in issue.message


def test_misspelt_attribute_is_caught_by_the_dry_render(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", 'welcome:\n  text: "欢迎来到 {{ group.nmae }}"\n')
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 2, "welcome.text")]
    assert "nmae" in issue.message


def test_template_syntax_error_points_inside_the_block(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        welcome:
          text: |
            欢迎新朋友
            {{ names }
            请先看群公告
        """,
    )
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 4, "welcome.text")]
    assert "syntax" in issue.message


def test_unsafe_template_is_refused_at_load(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", "welcome:\n  text: \"{{ ''.__class__.__mro__ }}\"\n")
    [issue] = issues(pb_dir)
    assert issue.field == "welcome.text" and "unsafe" in issue.message


@pytest.mark.parametrize(
    ("when", "words"),
    [
        ("member.has_spoken and", "syntax"),
        ("not member.spoke_before", "spoke_before"),
        ("member.spoke_before", "spoke_before"),
        ("not memberr.has_spoken", "memberr"),
        ("member.has_spoken }}{{ 1", "syntax"),
    ],
)
def test_bad_when_expression(pb_dir: Path, when: str, words: str) -> None:
    write(
        pb_dir,
        "camp.yaml",
        f"""\
        touch_sequence:
          steps:
            - key: d1
              day: 1
              at: "20:00"
              channel: private
              when: "{when}"
              text: hi
        """,
    )
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 7, "touch_sequence.steps.0.when")]
    assert words in issue.message


def test_duplicate_step_keys_point_at_the_second(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        touch_sequence:
          steps:
            - {key: hello, day: 0, at: "20:00", channel: private, text: a}
            - {key: tips, day: 1, at: "20:00", channel: private, text: b}
            - {key: hello, day: 2, at: "20:00", channel: private, text: c}
        """,
    )
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 5, "touch_sequence.steps.2.key")]
    assert "hello" in issue.message


def test_extends_cycle_is_reported_on_each_member(pb_dir: Path) -> None:
    write(pb_dir, "a.yaml", "description: a\nextends: b\n")
    write(pb_dir, "b.yaml", "extends: a\n")
    write(pb_dir, "c.yaml", "extends: a\n")  # not in the cycle: its own file is fine
    found = issues(pb_dir)
    assert where(found) == [("a.yaml", 2, "extends"), ("b.yaml", 1, "extends")]
    assert "a → b → a" in found[0].message


def test_extends_itself_is_a_cycle(pb_dir: Path) -> None:
    write(pb_dir, "a.yaml", "extends: a\n")
    [issue] = issues(pb_dir)
    assert where([issue]) == [("a.yaml", 1, "extends")] and "cycle" in issue.message


def test_unknown_parent(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", "description: 训练营\nextends: defualt\n")
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 2, "extends")]
    assert "'defualt'" in issue.message and "default" in issue.message


def test_yaml_syntax_error_uses_the_problem_line(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        description: 训练营
        welcome:
          text: "欢迎
          enabled: true
        quiet_hours: [
        """,
    )
    [issue] = issues(pb_dir)
    assert issue.file == "camp.yaml" and issue.field == "(yaml)"
    assert issue.line is not None and issue.line >= 3
    assert issue.message.startswith("invalid YAML")


def test_yaml_tab_indentation_error_line(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", "welcome:\n  text: hi\n\tenabled: true\n")
    [issue] = issues(pb_dir)
    assert (issue.file, issue.line, issue.field) == ("camp.yaml", 3, "(yaml)")


def test_missing_default(tmp_path: Path) -> None:
    write(tmp_path, "camp.yaml", DEFAULT)
    [issue] = issues(tmp_path)
    assert where([issue]) == [("default.yaml", None, "(file)")]
    assert str(issue).startswith("default.yaml:?:(file): ")


def test_empty_and_missing_directories(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a playbook")
    [issue] = issues(tmp_path)
    assert issue.field == "(directory)"
    [issue] = issues(tmp_path / "nope")
    assert issue.field == "(directory)" and "cannot read" in issue.message


def test_non_yaml_and_dot_files_are_ignored(pb_dir: Path) -> None:
    (pb_dir / "notes.txt").write_text("welcome: [")
    (pb_dir / ".#default.yaml").write_text("welcome: [")
    (pb_dir / "old.yaml.bak").write_text("welcome: [")
    assert list(load_playbooks(pb_dir).playbooks) == ["default"]


def test_yml_suffix_is_accepted_and_two_files_for_one_name_are_not(pb_dir: Path) -> None:
    write(pb_dir, "camp.yml", DEFAULT)
    assert "camp" in load_playbooks(pb_dir).playbooks
    write(pb_dir, "camp.yaml", DEFAULT)
    assert where(issues(pb_dir)) == [("camp.yml", None, "(file)")]


def test_name_must_match_the_file(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", "name: bootcamp\nwelcome:\n  text: hi\n")
    assert where(issues(pb_dir)) == [("camp.yaml", 1, "name")]


def test_empty_file_and_non_mapping_file(pb_dir: Path) -> None:
    write(pb_dir, "a.yaml", "")
    write(pb_dir, "b.yaml", "- just\n- a list\n")
    assert where(issues(pb_dir)) == [("a.yaml", None, "(root)"), ("b.yaml", 1, "(root)")]


def test_duplicate_yaml_key(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", "welcome:\n  text: one\n  max_names: 3\n  text: two\n")
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 4, "welcome.text")]
    assert "line 2" in issue.message


def test_ranges_and_types(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        welcome:
          text: hi
          batch_window_seconds: 0
          max_names: 51
          rejoin_suppress_days: "7"
          enabled: "yes"
          during_quiet_hours: later
        """,
    )
    assert [i.field for i in issues(pb_dir)] == [
        "welcome.batch_window_seconds",
        "welcome.max_names",
        "welcome.rejoin_suppress_days",
        "welcome.enabled",
        "welcome.during_quiet_hours",
    ]


def test_welcome_text_is_required_when_enabled(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", "welcome:\n  max_names: 3\n")
    assert where(issues(pb_dir)) == [("camp.yaml", 1, "welcome.text")]
    write(pb_dir, "camp.yaml", "welcome:\n  enabled: false\n")
    assert load_playbooks(pb_dir).playbooks["camp"].welcome is not None


def test_step_inside_quiet_hours(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        quiet_hours: {start: "22:30", end: "08:00"}
        touch_sequence:
          steps:
            - {key: late, day: 0, at: "23:15", channel: private, text: hi}
        """,
    )
    [issue] = issues(pb_dir)
    assert where([issue]) == [("camp.yaml", 4, "touch_sequence.steps.0.at")]
    assert "22:30–08:00" in issue.message


def test_empty_quiet_hours(pb_dir: Path) -> None:
    write(pb_dir, "camp.yaml", 'quiet_hours:\n  start: "22:00"\n  end: "22:00"\n')
    assert where(issues(pb_dir)) == [("camp.yaml", 3, "quiet_hours.end")]


def test_step_key_and_day_limits(pb_dir: Path) -> None:
    write(
        pb_dir,
        "camp.yaml",
        """\
        touch_sequence:
          steps:
            - {key: "Day 0", day: 31, at: "20:00", channel: email, text: hi}
        """,
    )
    assert [i.field for i in issues(pb_dir)] == [
        "touch_sequence.steps.0.channel",
        "touch_sequence.steps.0.day",
        "touch_sequence.steps.0.key",
    ]


def test_customer_group_template_is_plain_text_within_limits(pb_dir: Path) -> None:
    write(
        pb_dir,
        "a.yaml",
        'welcome:\n  text: hi\n  customer_group_template:\n    text: "欢迎 {{ names }}"\n',
    )
    long_text = "欢" * 1001  # 3003 bytes
    write(
        pb_dir,
        "b.yaml",
        f'welcome:\n  text: hi\n  customer_group_template:\n    text: "{long_text}"\n',
    )
    found = issues(pb_dir)
    assert where(found) == [
        ("a.yaml", 4, "welcome.customer_group_template.text"),
        ("b.yaml", 4, "welcome.customer_group_template.text"),
    ]
    assert "%NICKNAME%" in found[0].message and "3003" in found[1].message


def test_customer_group_template_keeps_nickname_literal(pb_dir: Path) -> None:
    write(
        pb_dir,
        "a.yaml",
        'welcome:\n  text: hi\n  customer_group_template:\n    text: "欢迎 %NICKNAME%"\n',
    )
    welcome = load_playbooks(pb_dir).playbooks["a"].welcome
    assert welcome is not None and welcome.customer_group_template is not None
    assert welcome.customer_group_template.text == "欢迎 %NICKNAME%"


def test_same_chat_id_in_two_playbooks(pb_dir: Path) -> None:
    write(pb_dir, "a.yaml", "applies_to:\n  chat_ids: [wr1]\n")
    write(pb_dir, "b.yaml", "applies_to:\n  chat_ids:\n    - wr2\n    - wr1\n")
    [issue] = issues(pb_dir)
    assert where([issue]) == [("b.yaml", 4, "applies_to.chat_ids.1")]


def test_all_issues_from_all_files_are_collected(pb_dir: Path) -> None:
    write(pb_dir, "a.yaml", "welcome:\n  text: hi\n  max_names: 0\n  colour: red\n")
    write(pb_dir, "b.yaml", "extends: nowhere\n")
    write(pb_dir, "c.yaml", "quiet_hours: [\n")
    assert [(i.file, i.field) for i in issues(pb_dir)] == [
        ("a.yaml", "welcome.max_names"),
        ("a.yaml", "welcome.colour"),
        ("b.yaml", "extends"),
        ("c.yaml", "(yaml)"),
    ]


def test_an_error_in_a_parent_is_reported_once_in_the_parent(tmp_path: Path) -> None:
    write(tmp_path, "default.yaml", 'quiet_hours: {start: "22:00", end: "24:00"}\n')
    write(tmp_path, "a.yaml", "extends: default\n")
    write(tmp_path, "b.yaml", "extends: a\n")
    assert where(issues(tmp_path)) == [("default.yaml", 1, "quiet_hours.end")]


def test_an_error_in_an_override_is_reported_in_the_child(pb_dir: Path) -> None:
    write(pb_dir, "a.yaml", "extends: default\nwelcome:\n  max_names: 0\n")
    assert where(issues(pb_dir)) == [("a.yaml", 3, "welcome.max_names")]


def test_a_child_of_a_broken_file_is_not_blamed(pb_dir: Path) -> None:
    write(pb_dir, "a.yaml", "welcome: [\n")
    write(pb_dir, "b.yaml", "extends: a\n")
    assert [i.file for i in issues(pb_dir)] == ["a.yaml"]


def test_issue_str_format() -> None:
    issue = PlaybookIssue(file="a.yaml", line=3, field="welcome.text", message="bad")
    assert str(issue) == "a.yaml:3:welcome.text: bad"
    assert str(issue.model_copy(update={"line": None})) == "a.yaml:?:welcome.text: bad"


# --- extends ----------------------------------------------------------------------------

PARENT = """\
description: 父剧本
applies_to:
  tags: [母标签]
quiet_hours: {start: "22:00", end: "07:00"}
welcome:
  max_names: 5
  text: "parent {{ names }}"
  private:
    enabled: true
    text: "hi {{ member.name }}"
touch_sequence:
  steps:
    - {key: p1, day: 0, at: "20:00", channel: private, text: p1}
    - {key: p2, day: 1, at: "20:00", channel: private, text: p2}
"""


def test_extends_deep_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    write(tmp_path, "default.yaml", PARENT)
    write(
        tmp_path,
        "child.yaml",
        """\
        extends: default
        welcome:
          max_names: 3
          private:
            text: "你好 {{ member.name }}"
        touch_sequence:
          steps:
            - {key: c1, day: 2, at: "09:00", channel: group, text: c1}
        """,
    )
    child = load_playbooks(tmp_path).playbooks["child"]
    assert child.name == "child" and child.extends == "default"
    assert child.welcome is not None and child.welcome.private is not None
    assert child.welcome.text == "parent {{ names }}"  # inherited
    assert child.welcome.max_names == 3  # overridden
    assert child.welcome.private.enabled is True  # merged key by key
    assert child.welcome.private.text == "你好 {{ member.name }}"
    assert child.touch_sequence is not None
    assert [s.key for s in child.touch_sequence.steps] == ["c1"]  # list replaced
    assert str(child.quiet_hours) == "22:00–07:00"


def test_applies_to_and_description_are_not_inherited(tmp_path: Path) -> None:
    write(tmp_path, "default.yaml", PARENT)
    write(tmp_path, "child.yaml", "extends: default\n")
    child = load_playbooks(tmp_path).playbooks["child"]
    assert child.applies_to.tags == () and child.description == ""


def test_null_removes_an_inherited_section(tmp_path: Path) -> None:
    write(tmp_path, "default.yaml", PARENT)
    write(tmp_path, "child.yaml", "extends: default\nquiet_hours: null\ntouch_sequence: null\n")
    child = load_playbooks(tmp_path).playbooks["child"]
    assert child.quiet_hours is None and child.touch_sequence is None
    assert child.welcome is not None


def test_three_level_chain(tmp_path: Path) -> None:
    write(tmp_path, "default.yaml", PARENT)
    write(tmp_path, "mid.yaml", "extends: default\nwelcome:\n  max_names: 4\n")
    write(tmp_path, "leaf.yaml", 'extends: mid\nwelcome:\n  text: "leaf {{ names }}"\n')
    leaf = load_playbooks(tmp_path).playbooks["leaf"]
    assert leaf.welcome is not None and leaf.welcome.private is not None
    assert (leaf.welcome.max_names, leaf.welcome.text) == (4, "leaf {{ names }}")
    assert leaf.welcome.private.text == "hi {{ member.name }}"


def test_merged_result_is_validated_as_a_whole(tmp_path: Path) -> None:
    # Fine on its own, but the parent's quiet hours cover the child's step.
    write(tmp_path, "default.yaml", PARENT)
    write(
        tmp_path,
        "child.yaml",
        """\
        extends: default
        touch_sequence:
          steps:
            - {key: late, day: 0, at: "23:00", channel: private, text: hi}
        """,
    )
    [issue] = issues(tmp_path)
    assert where([issue]) == [("child.yaml", 4, "touch_sequence.steps.0.at")]


# --- which playbook a group follows -----------------------------------------------------


@pytest.fixture
def bound(pb_dir: Path) -> PlaybookSet:
    write(pb_dir, "alpha.yaml", "applies_to:\n  tags: [x, y]\n")
    write(pb_dir, "beta.yaml", "applies_to:\n  tags: [x, y, z]\n")
    write(pb_dir, "gamma.yaml", "applies_to:\n  tags: [x]\n  chat_ids: [wrVIP]\n")
    return load_playbooks(pb_dir)


def test_for_group_chat_id_wins(bound: PlaybookSet) -> None:
    assert bound.for_group("wrVIP", ["x", "y", "z"]).name == "gamma"


def test_for_group_most_shared_tags(bound: PlaybookSet) -> None:
    assert bound.for_group("wr1", ["y", "z"]).name == "beta"
    assert bound.for_group("wr1", ["x", "y", "z"]).name == "beta"


def test_for_group_ties_go_to_name_order(bound: PlaybookSet) -> None:
    assert bound.for_group("wr1", ["x"]).name == "alpha"
    assert bound.for_group("wr1", ["x", "y"]).name == "alpha"


def test_for_group_falls_back_to_default(bound: PlaybookSet) -> None:
    assert bound.for_group("wr1", []).name == "default"
    assert bound.for_group("wr1", ["其他"]).name == "default"


def test_bindings(bound: PlaybookSet) -> None:
    groups = [("wr1", ["x"]), ("wrVIP", []), ("wr2", ["z"]), ("wr3", []), ("wr4", ["x"])]
    assert bound.bindings(groups) == {
        "alpha": ["wr1", "wr4"],
        "beta": ["wr2"],
        "default": ["wr3"],
        "gamma": ["wrVIP"],
    }


def test_a_set_without_default_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="default"):
        PlaybookSet({})


# --- CLI functions ----------------------------------------------------------------------


def test_check_command_ok() -> None:
    code, output = check_command(SHIPPED)
    assert code == 0
    assert output == "6 playbooks OK: camp, default, delivery, fans, lead, new_user"


def test_check_command_reports_one_line_per_issue(pb_dir: Path) -> None:
    write(
        pb_dir,
        "a.yaml",
        'welcome:\n  text: hi\n  max_names: 0\nquiet_hours: {start: "1", end: x}\n',
    )
    code, output = check_command(pb_dir)
    assert code == 1
    lines = output.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("a.yaml:3:welcome.max_names: ")
    assert all(line.startswith("a.yaml:4:quiet_hours.") for line in lines[1:])


def test_check_command_on_a_missing_directory(tmp_path: Path) -> None:
    code, output = check_command(tmp_path / "missing")
    assert code == 1 and "(directory)" in output


def test_schema_command_is_json_schema_of_the_file_format() -> None:
    schema = json.loads(schema_command())
    properties = schema["properties"]
    for key in ("name", "extends", "applies_to", "quiet_hours", "welcome", "touch_sequence"):
        assert key in properties
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["TouchStep"]["properties"]["at"]["type"] == "string"
