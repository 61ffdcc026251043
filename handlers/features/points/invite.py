"""Invite points (SPEC §5.5, playbook `points.invite`): whoever brings a member who
stays earns points for it.

The inviter earns at the join, once ever per invitee in a group (whoever invited
them, whatever their later comings and goings), so leaving and rejoining cannot farm
it. If the invitee leaves before `stay_days`, the points are taken back, once. Staff
bring people as their job (the growth report measures them, not points); robots and
members who invite themselves earn nothing.

Both lines use the key `invite:<invitee>`; the decisions are pure, the handlers read
the memberships, the roles and the invitee's earlier invite lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.config.playbooks.points_section import InvitePoints
from handlers.core.actions import Action, Note
from handlers.core.context import Context
from handlers.core.events import Event, MemberJoined, MemberLeft
from handlers.core.playbooks import playbook_for
from handlers.features.points.ledger import AddPoints
from handlers.features.roles import roles_in
from storage.members import memberships_of
from storage.models import PointsEntry

INVITE, INVITE_TAKEN_BACK = "invite", "invite_taken_back"
ROBOT_PREFIX = "wb"


def invite_key(invitee: str) -> str:
    return f"invite:{invitee}"[:160]


# --- pure decisions ---------------------------------------------------------------


@dataclass(frozen=True)
class Join:
    """What is known about one newcomer when the invite is judged."""

    invitee: str
    inviter: str | None
    inviter_is_staff: bool
    still_present: bool  # False: a stale join, the member has left again already
    earned_before: bool  # an invite line for this invitee exists in the group


def invite_points(join: Join, rule: InvitePoints) -> tuple[int, str]:
    """(points for the inviter, why): 0 with the reason when nobody earns."""
    if not join.inviter:
        return 0, "no inviter known"
    if join.inviter == join.invitee:
        return 0, "joined on their own"
    if join.invitee.startswith(ROBOT_PREFIX) or join.inviter.startswith(ROBOT_PREFIX):
        return 0, "robots earn and bring nothing"
    if join.inviter_is_staff:
        return 0, "staff invites are counted by the growth report, not points"
    if not join.still_present:
        return 0, "left again before the join was handled"
    if join.earned_before:
        return 0, "this member already earned someone invite points here"
    if rule.points <= 0:
        return 0, "invite points are 0"
    return rule.points, "invite"


@dataclass(frozen=True)
class EarnedInvite:
    """The invite line an invitee earned their inviter, and whether it was taken back."""

    inviter: str
    points: int
    joined_at: datetime
    taken_back: bool


def points_taken_back(earned: EarnedInvite | None, left_at: datetime, rule: InvitePoints) -> int:
    """How much to take back from the inviter when the invitee leaves at `left_at`."""
    if earned is None or earned.taken_back or earned.points <= 0:
        return 0
    if left_at - earned.joined_at >= timedelta(days=rule.stay_days):
        return 0
    return earned.points


# --- facts ---------------------------------------------------------------------------


def _memo_key(chat_id: str, invitee: str) -> tuple[str, str]:
    return ("points_invite", f"{chat_id}|{invitee}")


async def earned_invites(
    ctx: Context, chat_id: str, invitees: list[str]
) -> dict[str, EarnedInvite]:
    """The invite lines of these invitees in the group. Ledger lines are written at the
    end of a batch, so what this batch decided is read from the batch's memo first."""
    found: dict[str, EarnedInvite] = {}
    unknown: list[str] = []
    for invitee in invitees:
        known = ctx.memo.extra.get(_memo_key(chat_id, invitee))
        if known is not None:
            found[invitee] = known
        else:
            unknown.append(invitee)
    if not unknown:
        return found
    by_key = {invite_key(invitee): invitee for invitee in unknown}
    rows = await ctx.session.execute(
        select(
            PointsEntry.member_id,
            PointsEntry.reason,
            PointsEntry.delta,
            PointsEntry.created_at,
            PointsEntry.source_key,
        ).where(
            PointsEntry.chat_id == chat_id,
            PointsEntry.reason.in_((INVITE, INVITE_TAKEN_BACK)),
            PointsEntry.source_key.in_(list(by_key)),
        )
    )
    invites: dict[str, EarnedInvite] = {}
    taken: set[str] = set()
    for member, reason, delta, created_at, key in rows.all():
        invitee = by_key[key]
        if reason == INVITE:
            invites[invitee] = EarnedInvite(str(member), int(delta), created_at, False)
        else:
            taken.add(invitee)
    for invitee, earned in invites.items():
        found[invitee] = EarnedInvite(
            earned.inviter, earned.points, earned.joined_at, invitee in taken
        )
    return found


def _remember(ctx: Context, chat_id: str, invitee: str, earned: EarnedInvite) -> None:
    ctx.memo.extra[_memo_key(chat_id, invitee)] = earned


# --- handlers ------------------------------------------------------------------------


async def _invite_rule(ctx: Context, chat_id: str) -> InvitePoints | None:
    group = await ctx.group(chat_id)
    if group is None:
        return None
    points = playbook_for(ctx.playbooks, group).points
    if points is None or not points.enabled:
        return None
    return points.invite


async def on_member_joined(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, MemberJoined)
    if not event.chat_id:
        return []
    rule = await _invite_rule(ctx, event.chat_id)
    if rule is None:
        return []
    chat_id = event.chat_id
    rows = await memberships_of(ctx.session, chat_id, [m.id for m in event.members])
    # The event's invitor is WeCom's latest word; the row keeps one seen earlier.
    inviters = {
        info.id: info.invitor or (row.invitor if (row := rows.get(info.id)) else None)
        for info in event.members
    }
    roles = await roles_in(ctx.session, chat_id, [i for i in inviters.values() if i])
    earned = await earned_invites(ctx, chat_id, [info.id for info in event.members])
    actions: list[Action] = []
    for info in event.members:
        row = rows.get(info.id)
        inviter = inviters[info.id]
        join = Join(
            invitee=info.id,
            inviter=inviter,
            inviter_is_staff=bool(inviter and "staff" in roles.get(inviter, frozenset())),
            still_present=row is not None and row.left_at is None,
            earned_before=info.id in earned,
        )
        points, why = invite_points(join, rule)
        if not points:
            if inviter:
                actions.append(Note(f"no invite points for bringing {info.id}: {why}"))
            continue
        assert inviter is not None and row is not None
        _remember(ctx, chat_id, info.id, EarnedInvite(inviter, points, row.joined_at, False))
        actions.append(
            AddPoints(chat_id, inviter, points, INVITE, invite_key(info.id), row.joined_at)
        )
    return actions


async def on_member_left(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, MemberLeft)
    if not event.chat_id:
        return []
    rule = await _invite_rule(ctx, event.chat_id)
    if rule is None:
        return []
    chat_id = event.chat_id
    earned = await earned_invites(ctx, chat_id, list(event.member_ids))
    actions: list[Action] = []
    for invitee in event.member_ids:
        invite = earned.get(invitee)
        taken = points_taken_back(invite, event.occurred_at, rule)
        if not taken:
            continue
        assert invite is not None
        _remember(
            ctx,
            chat_id,
            invitee,
            EarnedInvite(invite.inviter, invite.points, invite.joined_at, True),
        )
        actions.append(
            AddPoints(
                chat_id,
                invite.inviter,
                -taken,
                INVITE_TAKEN_BACK,
                invite_key(invitee),
                event.occurred_at,
                note=f"{invitee} 入群不满 {rule.stay_days} 天就退群了",
            )
        )
    return actions
