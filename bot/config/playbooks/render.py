"""Jinja2 rendering for playbook texts, and the variables each text may use.

Operators write the templates, so they run in a sandbox (no ``__class__``
tricks) that also bounds output, value sizes and work (limits.py: at most
4000 characters per message) with ``StrictUndefined`` (a misspelt variable is an
error at load, never a message saying "欢迎  加入"). Every template is checked
when the playbook loads: syntax, variables outside the documented set, and a
dry render against sample values, which catches misspelt attributes such as
``group.nmae`` that a static check cannot see.

Handlers build the variables with :func:`welcome_variables`,
:func:`private_welcome_variables`, :func:`touch_variables` and
:func:`daily_report_variables` so that every feature fills them the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, NamedTuple, TypedDict

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import TemplateError
from jinja2.meta import find_undeclared_variables
from jinja2.parser import Parser
from pydantic_core import PydanticCustomError

from bot.config.playbooks.limits import (
    MAX_OUTPUT_CHARS,
    BoundedSandbox,
    TemplateLimitError,
    render_budget,
)

__all__ = [
    "DAILY_REPORT_EMPTY_SAMPLE",
    "DAILY_REPORT_SAMPLE",
    "DAILY_REPORT_VARS",
    "MAX_OUTPUT_CHARS",
    "PRIVATE_WELCOME_SAMPLE",
    "PRIVATE_WELCOME_VARS",
    "TOUCH_SAMPLE",
    "TOUCH_VARS",
    "WELCOME_SAMPLE",
    "WELCOME_VARS",
    "GroupVars",
    "TemplateLimitError",
    "TemplateProblem",
    "TouchMemberVars",
    "WelcomeMemberVars",
    "check_condition",
    "check_template",
    "daily_report_variables",
    "date_cn",
    "eval_condition",
    "format_names",
    "lint_condition",
    "lint_template",
    "private_welcome_variables",
    "render_text",
    "template_error",
    "touch_variables",
    "weekday_cn",
    "welcome_variables",
]


def _finalize(value: Any) -> Any:
    # An unknown invitor is None; "由 None 邀请" must never reach a group.
    return "" if value is None else value


env = BoundedSandbox(
    autoescape=False,
    undefined=StrictUndefined,
    trim_blocks=True,
    # YAML block scalars keep the indentation of nested {% if %} lines;
    # without this every such line would leave stray spaces in the message.
    lstrip_blocks=True,
    finalize=_finalize,
)


class GroupVars(TypedDict):
    chat_id: str
    name: str
    tags: list[str]


class WelcomeMemberVars(TypedDict):
    id: str
    name: str
    invitor_name: str | None


class TouchMemberVars(TypedDict):
    id: str
    name: str
    joined_at: str  # "YYYY-MM-DD HH:MM" in BOT_TIMEZONE
    days_since_join: int
    message_count: int
    has_spoken: bool


WELCOME_VARS: frozenset[str] = frozenset(
    {"names", "members", "count", "others", "group", "today", "weekday"}
)
PRIVATE_WELCOME_VARS: frozenset[str] = frozenset({"member", "group", "today", "weekday"})
TOUCH_VARS: frozenset[str] = frozenset({"member", "group", "day", "today", "weekday"})
DAILY_REPORT_VARS: frozenset[str] = frozenset(
    {
        "date",
        "greeting",
        "knowledge",
        "demands",
        "demand_count",
        "highlights",
        "new_resources",
        "leaderboard",
        "leaderboard_month",
        "sponsored",
        "group_name",
        "group",
        "today",
        "weekday",
    }
)

_WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def weekday_cn(day: date) -> str:
    return _WEEKDAYS[day.weekday()]


def date_cn(day: date) -> str:
    """「12月7日 周一」: how a Chinese reader names a day in a 早报."""
    return f"{day.month}月{day.day}日 {weekday_cn(day)}"


def format_names(names: Sequence[str], max_names: int) -> str:
    """``张三、李四``; past ``max_names``: ``张三、李四 等 5 位`` (N counts everyone,
    the way 「张三、李四等5位新朋友」 reads in Chinese)."""
    shown = "、".join(names[:max_names])
    return f"{shown} 等 {len(names)} 位" if len(names) > max_names else shown


def _day_vars(today: date) -> dict[str, Any]:
    return {"today": today.isoformat(), "weekday": weekday_cn(today)}


def welcome_variables(
    members: Sequence[WelcomeMemberVars], group: GroupVars, *, max_names: int, today: date
) -> dict[str, Any]:
    """Variables for ``welcome.text``: one batch of joiners, in join order."""
    return {
        "names": format_names([m["name"] for m in members], max_names),
        "members": [dict(m) for m in members],
        "count": len(members),
        "others": max(len(members) - max_names, 0),
        "group": dict(group),
        **_day_vars(today),
    }


def private_welcome_variables(
    member: WelcomeMemberVars, group: GroupVars, *, today: date
) -> dict[str, Any]:
    """Variables for ``welcome.private.text``."""
    return {"member": dict(member), "group": dict(group), **_day_vars(today)}


def touch_variables(
    member: TouchMemberVars, group: GroupVars, *, day: int, today: date
) -> dict[str, Any]:
    """Variables for ``touch_sequence.steps[].text`` and ``when``."""
    return {"member": dict(member), "group": dict(group), "day": day, **_day_vars(today)}


class KnowledgeVars(TypedDict):
    title: str
    summary: str
    url: str | None


class HighlightVars(TypedDict):
    text: str  # the thread's opening, as members read it (about 60 characters)
    replies: int  # member-to-member replies in it
    starter: str  # who opened it: the nickname (never an internal id)


class ResourceVars(TypedDict):
    title: str
    url: str | None


class LeaderVars(TypedDict):
    rank: int
    name: str
    points: int


def daily_report_variables(
    *,
    day: date,
    greeting: str,
    group: GroupVars,
    knowledge: KnowledgeVars | None,
    demands: str,
    demand_count: int,
    highlights: Sequence[HighlightVars],
    new_resources: Sequence[ResourceVars],
    leaderboard: Sequence[LeaderVars],
    leaderboard_month: str,
    sponsored: str | None,
) -> dict[str, Any]:
    """Variables for ``daily_report.text``: one group's 早报 for one local day. Empty
    blocks are empty (None, "", []), so ``{% if %}`` leaves them out."""
    return {
        "date": date_cn(day),
        "greeting": greeting,
        "knowledge": dict(knowledge) if knowledge is not None else None,
        "demands": demands,
        "demand_count": demand_count,
        "highlights": [dict(h) for h in highlights],
        "new_resources": [dict(r) for r in new_resources],
        "leaderboard": [dict(m) for m in leaderboard],
        "leaderboard_month": leaderboard_month,
        "sponsored": sponsored,
        "group_name": group["name"],
        "group": dict(group),
        **_day_vars(day),
    }


# Dry-render samples. They use the same builders as production so the check
# sees exactly the shapes real templates will get.
_SAMPLE_GROUP: GroupVars = {"chat_id": "wrSAMPLE", "name": "示例群", "tags": ["示例"]}
_SAMPLE_JOINER: WelcomeMemberVars = {"id": "wmSAMPLE1", "name": "张三", "invitor_name": "李四"}
WELCOME_SAMPLE: Mapping[str, Any] = welcome_variables(
    [_SAMPLE_JOINER, {"id": "wmSAMPLE2", "name": "王五", "invitor_name": None}],
    _SAMPLE_GROUP,
    max_names=1,
    today=date(2025, 1, 6),
)
PRIVATE_WELCOME_SAMPLE: Mapping[str, Any] = private_welcome_variables(
    _SAMPLE_JOINER, _SAMPLE_GROUP, today=date(2025, 1, 6)
)
TOUCH_SAMPLE: Mapping[str, Any] = touch_variables(
    {
        "id": "wmSAMPLE1",
        "name": "张三",
        "joined_at": "2025-01-06 09:30",
        "days_since_join": 1,
        "message_count": 0,
        "has_spoken": False,
    },
    _SAMPLE_GROUP,
    day=1,
    today=date(2025, 1, 7),
)


# Every block filled, so a misspelt attribute anywhere in the template is caught.
DAILY_REPORT_SAMPLE: Mapping[str, Any] = daily_report_variables(
    day=date(2025, 1, 6),
    greeting="早上好！新的一周开始了。",
    group=_SAMPLE_GROUP,
    knowledge={
        "title": "私域运营入门",
        "summary": "三步搭好社群。",
        "url": "https://example.com/a",
    },
    demands="【今日供需】\n招聘 · 张三：运营专员（上海）\n还有 1 条在排队，明天的早报接着发。",
    demand_count=1,
    highlights=[{"text": "社群冷启动有什么好办法？", "replies": 12, "starter": "王五"}],
    new_resources=[{"title": "活动复盘模板", "url": "https://example.com/b"}],
    leaderboard=[
        {"rank": 1, "name": "张三", "points": 30},
        {"rank": 2, "name": "李四", "points": 20},
    ],
    leaderboard_month="1月",
    sponsored="本周直播：社群裂变实战，点击报名。",
)
# Every block empty: a template must leave out what is missing (`{% if knowledge %}`),
# not fail on the day the library has no knowledge point.
DAILY_REPORT_EMPTY_SAMPLE: Mapping[str, Any] = daily_report_variables(
    day=date(2025, 1, 7),
    greeting="早上好！",
    group=_SAMPLE_GROUP,
    knowledge=None,
    demands="",
    demand_count=0,
    highlights=[],
    new_resources=[],
    leaderboard=[],
    leaderboard_month="1月",
    sponsored=None,
)


@functools.lru_cache(maxsize=512)
def _compile(template: str) -> Template:
    return env.from_string(template)


@functools.lru_cache(maxsize=512)
def _compile_expression(expr: str) -> Any:
    # undefined_to_none would turn `member.has_spokn` into a quiet False; keep
    # the StrictUndefined so bool() raises like any other misspelling.
    return env.compile_expression(expr, undefined_to_none=False)


def render_text(template: str, variables: Mapping[str, Any]) -> str:
    """Render ``template``; trailing whitespace (per line and at the end) is dropped.

    Raises :class:`TemplateLimitError` past ``MAX_OUTPUT_CHARS`` characters or the
    sandbox's other limits; the output is streamed, so it stops at the limit.
    """
    parts: list[str] = []
    length = 0
    with render_budget():
        for chunk in _compile(template).generate(variables):
            length += len(chunk)
            if length > MAX_OUTPUT_CHARS * 2:  # far past it even after trimming spaces
                raise _too_long()
            parts.append(chunk)
    text = "\n".join(line.rstrip() for line in "".join(parts).splitlines()).rstrip()
    if len(text) > MAX_OUTPUT_CHARS:
        raise _too_long()
    return text


def _too_long() -> TemplateLimitError:
    return TemplateLimitError(f"the text is longer than {MAX_OUTPUT_CHARS} characters")


def eval_condition(expr: str, variables: Mapping[str, Any]) -> bool:
    """Evaluate a ``when`` expression such as ``not member.has_spoken``."""
    with render_budget():
        return bool(_compile_expression(expr)(**variables))


class TemplateProblem(NamedTuple):
    message: str
    lineno: int | None = None  # line inside the template, when known


def _unknown(names: set[str], allowed: frozenset[str]) -> list[TemplateProblem]:
    known = "、".join(sorted(allowed))
    return [
        TemplateProblem(f"unknown variable '{name}' (available: {known})")
        for name in sorted(names - allowed)
    ]


def _syntax(exc: TemplateSyntaxError) -> TemplateProblem:
    return TemplateProblem(f"template syntax error: {exc.message}", exc.lineno)


def template_problems(template: str, allowed: frozenset[str]) -> list[TemplateProblem]:
    try:
        ast = env.parse(template)
        # compile() also rejects unknown filters and tests, which parse() lets through.
        env.compile(ast)
    except TemplateSyntaxError as exc:
        return [_syntax(exc)]
    return _unknown(find_undeclared_variables(ast), allowed)


def condition_problems(expr: str, allowed: frozenset[str]) -> list[TemplateProblem]:
    try:
        parser = Parser(env, expr, state="variable")
        ast = parser.parse_expression()
        if not parser.stream.eos:
            return [TemplateProblem("expression syntax error: unexpected text after the end")]
        env.compile_expression(expr)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(f"expression syntax error: {exc.message}")]
    as_template = nodes.Template([nodes.Output([ast])], lineno=1)
    as_template.set_environment(env)
    return _unknown(find_undeclared_variables(as_template), allowed)


def check_template(template: str, allowed: frozenset[str]) -> list[str]:
    """Syntax errors and variables outside ``allowed``; empty when fine."""
    return [p.message for p in template_problems(template, allowed)]


def check_condition(expr: str, allowed: frozenset[str]) -> list[str]:
    """Like :func:`check_template`, for a ``when`` expression."""
    return [p.message for p in condition_problems(expr, allowed)]


def _dry_run_failure(exc: Exception) -> TemplateProblem:
    kind = "" if isinstance(exc, TemplateError) else f"{type(exc).__name__}: "
    return TemplateProblem(f"fails on sample data: {kind}{exc}")


def lint_template(
    template: str, allowed: frozenset[str], sample: Mapping[str, Any]
) -> list[TemplateProblem]:
    """:func:`check_template`, then a dry render with ``sample`` values."""
    problems = template_problems(template, allowed)
    if problems:
        return problems
    try:
        render_text(template, sample)
    except Exception as exc:  # any failure here would also fail in production
        return [_dry_run_failure(exc)]
    return []


def template_error(problems: list[TemplateProblem]) -> PydanticCustomError:
    """A playbook validator's error for a template's problems."""
    return PydanticCustomError(
        "template",
        "{problems}",
        {
            "problems": "; ".join(p.message for p in problems),
            # The loader turns this into a YAML line inside a `|` block.
            "template_lineno": problems[0].lineno,
        },
    )


def lint_condition(
    expr: str, allowed: frozenset[str], sample: Mapping[str, Any]
) -> list[TemplateProblem]:
    problems = condition_problems(expr, allowed)
    if problems:
        return problems
    try:
        eval_condition(expr, sample)
    except Exception as exc:
        return [_dry_run_failure(exc)]
    return []
