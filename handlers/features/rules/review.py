"""What an admin's review of a violation does: overturn (undo) or confirm.

Overturning marks the row; the member's ladder is read from rows that were not
overturned, so they are back on the step before with nothing else to rewrite.
The member is told where the bot told them in the first place (privately, or a
short correction in the group for a public warning); where the bot could not
speak (customer groups) the owner gets the text to send.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config.playbooks import Playbook
from handlers.channels import group_channel
from handlers.core.actions import Action, Note, QueueGroupText, QueuePrivateText
from handlers.core.context import Context
from handlers.core.executor import Executor
from handlers.features import copilot
from handlers.features.points.penalties import ReversePenalty
from handlers.features.rules import texts
from handlers.features.rules.violations import OVERTURNED
from handlers.features.welcome import group_vars
from storage.models import Group, Membership, Violation


class ReviewConflict(Exception):
    """The violation cannot be reviewed that way (already overturned)."""


@dataclass(frozen=True)
class MarkOverturned(Action):
    violation_id: int
    reason: str


@dataclass(frozen=True)
class MarkReviewed(Action):
    violation_id: int


def decide_overturn(
    violation: Violation,
    group: Group | None,
    playbook: Playbook | None,
    membership: Membership | None,
    *,
    reason: str,
) -> list[Action]:
    if violation.status == OVERTURNED:
        raise ReviewConflict(f"violation {violation.id} is already overturned")
    actions: list[Action] = [MarkOverturned(violation.id, reason)]
    if violation.status == "taken":  # what its penalty took comes back (if anything)
        actions.append(ReversePenalty(violation.id, violation.chat_id, violation.member_id, reason))
    if violation.status == "taken" and violation.step == "remove" and group and playbook:
        name = texts.member_name(membership, playbook)
        title = texts.rule_title(playbook.rules, violation.rule)
        return [
            *actions,
            copilot.assign(
                group,
                playbook,
                origin="rule_overturn",
                summary=f"管理员撤销了对 {name} 的群规「{title}」处理（{reason or '误判'}）。"
                "TA 已被移出群聊：请把 TA 拉回群，并把下面这段发给 TA：",
                paste_text=texts.overturn_text(name, group_vars(group)["name"], title),
                member_id=violation.member_id,
                key=f"overturn:{violation.id}",
            ),
        ]
    if violation.status != "taken" or violation.step not in ("remind", "warn"):
        return [*actions, Note("the member was not told about it; nothing to take back")]
    if group is None or playbook is None:
        return [*actions, Note(f"no group {violation.chat_id}; the member is not told")]
    title = texts.rule_title(playbook.rules, violation.rule)
    name = texts.member_name(membership, playbook)
    private = texts.overturn_text(name, group_vars(group)["name"], title)
    key = f"overturn:{violation.id}"
    if group_channel(group.channel_type).capabilities.immediate:
        actions.append(
            QueuePrivateText(group.chat_id, violation.member_id, private, "rule_overturn", key=key)
        )
        if violation.step == "warn":
            actions.append(
                QueueGroupText(
                    group.chat_id,
                    texts.overturn_group_text(name, title),
                    "rule_overturn",
                    key=f"{key}:group",
                )
            )
        return actions
    where = "在群里" if violation.step == "warn" else "私下"
    actions.append(
        copilot.assign(
            group,
            playbook,
            origin="rule_overturn",
            summary=f"管理员撤销了对 {name} 的群规「{title}」处理（{reason or '误判'}）。"
            f"之前是{where}提醒的，请同样{where}告诉 TA：",
            paste_text=texts.overturn_group_text(name, title)
            if violation.step == "warn"
            else private,
            member_id=violation.member_id,
            key=key,
        )
    )
    return actions


def decide_confirm(violation: Violation) -> list[Action]:
    if violation.status == OVERTURNED:
        raise ReviewConflict(f"violation {violation.id} is overturned; nothing to confirm")
    return [MarkReviewed(violation.id)]


async def apply_overturned(action: MarkOverturned, ctx: Context) -> None:
    violation = await ctx.session.get(Violation, action.violation_id)
    assert violation is not None
    violation.status = OVERTURNED
    violation.overturned_at = ctx.now
    violation.reviewed_at = ctx.now
    violation.overturn_reason = action.reason[:1000]
    ctx.note(f"violation {violation.id} overturned")


async def apply_reviewed(action: MarkReviewed, ctx: Context) -> None:
    violation = await ctx.session.get(Violation, action.violation_id)
    assert violation is not None
    violation.reviewed_at = ctx.now


def register(executor: Executor) -> None:
    executor.register(MarkOverturned, apply_overturned)
    executor.register(MarkReviewed, apply_reviewed)
