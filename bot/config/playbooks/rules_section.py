"""The `rules:` playbook section (SPEC §7): humane group rules.

Every field has a default that errs on the side of members: warnings before any
action, warnings that expire, owners, admins and the corp's own staff exempt, a
way to appeal. Operators switch a rule on in dry-run first and read its hits in
the review queue before it speaks to anyone.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bot.config.playbooks.fields import DailySpan, StrictModel, stripped_non_blank

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Step = Literal["remind", "warn", "report", "remove"]
# ladder: a hit climbs the member's warning ladder (today's behaviour); collect: the
# message is a demand post, kept for the 早报 (handlers/features/demands), never a
# violation.
RuleAction = Literal["ladder", "collect"]


# Members should never read 群规「ads」: the names operators usually give, in Chinese.
USUAL_TITLES = {
    "ads": "不发广告",
    "ad": "不发广告",
    "spam": "不发广告",
    "links": "不乱发链接",
    "link": "不乱发链接",
    "flood": "不刷屏",
    "repeat": "不重复刷屏",
    "contact": "不留联系方式拉私聊",
    "weapp": "不转发小程序",
    "card": "不推名片",
}


class AllowWindow(DailySpan):
    """A weekly window in which the rule does not apply (快闪集市: ads welcome)."""

    days: tuple[Weekday, ...] = Field(default=WEEKDAYS, description="星期几，默认每天")

    span_noun: ClassVar[str] = "a window"

    def contains(self, local: datetime) -> bool:
        """`local` (in BOT_TIMEZONE) falls inside the window; a window past midnight
        belongs to the day it starts on."""
        now = local.time().replace(tzinfo=None)
        if not self.covers(now):
            return False
        # Past midnight, the window that covers `now` opened the day before.
        opened = local.weekday() if now >= self.start else (local.weekday() - 1) % 7
        return WEEKDAYS[opened] in self.days


class Flood(StrictModel):
    messages: StrictInt = Field(ge=2, le=200, description="这么多条消息……")
    seconds: StrictInt = Field(ge=1, le=3600, description="……在这么多秒内，算刷屏")


class Repeat(StrictModel):
    times: StrictInt = Field(default=3, ge=2, le=50, description="同一段文字发了这么多次……")
    seconds: StrictInt = Field(default=600, ge=1, le=86400, description="……在这么多秒内")


class RuleMatch(StrictModel):
    keywords: tuple[str, ...] = Field(
        default=(), description="关键词；全角、繁体、中间加符号都能认出"
    )
    regex: tuple[str, ...] = Field(default=(), description="正则表达式（Python 语法）")
    links: StrictBool = Field(default=False, description="消息里有链接（含不带 http 的域名）")
    allow_domains: tuple[str, ...] = Field(
        default=(), description="这些域名及其子域名的链接不算，如 [example.com]"
    )
    weapp: StrictBool = Field(default=False, description="小程序卡片")
    card: StrictBool = Field(default=False, description="名片")
    contact: StrictBool = Field(
        default=False, description="留联系方式：加V、微信号、二维码、QQ、手机号等写法"
    )
    flood: Flood | None = Field(default=None, description="刷屏")
    repeat: Repeat | None = Field(default=None, description="重复发同样的内容")

    @field_validator("keywords", "allow_domains")
    @classmethod
    def _no_blanks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return stripped_non_blank(values)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise PydanticCustomError(
                    "regex",
                    "not a valid regular expression: {problem}",
                    {"problem": str(exc), "loc_suffix": (index,)},
                ) from None
        return patterns

    @model_validator(mode="after")
    def _matches_something(self) -> RuleMatch:
        if not (
            self.keywords
            or self.regex
            or self.links
            or self.weapp
            or self.card
            or self.contact
            or self.flood
            or self.repeat
        ):
            raise PydanticCustomError(
                "empty_match",
                "a rule must match something: keywords, regex, links, weapp, card, contact, "
                "flood or repeat",
            )
        return self


class Rule(StrictModel):
    name: str = Field(pattern=r"^[\w-]{1,40}$", description="规则名，剧本内唯一；违规记录按它统计")
    family: str | None = Field(
        default=None,
        pattern=r"^[\w-]{1,40}$",
        description="同一族的规则共用一条警告阶梯（默认就是规则名）",
    )
    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=30,
        description="给成员看的规则名，如「不发广告」（ads、flood 等常见 name 自带中文名）",
    )
    explain: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="为什么有这条规则，一句话；提醒里会原样告诉成员",
    )
    match: RuleMatch
    allow_windows: tuple[AllowWindow, ...] = Field(
        default=(), description="这些时段里本规则不管（如周五 20:00–21:00 快闪集市）"
    )
    exempt_roles: tuple[str, ...] | None = Field(
        default=None, description="不受本规则约束的角色；不写则用 rules.exempt_roles"
    )
    exempt_members: tuple[str, ...] = Field(default=(), description="不受本规则约束的成员 id")
    new_members_days: StrictInt | None = Field(
        default=None,
        ge=1,
        le=365,
        description="只管入群 N 天内的新成员（如新人不能发链接，老成员可以）",
    )
    dry_run: StrictBool | None = Field(
        default=None, description="只记录不处理；不写则用 rules.dry_run"
    )
    action: RuleAction = Field(
        default="ladder",
        description="ladder：按警告阶梯处理；collect：当作供需信息（招聘、求职等）收录，"
        "在早报里统一发布，不算违规、不扣分",
    )
    collect_kind: str | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="action: collect 时必填：收录成哪一类，须是 demands.kinds 之一，如 招聘",
    )

    @field_validator("collect_kind")
    @classmethod
    def _stripped_kind(cls, kind: str | None) -> str | None:
        return kind.strip() if kind is not None else None

    @model_validator(mode="after")
    def _collect_needs_a_kind(self) -> Rule:
        if self.action == "collect":
            if not self.collect_kind:
                raise PydanticCustomError(
                    "collect_kind",
                    "a rule with action: collect needs collect_kind (one of demands.kinds, "
                    "e.g. 招聘)",
                    {"loc_suffix": ("collect_kind",)},
                )
            for window in ("flood", "repeat"):
                if getattr(self.match, window) is not None:
                    raise PydanticCustomError(
                        "collect_match",
                        "a collect rule finds demand posts by what they say (keywords, "
                        "regex …); {window} cannot collect a post",
                        {"window": window, "loc_suffix": ("match", window)},
                    )
        elif self.collect_kind is not None:
            raise PydanticCustomError(
                "collect_kind",
                "collect_kind only applies to a rule with action: collect",
                {"loc_suffix": ("collect_kind",)},
            )
        return self

    @property
    def collects(self) -> bool:
        return self.action == "collect"

    @property
    def ladder_family(self) -> str:
        return self.family or self.name

    @property
    def display_title(self) -> str:
        """What members read: the title, else a Chinese name for the usual rule names
        (the SPEC's `ads`, `flood`), else the name itself."""
        return self.title or USUAL_TITLES.get(self.name.casefold(), self.name)


class RaidGuard(StrictModel):
    joins: StrictInt = Field(ge=2, le=500, description="这么多人……")
    seconds: StrictInt = Field(ge=1, le=3600, description="……在这么多秒内入群，算突击入群")
    strict_minutes: StrictInt = Field(
        default=30, ge=1, le=1440, description="之后这么多分钟里，新成员发链接按违规处理"
    )


class RulesSection(StrictModel):
    enabled: StrictBool = True
    dry_run: StrictBool = Field(default=False, description="整段只记录不处理（新规则先这样试）")
    warning_ttl_days: StrictInt = Field(
        default=14, ge=1, le=365, description="警告多少天后作废，阶梯从头开始"
    )
    min_step_seconds: StrictInt = Field(
        default=60, ge=0, le=3600, description="同一成员两次升级之间至少间隔（秒）"
    )
    appeal_word: str = Field(
        default="申诉", min_length=1, max_length=10, description="成员回复这个词即可申诉"
    )
    appeal_window_hours: StrictInt = Field(
        default=72, ge=1, le=720, description="多少小时内可以申诉"
    )
    ladder: tuple[Step, ...] = Field(
        default=("remind", "warn", "report"),
        min_length=1,
        description="remind 私下提醒 → warn 群里提醒 → report 报告群主 → remove 移出"
        "（仅限应用建的群）",
    )
    exempt_roles: tuple[str, ...] = Field(
        default=("owner", "admin", "staff"), description="不受规则约束的角色"
    )
    items: tuple[Rule, ...] = Field(default=(), description="规则列表")
    raid_guard: RaidGuard | None = Field(default=None, description="突击入群保护")

    @field_validator("ladder")
    @classmethod
    def _ladder_order(cls, ladder: tuple[Step, ...]) -> tuple[Step, ...]:
        for index, step in enumerate(ladder):
            if step in ladder[:index]:
                raise PydanticCustomError(
                    "ladder",
                    "'{step}' appears twice; each step once, mildest first",
                    {"step": step, "loc_suffix": (index,)},
                )
        if "remove" in ladder and ladder[-1] != "remove":
            raise PydanticCustomError(
                "ladder",
                "remove must be the last step",
                {"loc_suffix": (ladder.index("remove"),)},
            )
        return ladder

    @field_validator("items")
    @classmethod
    def _unique_names(cls, items: tuple[Rule, ...]) -> tuple[Rule, ...]:
        seen: dict[str, int] = {}
        for index, rule in enumerate(items):
            if rule.name in seen:
                raise PydanticCustomError(
                    "duplicate_rule",
                    "duplicate rule name '{name}' (also rule {first}); names must be unique",
                    {"name": rule.name, "first": seen[rule.name], "loc_suffix": (index, "name")},
                )
            seen[rule.name] = index
        return items

    def is_dry_run(self, rule: Rule) -> bool:
        return self.dry_run if rule.dry_run is None else rule.dry_run

    def exempt_roles_of(self, rule: Rule) -> tuple[str, ...]:
        return self.exempt_roles if rule.exempt_roles is None else rule.exempt_roles
