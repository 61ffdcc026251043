"""The playbook file format, as pydantic models.

One model describes both the YAML file and the resolved playbook: a field is
optional in the file because it has a default, and after ``extends`` is merged
the same model validates the result.

Adding a section (``rules``, ``keywords``, ``points``, ``daily_report``):

1. Write ``class RulesSection(StrictModel)`` (here or in its own module),
   with defaults for every field that has a sensible one.
2. Add ``rules: RulesSection | None = None`` to :class:`Playbook`.

Nothing else changes: the loader merges ``extends`` key by key without knowing
the sections, maps errors to YAML lines by their path, and the JSON Schema and
``templates check`` come from these models. Text fields that are Jinja
templates call :func:`_template` with a new variable set from ``render.py``.

Validators that find a problem deeper than the field they check (a duplicate
step key, a step inside quiet hours) raise :class:`PydanticCustomError` with a
``loc_suffix`` in its context; the loader appends it to the error's location
so the message points at the exact YAML line.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.config.playbooks.demands_section import DemandsSection
from bot.config.playbooks.fields import (
    DailySpan,
    LocalTime,
    StrictModel,
    hhmm,
    stripped_non_blank,
)
from bot.config.playbooks.health_section import HealthSection
from bot.config.playbooks.keywords_section import KeywordsSection
from bot.config.playbooks.points_section import PointsSection
from bot.config.playbooks.render import (
    PRIVATE_WELCOME_SAMPLE,
    PRIVATE_WELCOME_VARS,
    TOUCH_SAMPLE,
    TOUCH_VARS,
    WELCOME_SAMPLE,
    WELCOME_VARS,
    TemplateProblem,
    lint_condition,
    lint_template,
)
from bot.config.playbooks.rules_section import RulesSection
from bot.config.playbooks.weekly_digest_section import WeeklyDigestSection

__all__ = [
    "AppliesTo",
    "CustomerGroupTemplate",
    "LocalTime",
    "Playbook",
    "PrivateWelcome",
    "QuietHours",
    "RulesSection",
    "StrictModel",
    "TouchSequence",
    "TouchStep",
    "WelcomeSection",
]


def _template(
    text: str, allowed: frozenset[str], sample: Mapping[str, Any], *, expression: bool = False
) -> str:
    lint = lint_condition if expression else lint_template
    problems = lint(text, allowed, sample)
    if problems:
        raise _template_error(problems)
    return text


def _template_error(problems: list[TemplateProblem]) -> PydanticCustomError:
    return PydanticCustomError(
        "template",
        "{problems}",
        {
            "problems": "; ".join(p.message for p in problems),
            # The loader turns this into a YAML line inside a `|` block.
            "template_lineno": problems[0].lineno,
        },
    )


class AppliesTo(StrictModel):
    tags: tuple[str, ...] = Field(default=(), description="群标签，例如 [新用户群]")
    chat_ids: tuple[str, ...] = Field(default=(), description="群 chat_id，优先于标签")

    @field_validator("tags", "chat_ids")
    @classmethod
    def _no_blanks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return stripped_non_blank(values)


class QuietHours(DailySpan):
    """A daily quiet period ``[start, end)`` in local time; it may span midnight."""

    span_noun: ClassVar[str] = "a quiet period"

    def contains(self, t: time) -> bool:
        return self.covers(t)

    def next_end(self, local_dt: datetime) -> datetime:
        """The next time the wall clock shows ``end``, strictly after ``local_dt``.

        For ``local_dt`` inside quiet hours this is the end of that quiet
        period. The result is in ``local_dt``'s time zone, which must be set.
        """
        if local_dt.tzinfo is None or local_dt.utcoffset() is None:
            raise ValueError("next_end needs an aware datetime in the bot's time zone")
        candidate = datetime.combine(local_dt.date(), self.end, tzinfo=local_dt.tzinfo)
        if candidate <= local_dt:
            candidate = datetime.combine(
                local_dt.date() + timedelta(days=1), self.end, tzinfo=local_dt.tzinfo
            )
        return candidate

    def resume_at(self, local_dt: datetime) -> datetime:
        """``local_dt`` itself when not quiet, else the end of the quiet period."""
        return self.next_end(local_dt) if self.contains(local_dt.time()) else local_dt

    def __str__(self) -> str:
        return f"{hhmm(self.start)}–{hhmm(self.end)}"


class PrivateWelcome(StrictModel):
    enabled: StrictBool = Field(default=False, description="入群后私信一次（通常附群规）")
    text: str = Field(default="", description="私信内容（Jinja2），变量见 docs/playbooks.md")

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str) -> str:
        return _template(text, PRIVATE_WELCOME_VARS, PRIVATE_WELCOME_SAMPLE)

    @model_validator(mode="after")
    def _text_when_enabled(self) -> PrivateWelcome:
        if self.enabled and not self.text.strip():
            raise PydanticCustomError(
                "missing_text", "text is required when enabled", {"loc_suffix": ("text",)}
            )
        return self


CUSTOMER_TEMPLATE_MAX_BYTES = 3000


class CustomerGroupTemplate(StrictModel):
    """WeCom's own 入群欢迎语素材 for customer groups: plain text, not Jinja."""

    text: str = Field(
        min_length=1,
        description="纯文本，≤3000 字节；%NICKNAME% 由企业微信替换为新成员昵称",
    )

    @field_validator("text")
    @classmethod
    def _plain_text(cls, text: str) -> str:
        if "{{" in text or "{%" in text:
            raise PydanticCustomError(
                "not_plain_text",
                "WeCom sends this text itself, so template tags cannot work here; "
                "write plain text and use %NICKNAME% for the newcomer's name",
            )
        size = len(text.encode("utf-8"))
        if size > CUSTOMER_TEMPLATE_MAX_BYTES:
            raise PydanticCustomError(
                "too_long",
                "{size} bytes; WeCom accepts at most {limit} bytes (a Chinese character is 3)",
                {"size": size, "limit": CUSTOMER_TEMPLATE_MAX_BYTES},
            )
        return text


