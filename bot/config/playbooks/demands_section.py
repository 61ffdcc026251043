"""The `demands:` playbook section: demand posts (招聘 / 求职 / 供应商 / 活动) collected
during the day and published once a day in the 早报 (handlers/features/demands).

Practising operators' reasoning: demand posts are the commonest "ads" in professional
groups; banning them angers members, letting them flood the group annoys everyone.
Collected by a `rules` item with `action: collect` (or `POST /admin/demands`), they
reach members once, in the morning, together.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, StrictInt, field_validator
from pydantic_core import PydanticCustomError

from bot.config.playbooks.fields import StrictModel, stripped_non_blank

DEFAULT_KINDS = ("招聘", "求职", "供应商", "活动")
MAX_KIND_CHARS = 10


class DemandsSection(StrictModel):
    approval: StrictBool = Field(
        default=False,
        description="true：收录的供需信息要运营在后台审核通过后才会发布；false：收录即可发布",
    )
    kinds: tuple[str, ...] = Field(
        default=DEFAULT_KINDS,
        min_length=1,
        max_length=20,
        description="供需信息的类别；collect 规则的 collect_kind 必须是其中之一，早报按类别分组",
    )
    max_per_report: StrictInt = Field(
        default=10,
        ge=1,
        le=50,
        description="一期早报最多发布几条，多出的按先来后到留到下一期",
    )
    dedup_days: StrictInt = Field(
        default=7,
        ge=0,
        le=90,
        description="这么多天内同样的内容（谁发的都算），或同一个人同一类别几乎一样的内容，"
        "合并成一条（0 = 不合并）",
    )
    expire_days: StrictInt = Field(
        default=7,
        ge=1,
        le=90,
        description="收录超过这么多天还没在某个群发布的，就不再发到那个群（过时的招聘没人需要）",
    )
    max_chars: StrictInt = Field(
        default=300,
        ge=20,
        le=2000,
        description="一条最多多少字；群里收录的超出部分省略，后台提交的超出会被拒绝",
    )
    note: Literal["private", "group", "none"] = Field(
        default="private",
        description="收录后告诉发帖人一声：private 私信（只发给企业内部成员，客户不发），"
        "group 在群里 @ 他（只在机器人能直接发言的群），none 不告诉；每人每天最多一次",
    )

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = stripped_non_blank(kinds)
        for index, kind in enumerate(cleaned):
            if len(kind) > MAX_KIND_CHARS:
                raise PydanticCustomError(
                    "kind_too_long",
                    "'{kind}' is longer than {most} characters",
                    {"kind": kind, "most": MAX_KIND_CHARS, "loc_suffix": (index,)},
                )
            if kind in cleaned[:index]:
                raise PydanticCustomError(
                    "duplicate_kind",
                    "'{kind}' is listed twice",
                    {"kind": kind, "loc_suffix": (index,)},
                )
        return cleaned
