"""The `weekly_digest:` playbook section: once a week each group gets one 群刊, the
best threads and new resources of the week before, so what scrolled away in chat is
kept (handlers/features/weekly_digest).

The text is a Jinja2 template checked at load like every other playbook text
(render.py): syntax, the documented variables, and a dry render with sample values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, time
from typing import Any, Literal, TypedDict

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bot.config.playbooks.fields import LocalTime, StrictModel
from bot.config.playbooks.render import GroupVars, lint_template, template_error, weekday_cn
from bot.config.playbooks.rules_section import WEEKDAYS, Weekday


class ThreadVars(TypedDict):
    rank: int  # 1 for the best
    name: str  # who started it (nickname, never an internal id)
    text: str  # its opening, one line, about 60 characters
    replies: int  # member-to-member replies
    participants: int  # people who wrote in it
    essence: int  # its messages marked 精华
    question: bool  # it opened with a question
    answered: bool  # … that a member answered
    day: str  # the weekday it started: 周一 … 周日


class ResourceVars(TypedDict):
    kind: Literal["library", "essence"]  # a content-library item, or a message marked 精华
    title: str  # the item's title, or the marked message's opening
    url: str | None
    summary: str
    author: str | None  # who wrote the marked message


WEEKLY_DIGEST_VARS: frozenset[str] = frozenset(
    {
        "week",
        "week_id",
        "threads",
        "resources",
        "group_name",
        "thread_count",
        "resource_count",
        "group",
        "today",
        "weekday",
    }
)


def weekly_digest_variables(
    *,
    week: str,
    week_id: str,
    threads: Sequence[ThreadVars],
    resources: Sequence[ResourceVars],
    group: GroupVars,
    today: date,
) -> dict[str, Any]:
    """Variables for `weekly_digest.text`; `week` as people read it (第49周（11月30日–
    12月6日）), `week_id` as the API writes it (2026-W49)."""
    return {
        "week": week,
        "week_id": week_id,
        "threads": [dict(t) for t in threads],
        "resources": [dict(r) for r in resources],
        "group_name": group["name"],
        "thread_count": len(threads),
        "resource_count": len(resources),
        "group": dict(group),
        "today": today.isoformat(),
        "weekday": weekday_cn(today),
    }


WEEKLY_DIGEST_SAMPLE: Mapping[str, Any] = weekly_digest_variables(
    week="第49周（11月30日–12月6日）",
    week_id="2026-W49",
    threads=[
        {
            "rank": 1,
            "name": "张三",
            "text": "有没有人做过私域社群的冷启动？求一份清单",
            "replies": 12,
            "participants": 6,
            "essence": 1,
            "question": True,
            "answered": True,
            "day": "周二",
        },
        {
            "rank": 2,
            "name": "李四",
            "text": "分享一个活动复盘",
            "replies": 5,
            "participants": 3,
            "essence": 0,
            "question": False,
            "answered": False,
            "day": "周四",
        },
    ],
    resources=[
        {
            "kind": "library",
            "title": "新手指南",
            "url": "https://example.com/guide",
            "summary": "入群第一周该看什么",
            "author": None,
        },
        {
            "kind": "essence",
            "title": "整理了一份私域 SOP 清单",
            "url": None,
            "summary": "",
            "author": "王五",
        },
    ],
    group={"chat_id": "wrSAMPLE", "name": "示例群", "tags": ["示例"]},
    today=date(2026, 12, 7),
)

# The shipped text (default.yaml writes the same): a list of lines only to keep the
# source narrow.
DEFAULT_TEXT = "\n".join(
    [
        "【群刊】{{ group_name }} · {{ week }}",
        "这一周群里最值得回看的讨论：",
        "{% for t in threads %}",
        "{{ t.rank }}. {{ t.name }}：「{{ t.text }}」"
        "（{{ t.replies }} 条回复{% if t.essence %}，精华{% endif %}）",
        "{% endfor %}",
        "{% if resources %}",
        "",
        "新资料：",
        "{% for r in resources %}",
        "· {{ r.title }}{% if r.author %}（{{ r.author }} 分享）{% endif %}"
        '{{ " " ~ r.url if r.url else "" }}',
        "{% endfor %}",
        "{% endif %}",
        "",
        "错过的话题，欢迎在群里接着聊～",
    ]
)


class WeeklyDigestSection(StrictModel):
    enabled: StrictBool = Field(default=True, description="关掉就不发群刊")
    weekday: Weekday = Field(
        default="mon", description="每周哪天发上一周的群刊：mon、tue … sun（按 BOT_TIMEZONE）"
    )
    at: LocalTime = Field(
        default=time(10, 0),
        description="当天几点发，HH:MM；服务晚启动时当天内补发，过了当天就跳过并记录原因",
    )
    top_threads: StrictInt = Field(
        default=5, ge=1, le=20, description="最多列几个讨论（按群友之间的回复数、精华数排序）"
    )
    top_resources: StrictInt = Field(
        default=5, ge=0, le=20, description="最多列几条新资料（内容库新上线的和被评为精华的消息）"
    )
    min_threads: StrictInt = Field(
        default=2,
        ge=1,
        le=20,
        description="值得回看的讨论少于这个数就不发这一期（记录原因），不发空洞的群刊",
    )
    text: str = Field(
        default=DEFAULT_TEXT, description="群刊内容（Jinja2），变量见 docs/playbooks.md"
    )

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str) -> str:
        if not text.strip():
            raise PydanticCustomError("missing_text", "must not be empty")
        problems = lint_template(text, WEEKLY_DIGEST_VARS, WEEKLY_DIGEST_SAMPLE)
        if problems:
            raise template_error(problems)
        return text

    @model_validator(mode="after")
    def _enough_room(self) -> WeeklyDigestSection:
        if self.min_threads > self.top_threads:
            raise PydanticCustomError(
                "min_above_top",
                "min_threads {low} is more than top_threads {top}: no week could be sent",
                {"low": self.min_threads, "top": self.top_threads, "loc_suffix": ("min_threads",)},
            )
        return self

    def weekday_index(self) -> int:
        """0 for Monday … 6 for Sunday."""
        return WEEKDAYS.index(self.weekday)