class WelcomeSection(StrictModel):
    enabled: StrictBool = True
    batch_window_seconds: StrictInt = Field(
        default=3, ge=1, le=3600, description="首位入群者之后这么多秒内入群的人合并欢迎"
    )
    min_interval_seconds: StrictInt = Field(
        default=60,
        ge=0,
        le=86400,
        description="两次群欢迎之间至少间隔（秒）；期间入群者稍后合并欢迎",
    )
    max_names: StrictInt = Field(
        default=8, ge=1, le=50, description="一条欢迎最多列出的名字，其余显示为「等 N 位」"
    )
    rejoin_suppress_days: StrictInt = Field(
        default=7, ge=0, le=365, description="N 天内退群又回来的成员不再欢迎"
    )
    during_quiet_hours: Literal["send", "defer"] = Field(
        default="send", description="send：照常发送；defer：推迟到免打扰结束（不会丢弃）"
    )
    text: str = Field(default="", description="群欢迎语（Jinja2），变量见 docs/playbooks.md")
    private: PrivateWelcome | None = None
    customer_group_template: CustomerGroupTemplate | None = None

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str) -> str:
        return _template(text, WELCOME_VARS, WELCOME_SAMPLE)

    @model_validator(mode="after")
    def _text_when_enabled(self) -> WelcomeSection:
        if self.enabled and not self.text.strip():
            raise PydanticCustomError(
                "missing_text", "text is required when enabled", {"loc_suffix": ("text",)}
            )
        return self


class TouchStep(StrictModel):
    key: str = Field(
        pattern=r"^[a-z0-9_-]{1,40}$",
        description="步骤标识，剧本内唯一；已发送记录按它去重，上线后不要改",
    )
    day: StrictInt = Field(ge=0, le=30, description="入群当天为第 0 天（按 BOT_TIMEZONE）")
    at: LocalTime = Field(description="当天发送时间 HH:MM")
    channel: Literal["private", "group"] = Field(description="private：私信；group：发到群里")
    text: str = Field(min_length=1, description="内容（Jinja2），变量见 docs/playbooks.md")
    when: str | None = Field(
        default=None, description="可选条件（Jinja2 表达式），为假时跳过，如 not member.has_spoken"
    )

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str) -> str:
        return _template(text, TOUCH_VARS, TOUCH_SAMPLE)

    @field_validator("when")
    @classmethod
    def _check_when(cls, expr: str | None) -> str | None:
        if expr is None:
            return None
        if not expr.strip():
            raise PydanticCustomError("blank", "must not be empty; omit `when` to always send")
        return _template(expr, TOUCH_VARS, TOUCH_SAMPLE, expression=True)


class TouchSequence(StrictModel):
    enabled: StrictBool = True
    steps: tuple[TouchStep, ...] = ()
    max_steps_per_day: StrictInt = Field(
        default=1,
        ge=1,
        le=10,
        description="每位成员每天最多收到几步（按 BOT_TIMEZONE）；同一天到期的后续步骤顺延到次日",
    )
    late_grace_hours: StrictInt = Field(
        default=12,
        ge=0,
        le=720,
        description=(
            "步骤晚于计划这么多小时（如服务停机）就不再发送，记为 overdue，避免一次补发多条"
        ),
    )

    @field_validator("steps")
    @classmethod
    def _unique_keys(cls, steps: tuple[TouchStep, ...]) -> tuple[TouchStep, ...]:
        first_seen: dict[str, int] = {}
        for index, step in enumerate(steps):
            if step.key in first_seen:
                raise PydanticCustomError(
                    "duplicate_key",
                    "duplicate step key '{key}' (also step {first}); keys must be unique",
                    {"key": step.key, "first": first_seen[step.key], "loc_suffix": (index, "key")},
                )
            first_seen[step.key] = index
        return steps


