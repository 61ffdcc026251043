"""What a rule hit leads to: a pure decision, no I/O.

Humane by construction: a hit is first checked against every reason to let it
pass (exempt role or member, an allowed window, a rule only for newcomers,
dry-run), and only then climbs the member's ladder for the rule's family one
step, from the warnings still in force (expired and overturned ones do not
count), never two steps within `min_step_seconds`, and never past the ladder's
last step (a member at the top is reported again, not punished harder).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from bot.config.playbooks.rules_section import Rule, RulesSection


@dataclass(frozen=True)
class PastStep:
    """A step the member already got for a rule family."""

    step: str
    at: datetime
    overturned: bool = False


@dataclass(frozen=True)
class MemberFacts:
    roles: frozenset[str]
    member_id: str
    joined_at: datetime | None  # None: unknown (joined before the bot watched)
    history: Sequence[PastStep] = ()  # this family's steps, oldest first


@dataclass(frozen=True)
class RuleDecision:
    """`step` is None when nothing is done; `reason` says why, for the review queue."""

    rule: str
    family: str
    step: str | None
    reason: str
    record: bool  # keep a violation row (hits in dry-run are kept for review)
    dry_run: bool = False
    in_force: int = 0  # the member's warnings still in force before this hit


def pass_reason(
    rule: Rule, exempt_roles: Sequence[str], member: MemberFacts, *, at: datetime, tz: tzinfo
) -> str | None:
    """Why the rule lets this member's message pass, or None: every rule, whatever its
    action, leaves exempt roles and members alone, and sleeps in its allowed windows."""
    exempt = sorted(member.roles & set(exempt_roles))
    if exempt:
        return f"exempt role: {', '.join(exempt)}"
    if member.member_id in rule.exempt_members:
        return "exempt member"
    local = at.astimezone(tz)
    for window in rule.allow_windows:
        if window.contains(local):
            return "inside an allowed window"
    if rule.new_members_days is not None:
        joined = member.joined_at
        if joined is None or at - joined >= timedelta(days=rule.new_members_days):
            return f"not a new member (rule is for the first {rule.new_members_days} days)"
    return None


def decide_hit(
    rules: RulesSection,
    rule: Rule,
    member: MemberFacts,
    *,
    at: datetime,
    tz: tzinfo,
) -> RuleDecision:
    family = rule.ladder_family
    passing = pass_reason(rule, rules.exempt_roles_of(rule), member, at=at, tz=tz)
    if passing is not None:
        return RuleDecision(rule.name, family, None, passing, record=False)

    live = [
        past
        for past in member.history
        if not past.overturned and at - past.at < timedelta(days=rules.warning_ttl_days)
    ]
    if live and (at - live[-1].at).total_seconds() < rules.min_step_seconds:
        return RuleDecision(
            rule.name,
            family,
            None,
            f"a step was taken {int((at - live[-1].at).total_seconds())} s ago",
            record=True,
            in_force=len(live),
        )
    step = rules.ladder[min(len(live), len(rules.ladder) - 1)]
    reason = f"warnings in force: {len(live)}" if live else "first hit"
    if rules.is_dry_run(rule):
        return RuleDecision(
            rule.name, family, None, f"dry run: would {step}", True, True, in_force=len(live)
        )
    return RuleDecision(rule.name, family, step, reason, record=True, in_force=len(live))


@dataclass(frozen=True)
class CollectDecision:
    """What a hit of a rule with `action: collect` does: `collect` the message as a
    demand post (no violation, no ladder step, no points), or let it pass (`reason`)."""

    rule: str
    collect: bool
    reason: str
    dry_run: bool = False  # kept for an operator's approval, nobody told, nothing stopped


def decide_collect(
    rules: RulesSection,
    rule: Rule,
    member: MemberFacts,
    *,
    question: bool,
    at: datetime,
    tz: tzinfo,
) -> CollectDecision:
    """`question`: the message is a short question for the group (大家招聘都用什么渠道？),
    which members can answer now; it is not a post for tomorrow's 早报."""
    passing = pass_reason(rule, rules.exempt_roles_of(rule), member, at=at, tz=tz)
    if passing is not None:
        return CollectDecision(rule.name, False, passing)
    if question:
        return CollectDecision(rule.name, False, "a question for the group, not a demand post")
    if rules.is_dry_run(rule):
        return CollectDecision(rule.name, True, "dry run: kept for approval", dry_run=True)
    return CollectDecision(rule.name, True, f"collected as {rule.collect_kind}")
