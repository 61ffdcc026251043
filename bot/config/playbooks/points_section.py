"""The `points:` playbook section (SPEC §7): points that reward real contribution.

Message points exist to thank people for taking part, not to pay for volume: a
message earns only from `min_length` characters, at most once per `cooldown`,
and at most `daily_cap` a day, so 200 one-character messages earn nothing.
"""

from __future__ import annotations

from datetime import time
from typing import ClassVar, Literal

from pydantic import Field, StrictBool, StrictInt, field_validator
from pydantic_core import PydanticCustomError

from bot.config.playbooks.fields import DailySpan, LocalTime, StrictModel, stripped_non_blank


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
    opens on (handlers/features/points/checkin.py)."""

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
    """One rung of the ladder 普通 → 活跃 → 核心 → KOL; every condition must hold.
    讲师 and 大咖 are nominated by admins (PUT /admin/members/{id}/roles), not earned."""

    name: str = Field(min_length=1, max_length=32, description="角色名，如 活跃、核心、KOL")
    min_points: StrictInt = Field(ge=0, description="在本群累计积分达到多少")
    active_weeks: StrictInt = Field(
        default=0, ge=0, le=52, description="最近 ladder_weeks 周里至少有几周发过言"
    )
    answers: StrictInt = Field(
        default=0, ge=0, le=10000, description="最近 ladder_weeks 周里至少回答过几个别人的问题"
    )


class StarVote(StrictModel):
    """贡献之星: each month the top of last month's leaderboard is put to a vote in the
    group (handlers/features/star/vote.py)."""

    enabled: bool = True
    candidates: StrictInt = Field(
        default=5, ge=1, le=20, description="候选人数（上月积分榜前几名，群主、管理员和员工除外）"
    )
    open_day: StrictInt = Field(
        default=1, ge=1, le=28, description="每月几号开始投票（投上个月的贡献之星）"
    )
    open_at: LocalTime = Field(default=time(10, 0), description="开始投票的时刻，HH:MM")
    vote_hours: StrictInt = Field(default=48, ge=1, le=240, description="投票持续多少小时")
    winner_points: StrictInt = Field(
        default=0, ge=0, le=10_000, description="当选者奖励几分；0 表示不加分"
    )


class Penalties(StrictModel):
    """Points a rule step takes (0 or negative), given back when an admin overturns it.
    A private reminder costs nothing: it is a nudge, and false positives happen."""

    remind: StrictInt = Field(default=0, ge=-1000, le=0, description="私下提醒扣几分（写负数）")
    warn: StrictInt = Field(default=-5, ge=-1000, le=0, description="群内警告扣几分（写负数）")
    report: StrictInt = Field(default=-10, ge=-1000, le=0, description="报告群主时扣几分（写负数）")
    remove: StrictInt = Field(default=-10, ge=-1000, le=0, description="移出群时扣几分（写负数）")


Season = Literal["never", "monthly", "quarterly", "yearly"]


class PointsSection(StrictModel):
    enabled: bool = True
    message: MessagePoints = Field(default_factory=MessagePoints)
    discussion: StrictInt = Field(
        default=5, ge=0, le=1000, description="参与群友之间的讨论（回复别的成员）得几分"
    )
    discussion_daily_cap: StrictInt = Field(
        default=15, ge=0, le=10000, description="每天讨论最多得几分（两个人来回刷也到此为止）"
    )
    good_content: StrictInt = Field(
        default=10, ge=0, le=1000, description="好资源、好问题（管理员认定）得几分"
    )
    invite: InvitePoints | None = Field(default=None, description="邀请积分")
    rewards: tuple[Reward, ...] = Field(default=(), description="可兑换的奖品")
    roles: tuple[RoleThreshold, ...] = Field(
        default=(), description="角色阶梯，从低到高（普通 → 活跃 → 核心 → KOL）"
    )
    ladder_weeks: StrictInt = Field(
        default=8, ge=1, le=52, description="角色阶梯看最近几周的活跃和回答"
    )
    query_words: tuple[str, ...] = Field(
        default=("我的积分", "查积分"),
        description="成员在群里发这些词（整句）时，机器人简短回复他的积分和角色",
    )
    query_interval_minutes: StrictInt = Field(
        default=60, ge=1, le=10080, description="同一成员查询积分的回复至少间隔多少分钟"
    )
    star: StarVote | None = Field(default=None, description="贡献之星月度投票；不写表示不投票")
    reaction_words: tuple[str, ...] = Field(
        default=("精华",),
        max_length=20,
        description="群主、管理员或员工引用一条消息只回复这个词，作者得 good_content 分",
    )
    penalties: Penalties = Field(
        default_factory=Penalties, description="违反群规每一级扣的分；撤销处理时退回"
    )
    reset: Season = Field(
        default="never",
        description="积分清零周期（可兑换的余额从本期开始算；历史流水全部保留）",
    )

    checkin: CheckinPoints = Field(
        default_factory=CheckinPoints, description="每日打卡（默认关闭，训练营群打开）"
    )
    touch_complete: StrictInt = Field(
        default=0,
        ge=0,
        le=1000,
        description="新人 7 天触达走完、人还在群里时奖励几分；0 表示不奖励",
    )

    @field_validator("roles")
    @classmethod
    def _distinct_rungs(cls, rungs: tuple[RoleThreshold, ...]) -> tuple[RoleThreshold, ...]:
        names = [rung.name for rung in rungs]
        if len(set(names)) != len(names):
            raise ValueError("role names on the ladder must be distinct")
        return rungs

    @field_validator("reaction_words")
    @classmethod
    def _words(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(word.strip() for word in words)
        if any(not word or len(word) > 20 for word in cleaned):
            raise ValueError("a reaction word is 1 to 20 characters")
        return cleaned
