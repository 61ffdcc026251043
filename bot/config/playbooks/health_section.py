"""The `health:` playbook section: the goal lines group health is judged against.

The defaults are the seeds' numbers from practising operators: a fifth of the
members speak in a week, at least five member-to-member exchanges a week without
the host, members answer more questions than staff, a role pyramid close to
4% 大咖 / 6% 讲师 / 8% KOL / 2% 核心 / 10% 活跃 / 70% 普通, and a group kept
below 470 of WeCom's 500 so members can still bring friends.
"""

from __future__ import annotations

from pydantic import Field, StrictInt, field_validator

from bot.config.playbooks.fields import StrictModel


class PyramidTier(StrictModel):
    tier: str = Field(min_length=1, max_length=32, description="层级名（角色或积分等级），从高到低")
    share: float = Field(ge=0, le=1, description="目标占比，如 0.04 表示 4%")


DEFAULT_PYRAMID = (
    PyramidTier(tier="大咖", share=0.04),
    PyramidTier(tier="讲师", share=0.06),
    PyramidTier(tier="KOL", share=0.08),
    PyramidTier(tier="核心", share=0.02),
    PyramidTier(tier="活跃", share=0.10),
    PyramidTier(tier="普通", share=0.70),
)


class HealthSection(StrictModel):
    thread_minutes: StrictInt = Field(
        default=10, ge=1, le=1440, description="多少分钟内的回应算接上话（互动轮次、问题有人回答）"
    )
    active_rate: float = Field(default=0.20, ge=0, le=1, description="周活跃率目标线")
    rounds: StrictInt = Field(
        default=5, ge=0, le=10000, description="每周群友之间（不含群主/员工）的互动轮次目标线"
    )
    member_answer_share: float = Field(
        default=0.5, ge=0, le=1, description="问题由群友（而不是群主/员工）回答的占比目标线"
    )
    pyramid: tuple[PyramidTier, ...] = Field(
        default=DEFAULT_PYRAMID, description="角色金字塔目标占比，从高到低（最后一层是普通成员）"
    )
    size_cap: StrictInt = Field(default=500, ge=2, le=100000, description="群人数上限")
    size_alert: StrictInt = Field(
        default=470, ge=1, le=100000, description="到这个人数就提醒：给成员拉朋友留出空位"
    )
    lead_conversion: float = Field(
        default=0.10, ge=0, le=1, description="线索转化占比目标线（免费群 10%，付费群可设 5%）"
    )
    digest: bool = Field(default=True, description="每周一给群主和运营发一条「低于目标线的群」汇总")
    digest_at: str = Field(
        default="09:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="周一几点发周报（HH:MM）"
    )

    @field_validator("pyramid")
    @classmethod
    def _distinct_tiers(cls, tiers: tuple[PyramidTier, ...]) -> tuple[PyramidTier, ...]:
        names = [tier.tier for tier in tiers]
        if len(set(names)) != len(names):
            raise ValueError("pyramid tiers must be distinct")
        if not tiers:
            raise ValueError("pyramid needs at least one tier (the last is ordinary members)")
        return tiers

    @property
    def ordinary_tier(self) -> str:
        return self.pyramid[-1].tier
