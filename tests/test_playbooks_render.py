"""Template rendering: strictness, the sandbox, conditions and the documented variables."""

from __future__ import annotations

from datetime import date

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from bot.config.playbooks import (
    PRIVATE_WELCOME_VARS,
    TOUCH_VARS,
    WELCOME_VARS,
    GroupVars,
    TouchMemberVars,
    WelcomeMemberVars,
    check_template,
    eval_condition,
    format_names,
    private_welcome_variables,
    render_text,
    touch_variables,
    welcome_variables,
)
from bot.config.playbooks.render import (
    PRIVATE_WELCOME_SAMPLE,
    TOUCH_SAMPLE,
    WELCOME_SAMPLE,
    check_condition,
)

GROUP: GroupVars = {"chat_id": "wr1", "name": "产品交流群", "tags": ["新用户群"]}


def test_render_text_fills_variables_and_strips_trailing_whitespace() -> None:
    template = "欢迎 {{ names }}   \n{% if count > 1 %}\n共 {{ count }} 位\n{% endif %}\n\n"
    assert render_text(template, {"names": "张三、李四", "count": 2}) == "欢迎 张三、李四\n共 2 位"


def test_render_text_unknown_variable_raises() -> None:
    with pytest.raises(UndefinedError):
        render_text("欢迎 {{ nmes }}", {"names": "张三"})
    with pytest.raises(UndefinedError):
        render_text("{{ group.nmae }}", {"group": GROUP})


def test_none_renders_as_empty() -> None:
    assert render_text("由{{ who }}邀请", {"who": None}) == "由邀请"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ group.__init__.__globals__ }}",
        "{{ names.__len__() }}",
    ],
)
def test_sandbox_refuses_unsafe_attribute_access(template: str) -> None:
    with pytest.raises(SecurityError):
        render_text(template, {"group": GROUP, "names": "x"})


def test_no_autoescape() -> None:
    assert render_text("{{ names }}", {"names": "<A&B>"}) == "<A&B>"


def test_eval_condition() -> None:
    member = {"has_spoken": False, "message_count": 0}
    assert eval_condition("not member.has_spoken", {"member": member}) is True
    assert eval_condition("member.message_count >= 3", {"member": member}) is False
    with pytest.raises(UndefinedError):
        eval_condition("member.spoke", {"member": member})


def test_check_template() -> None:
    assert check_template("欢迎 {{ names }} 加入 {{ group.name }}", WELCOME_VARS) == []
    assert check_template("{% for m in members %}{{ m.name }}{% endfor %}", WELCOME_VARS) == []
    [unknown] = check_template("欢迎 {{ member.name }}", WELCOME_VARS)
    assert "'member'" in unknown
    [syntax] = check_template("欢迎 {{ names }", WELCOME_VARS)
    assert "syntax" in syntax
    [no_filter] = check_template("{{ names | shout }}", WELCOME_VARS)
    assert "shout" in no_filter


def test_check_condition() -> None:
    assert check_condition("not member.has_spoken and day > 1", TOUCH_VARS) == []
    assert "syntax" in check_condition("member.has_spoken and", TOUCH_VARS)[0]
    assert "'names'" in check_condition("names", TOUCH_VARS)[0]


def test_format_names() -> None:
    assert format_names(["张三"], 8) == "张三"
    assert format_names(["张三", "李四", "王五"], 3) == "张三、李四、王五"
    assert format_names(["张三", "李四", "王五", "赵六", "钱七"], 2) == "张三、李四 等 5 位"


def test_welcome_variables() -> None:
    members: list[WelcomeMemberVars] = [
        {"id": f"wm{i}", "name": f"成员{i}", "invitor_name": None if i else "群主"}
        for i in range(10)
    ]
    variables = welcome_variables(members, GROUP, max_names=8, today=date(2025, 1, 5))
    assert set(variables) == WELCOME_VARS
    assert variables["names"].endswith("成员7 等 10 位")
    assert (variables["count"], variables["others"]) == (10, 2)
    assert (variables["today"], variables["weekday"]) == ("2025-01-05", "周日")


def test_private_and_touch_variables() -> None:
    member: WelcomeMemberVars = {"id": "wm1", "name": "张三", "invitor_name": None}
    assert set(private_welcome_variables(member, GROUP, today=date(2025, 1, 6))) == (
        PRIVATE_WELCOME_VARS
    )
    touch_member: TouchMemberVars = {
        "id": "wm1",
        "name": "张三",
        "joined_at": "2025-01-06 09:30",
        "days_since_join": 3,
        "message_count": 0,
        "has_spoken": False,
    }
    variables = touch_variables(touch_member, GROUP, day=3, today=date(2025, 1, 9))
    assert set(variables) == TOUCH_VARS
    assert variables["weekday"] == "周四"


def test_samples_cover_exactly_the_documented_variables() -> None:
    assert set(WELCOME_SAMPLE) == WELCOME_VARS
    assert set(PRIVATE_WELCOME_SAMPLE) == PRIVATE_WELCOME_VARS
    assert set(TOUCH_SAMPLE) == TOUCH_VARS
