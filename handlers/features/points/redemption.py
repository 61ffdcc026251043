"""Redeeming points for a playbook's rewards, never beyond the balance or the stock.

Two members taking the last item, or one member redeeming twice at once, must not
overspend. The redemption row is written first (on SQLite that takes the single
write lock, so the checks below read every committed redemption; on PostgreSQL the
reward's and the member's advisory locks serialize the same decisions), then the
balance and the stock are checked with it counted, and the transaction is rolled
back with a clear reason when either is short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from handlers.features.points.ledger import balance
from handlers.features.points.season import season_start
from storage.db import lock_keys
from storage.models import PointsEntry, Redemption

POINTS_LOCK_SPACE = 71004  # a member's balance, a reward's stock (71001-71003 are taken)
REDEEM = "redeem"


class RedemptionRefused(Exception):
    """Balance or stock is short; the reason is said to the admin as it is."""


class UnknownReward(Exception):
    pass


@dataclass(frozen=True)
class Redeemed:
    redemption: Redemption
    balance: int
    stock_left: int | None


def member_lock(chat_id: str, member_id: str) -> str:
    return f"points:{chat_id}:{member_id}"


async def redeem(
    session: AsyncSession,
    playbook: Playbook,
    *,
    chat_id: str,
    member_id: str,
    reward_name: str,
    now: datetime,
    tz: tzinfo,
) -> Redeemed:
    """Within the caller's transaction; the caller commits, or rolls back on a refusal."""
    rewards = {r.name: r for r in (playbook.points.rewards if playbook.points else ())}
    reward = rewards.get(reward_name)
    if reward is None:
        offered = "、".join(rewards) or "none"
        raise UnknownReward(
            f"playbook {playbook.name} has no reward {reward_name!r} (rewards: {offered})"
        )
    await lock_keys(
        session,
        POINTS_LOCK_SPACE,
        [f"stock:{playbook.name}:{reward.name}", member_lock(chat_id, member_id)],
    )
    redemption = Redemption(
        chat_id=chat_id,
        member_id=member_id,
        playbook=playbook.name,
        reward=reward.name,
        cost=reward.cost,
        created_at=now,
    )
    session.add(redemption)
    await session.flush()  # the write first: see the note at the top
    # Spending reads the current season's balance (points.reset); with no reset, all.
    have = await balance(session, chat_id, member_id, since=season_start(playbook.points, now, tz))
    if have < reward.cost:
        raise RedemptionRefused(
            f"balance too low: {member_id} has {have} points, {reward.name} costs {reward.cost}"
        )
    stock_left: int | None = None
    if reward.stock is not None:
        taken = (
            await session.execute(
                select(func.count()).where(
                    Redemption.playbook == playbook.name, Redemption.reward == reward.name
                )
            )
        ).scalar_one()
        if taken > reward.stock:
            raise RedemptionRefused(f"out of stock: all {reward.stock} of {reward.name} are taken")
        stock_left = reward.stock - int(taken)
    session.add(
        PointsEntry(
            chat_id=chat_id,
            member_id=member_id,
            delta=-reward.cost,
            reason=REDEEM,
            source_key=f"redeem:{redemption.id}",
            created_at=now,
            note=reward.name,
        )
    )
    await session.flush()
    return Redeemed(redemption, have - reward.cost, stock_left)
