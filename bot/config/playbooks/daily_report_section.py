"""The `daily_report:` playbook section (SPEC §5.6, §7): the daily 早报 of a group.

One message a day at `at` (local): the date and a greeting, one knowledge point from
the content library (items tagged `knowledge_tag`, own first, never repeated in a
group until every one was used), the demand posts collected since the last 早报,
yesterday's highlights, the month's leaderboard and at most one sponsored slot. A
start more than `grace_minutes` after `at` skips the day (no stale 早报); a day with
nothing to say is skipped too unless `skip_when_empty` is off
(handlers/features/daily_report/).
"""

from __future__ import annotations

from datetime import date, time
from typing import Self

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bot.config.playbooks.fields import LocalTime, StrictModel
from bot.config.playbooks.render import (
    DAILY_REPORT_EMPTY_SAMPLE,
    DAILY_REPORT_SAMPLE,
    DAILY_REPORT_VARS,
    lint_template,
    template_error,
)
from bot.config.playbooks.rules_section import WEEKDAYS, Weekday

# What members read when the operator writes no `text`: every block optional, in the
# order members care about (something to learn, something to act on, what they
# missed, who helped), the paid slot last and labelled as the law asks (广告).
DEFAULT_TEXT = """\
【{{ group_name }} 早报】{{ date }}
{{ greeting }}
{% if knowledge %}

【每日一知识】{{ knowledge.title }}
{% if knowledge.summary %}
{{ knowledge.summary }}
{% endif %}
{% if knowledge.url %}
{{ knowledge.url }}
{% endif %}
{% endif %}
{% if demands %}

{{ demands }}
{% endif %}
{% if highlights or new_resources %}

【昨日精彩】
{% for h in highlights %}
· {{ h.starter }}：{{ h.text }}（{{ h.replies }} 条回复）
{% endfor %}
{% for r in new_resources %}
· 新资源：{{ r.title }}{{ " " ~ r.url if r.url else "" }}
{% endfor %}
{% endif %}
{% if leaderboard %}

【{{ leaderboard_month }}积分榜】
{% for m in leaderboard %}
{{ m.rank }}. {{ m.name }}　{{ m.points }} 分
{% endfor %}
{% endif %}
{% if sponsored %}

【广告】{{ sponsored }}
{% endif %}
"""

MAX_SPONSORED_CHARS = 300


class SponsoredSlot(StrictModel):
    """A paid slot with its own schedule: shown on the days it covers, at most one a
    day (the first that fits)."""

    text: str = Field(
        min_length=1,
        max_length=MAX_SPONSORED_CHARS,
        description="广告内容（纯文本，≤300 字），默认模板以【广告】标注",
    )
    start: date | None = Field(default=None, description="第一天（含），不写表示已开始")
    end: date | None = Field(default=None, description="最后一天（含），不写表示一直有效")
    days: tuple[Weekday, ...] = Field(default=WEEKDAYS, description="星期几展示，默认每天")

    @field_validator("text")
    @classmethod
    def _plain(cls, text: str) -> str:
        if "{{" in text or "{%" in text:
            raise PydanticCustomError(
                "not_plain_text", "a sponsored text is shown as written: no template tags"
            )
        if not text.strip():
            raise PydanticCustomError("blank", "must not be empty")
        return text.strip()

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise PydanticCustomError(
                "dates_out_of_order",
                "end {end} is before start {start}",
                {"end": str(self.end), "start": str(self.start), "loc_suffix": ("end",)},
            )
        return self

    def shows_on(self, day: date) -> bool:
        if self.start is not None and day < self.start:
            return False
        if self.end is not None and day > self.end:
            return False
        return WEEKDAYS[day.weekday()] in self.days


class DailyReportSection(StrictModel):
    enabled: StrictBool = Field(default=True, description="关掉就不发早报")
    at: LocalTime = Field(default=time(8, 30), description="每天几点发（HH:MM，BOT_TIMEZONE）")
    grace_minutes: StrictInt = Field(
        default=90,
        ge=0,
        le=720,
        description="服务晚于 at 这么多分钟才轮到（停机、重启）就不再发当天的早报，记为跳过",
    )
    days: tuple[Weekday, ...] = Field(default=WEEKDAYS, description="星期几发，默认每天")
    text: str = Field(
        default=DEFAULT_TEXT, description="早报内容（Jinja2），变量见 docs/playbooks.md"
    )
    knowledge_tag: str = Field(
        default="知识点",
        min_length=1,
        max_length=40,
        description="内容库里带这个标签的条目轮流当「每日一知识」，自有内容优先，全部用过才重复",
    )
    leaderboard_top: StrictInt = Field(
        default=3, ge=0, le=10, description="积分榜列前几名（群主、管理员、员工除外）；0 = 不列"
    )
    threads_top: StrictInt = Field(
        default=1, ge=0, le=5, description="「昨日精彩」列几个讨论最热的话题；0 = 不列"
    )
    resources_top: StrictInt = Field(
        default=3, ge=0, le=10, description="「昨日精彩」列几条新分享的资源；0 = 不列"
    )
    skip_when_empty: StrictBool = Field(
        default=True,
        description="没有知识点、需求、精彩和积分榜时不发（只有日期和问候的早报是打扰）",
    )
    sponsored: tuple[SponsoredSlot, ...] = Field(
        default=(),
        max_length=50,
        description="广告位：每条有自己的起止日期和星期，一天最多展示一条（第一条符合的）",
    )

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str) -> str:
        if not text.strip():
            raise PydanticCustomError("blank", "must not be empty; omit `text` for the default")
        for sample in (DAILY_REPORT_SAMPLE, DAILY_REPORT_EMPTY_SAMPLE):
            problems = lint_template(text, DAILY_REPORT_VARS, sample)
            if problems:
                raise template_error(problems)
        return text

    @field_validator("knowledge_tag")
    @classmethod
    def _tag(cls, tag: str) -> str:
        if not tag.strip():
            raise PydanticCustomError("blank", "must not be empty")
        return tag.strip()

    @field_validator("days")
    @classmethod
    def _some_day(cls, days: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        if not days:
            raise PydanticCustomError(
                "no_days", "no day to send on; set `enabled: false` to stop the 早报"
            )
        return days

    def sends_on(self, day: date) -> bool:
        return self.enabled and WEEKDAYS[day.weekday()] in self.days

    def sponsored_on(self, day: date) -> str | None:
        """The first slot that covers the day, or None."""
        return next((slot.text for slot in self.sponsored if slot.shows_on(day)), None)