class CopilotSection(StrictModel):
    """Where the bot cannot act itself (customer groups, reports), it hands people a
    task with a ready-to-paste text: one digest per person per few minutes."""

    operators: tuple[str, ...] = Field(
        default=(),
        description="运营同事的 userid：群主之外，这些人也收到待办（客户群提醒、违规报告、申诉）",
    )
    gather_seconds: StrictInt = Field(
        default=10, ge=0, le=600, description="第一件待办出现后等多少秒再发，把同时发生的事合成一条"
    )
    min_interval_seconds: StrictInt = Field(
        default=300, ge=0, le=86400, description="发给同一个人的两条待办汇总之间至少隔多少秒"
    )

    @field_validator("operators")
    @classmethod
    def _no_blank_operators(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return stripped_non_blank(values)


class Playbook(StrictModel):
    """A playbook file; returned by the loader with ``extends`` already merged."""

    model_config = ConfigDict(
        title="wecom-bot SOP playbook",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "wecom-bot 社群 SOP 剧本（sop_templates/*.yaml），见 docs/playbooks.md",
        },
    )

    name: str = Field(default="", description="默认取文件名（不含 .yaml）；填写时必须与文件名一致")
    description: str = ""
    extends: str | None = Field(
        default=None, description="继承的剧本名；各段按键深度合并，列表整体替换；applies_to 不继承"
    )
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    neutral_name: str = Field(
        default="新朋友",
        min_length=1,
        max_length=20,
        description="不知道成员昵称时消息里用的称呼（绝不显示 wm… 这样的内部 id）",
    )
    quiet_hours: QuietHours | None = Field(
        default=None, description="免打扰时段（BOT_TIMEZONE），可跨午夜"
    )
    welcome: WelcomeSection | None = None
    touch_sequence: TouchSequence | None = None
    rules: RulesSection | None = None
    keywords: KeywordsSection | None = Field(
        default=None, description="群里有人问资料类问题时，从内容库里找答案（不写就不回答）"
    )
    points: PointsSection | None = None
    health: HealthSection = Field(
        default_factory=HealthSection, description="社群健康度的目标线（周报和 /health 用）"
    )
    copilot: CopilotSection = Field(
        default_factory=CopilotSection, description="运营助手：机器人做不了的事变成待办发给人"
    )
    weekly_digest: WeeklyDigestSection | None = Field(
        default=None, description="每周群刊：上一周最值得回看的讨论和新资料（不写就不发）"
    )
    demands: DemandsSection = Field(
        default_factory=DemandsSection,
        description="供需信息（招聘、求职、供应商、活动）：白天收录，早报里每天统一发布一次",
    )

    @model_validator(mode="after")
    def _collect_kinds_are_known(self) -> Playbook:
        # A collect rule's kind must be one the 早报 groups by: checked here, where both
        # sections are known (after `extends` is merged).
        if self.rules is None:
            return self
        for index, rule in enumerate(self.rules.items):
            if rule.collect_kind is not None and rule.collect_kind not in self.demands.kinds:
                raise PydanticCustomError(
                    "unknown_kind",
                    "'{kind}' is not one of demands.kinds ({kinds})",
                    {
                        "kind": rule.collect_kind,
                        "kinds": "、".join(self.demands.kinds),
                        "loc_suffix": ("rules", "items", index, "collect_kind"),
                    },
                )
        return self

    @model_validator(mode="after")
    def _steps_outside_quiet_hours(self) -> Playbook:
        # A touch is never urgent: one planned inside quiet hours is a mistake,
        # and silently pushing it to the morning would surprise the operator.
        if self.quiet_hours is None or self.touch_sequence is None:
            return self
        for index, step in enumerate(self.touch_sequence.steps):
            if self.quiet_hours.contains(step.at):
                raise PydanticCustomError(
                    "step_in_quiet_hours",
                    "step '{key}' at {at} falls inside quiet_hours {quiet}; pick a time outside it",
                    {
                        "key": step.key,
                        "at": hhmm(step.at),
                        "quiet": str(self.quiet_hours),
                        "loc_suffix": ("touch_sequence", "steps", index, "at"),
                    },
                )
        return self
