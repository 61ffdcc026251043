"""The `keywords:` playbook section: when the bot answers a member's question from the
content library (SPEC §5.4, §7).

SPEC §7 writes the per-item cooldown as `cooldown_seconds` and the reply's length as
`max_items`; both names load (as `group_cooldown_seconds` and `top_n`), one of each
pair per file. `mode: wait` holds an answer `wait_minutes` and sends it only if no
member answered meanwhile (handlers/features/content/keyword_wait.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, StrictBool, StrictInt, field_validator

from bot.config.playbooks.fields import StrictModel, stripped_non_blank

DEFAULT_TRIGGERS = ("有没有", "求", "推荐", "?", "？")
# The lookup index's DEFAULT_THRESHOLD, written out: importing the index here would load
# jieba and bm25s with every playbook check (a test keeps the two equal).
DEFAULT_THRESHOLD = 0.5


class Expert(StrictModel):
    """Who knows a field: cued when a question about it stays unanswered."""

    tags: tuple[str, ...] = Field(
        min_length=1,
        max_length=50,
        description="问题里出现这些词就算这位专家的领域，如 [发票, 报税, 财税]",
    )
    members: tuple[str, ...] = Field(
        min_length=1, max_length=10, description="专家的成员 id（userid 或 wm…）"
    )

    @field_validator("tags", "members")
    @classmethod
    def _no_blanks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return stripped_non_blank(values)


class KeywordsSection(StrictModel):
    enabled: StrictBool = Field(default=True, description="关掉就不在群里回答资料类问题")
    mode: Literal["immediate", "wait"] = Field(
        default="immediate",
        description="immediate：有人问就马上回答；wait：等几分钟没有群友回答再答"
        "（群主、管理员和员工的回复不算）。@机器人 的提问总是马上回答",
    )
    wait_minutes: StrictInt = Field(
        default=5, ge=1, le=1440, description="wait 模式下等多少分钟没人回答才由机器人回答"
    )
    triggers: tuple[str, ...] = Field(
        default=DEFAULT_TRIGGERS,
        max_length=100,
        description="消息里出现这些词（或像是提问）才去查资料库，闲聊不打扰",
    )
    top_n: StrictInt = Field(
        default=3,
        ge=1,
        le=10,
        validation_alias=AliasChoices("top_n", "max_items"),
        description="一次回复最多列几条资料（自有内容排在前面）；也可写作 max_items",
    )
    group_cooldown_seconds: StrictInt = Field(
        default=60,
        ge=0,
        le=7 * 86400,
        validation_alias=AliasChoices("group_cooldown_seconds", "cooldown_seconds"),
        description="同一条资料在同一个群里多少秒内不重复推荐；也可写作 cooldown_seconds",
    )
    group_interval_seconds: StrictInt = Field(
        default=0,
        ge=0,
        le=3600,
        description="同一个群里两次资料回复之间至少隔多少秒（0 不限）；@机器人 的提问不受限",
    )
    experts: tuple[Expert, ...] = Field(
        default=(),
        max_length=50,
        description="资料库答不上、群里也没人回答的问题，按领域提醒专家来答",
    )
    expert_after_minutes: StrictInt = Field(
        default=10,
        ge=1,
        le=1440,
        description="问题过了这么多分钟还没人回答才提醒专家",
    )
    expert_cue: Literal["private", "group"] = Field(
        default="private",
        description="private：私信专家（不打扰群）；group：在群里 @专家（客户群变成群主待办）",
    )
    threshold: float = Field(
        default=DEFAULT_THRESHOLD,
        gt=0,
        le=5,
        description="模糊提问（没有命中关键词）的相关度门槛，越高越严格，默认 0.5",
    )

    @field_validator("triggers")
    @classmethod
    def _no_blank_triggers(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return stripped_non_blank(values)
