"""The `points:` playbook section (SPEC §7): points that reward real contribution.

Message points exist to thank people for taking part, not to pay for volume: a
message earns only from `min_length` characters, at most once per `cooldown`,
and at most `daily_cap` a day, so 200 one-character messages earn nothing.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, StrictBool, StrictInt, field_validator
from pydantic_core import PydanticCustomError

from bot.config.playbooks.fields import DailySpan, StrictModel, stripped_non_blank


class MessagePoints(StrictModel):
    points: StrictInt = Field(default=1, ge=0, le=100, description="一条有内容的发言得几分")
    min_length: StrictInt = Field(
        default=5, ge=1, le=500, description="至少这么多字才算（「好」「+1」不算）"
    )
    cooldown_seconds: StrictInt = Field(
        default=60, ge=0, le=86400, description="两次得分之间至少间隔（秒），刷屏不得分"
    )
    daily_cap: StrictInt = Field(default=10, ge=0, le=1000, description="每天发言最多得几分")


class InvitePoints(StrictModel):
    points: StrictInt = Field(default=5, ge=0, le=1000, description="邀请一位新成员得几分")
    stay_days: StrictInt = Field(
        default=7, ge=0, le=365, description="被邀请的人留满这么多天才算（提前退群则收回）"
    )


class CheckinWindow(DailySpan):
    """When a check-in counts each day; a window past midnight belongs to the day it
    opens on (handlers/features/points_checkin.py)."""

    span_noun: ClassVar[str] = "the check-in window"


def _default_window() -> CheckinWindow:
    return CheckinWindow.model_validate({"start": "06:00", "end": "10:00"})


class CheckinPoints(StrictModel):
    """Daily check-in (打卡) for camps: one a local day, in the window, silently."""

    enabled: StrictBool = Field(default=False, description="是否开启每日打卡（训练营用）")
    words: tuple[str, ...] = Field(
        default=("打卡",), min_length=1, description="以这些词开头的发言算打卡，如「打卡 第3天」"
    )
    points: StrictInt = Field(default=2, ge=0, le=1000, description="每天打卡一次得几分")
    window: CheckinWindow = Field(
        default_factory=_default_window, description="每天可以打卡的时段，过了不算"
    )
    streak_bonus: dict[int, StrictInt] = Field(
        default_factory=lambda: {7: 10, 21: 30},
        description="连续打卡满这么多天另外奖励的分数，如 {7: 10, 21: 30}；每段连续只奖一次",
    )

    @field_validator("words")
    @classmethod
    def _no_blank_words(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        return stripped_non_blank(words)

    @field_validator("streak_bonus")
    @classmethod
    def _sensible_streaks(cls, bonus: dict[int, int]) -> dict[int, int]:
        for days, points in bonus.items():
            if not 2 <= days <= 366:
                raise PydanticCustomError(
                    "streak_days",
                    "a streak is 2 to 366 days, got {days}",
                    {"days": days, "loc_suffix": (str(days),)},
                )
            if not 0 <= points <= 1000:
                raise PydanticCustomError(
                    "streak_points",
                    "a streak bonus is 0 to 1000 points, got {points}",
                    {"points": points, "loc_suffix": (str(days),)},
                )
        return bonus


class Reward(StrictModel):
    name: str = Field(min_length=1, max_length=40, description="奖品名")
    cost: StrictInt = Field(ge=1, le=1_000_000, description="兑换要多少分")
    stock: StrictInt | None = Field(default=None, ge=0, description="库存；不写表示不限")


class RoleThreshold(StrictModel):
    name: str = Field(min_length=1, max_length=32, description="角色名，如 活跃、核心、KOL")
    min_points: StrictInt = Field(ge=0, description="累计积分达到多少")


class PointsSection(StrictModel):
    enabled: bool = True
    message: MessagePoints = Field(default_factory=MessagePoints)
    discussion: StrictInt = Field(
        default=5, ge=0, le=1000, description="参与群友之间的讨论（回复别的成员）得几分"
    )
    good_content: StrictInt = Field(
        default=10, ge=0, le=1000, description="好资源、好问题（管理员认定）得几分"
    )
    invite: InvitePoints | None = Field(default=None, description="邀请积分")
    rewards: tuple[Reward, ...] = Field(default=(), description="可兑换的奖品")
    roles: tuple[RoleThreshold, ...] = Field(default=(), description="积分角色阶梯")
    checkin: CheckinPoints = Field(
        default_factory=CheckinPoints, description="每日打卡（默认关闭，训练营群打开）"
    )
    touch_complete: StrictInt = Field(
        default=0,
        ge=0,
        le=1000,
        description="新人 7 天触达走完、人还在群里时奖励几分；0 表示不奖励",
    )
