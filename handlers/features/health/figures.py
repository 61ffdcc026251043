"""A group's week in figures, each beside its goal line (pure: rows in, report out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel

from bot.config.playbooks.health_section import HealthSection
from handlers.features.health.signals import LoggedMessage, first_answers, member_rounds


@dataclass(frozen=True)
class Join:
    member_id: str
    invitor: str | None
    invitor_is_staff: bool


@dataclass(frozen=True)
class WeekFacts:
    """What the figures are computed from; `messages` in time order, not taken back."""

    messages: Sequence[LoggedMessage]
    hosts: frozenset[str]  # owner, admins, staff: "the host" of the seeds' rounds
    present: frozenset[str]  # members in the group at the week's end (hosts included)
    tiers: Mapping[str, str]  # member → pyramid tier, for present non-host members above 普通
    joins: Sequence[Join]
    leaves: int
    leads: Mapping[str, int] | None = None  # stage → members of this group marked; None: none


class Figure(BaseModel):
    value: float | int | None
    goal: float | int
    meets: bool | None  # None: nothing to judge (e.g. no question was asked)


class ActiveRate(Figure):
    active: int
    members: int


class Questions(Figure):
    asked: int
    answered_by_members: int
    answered_by_staff: int
    unanswered: int


class Tier(BaseModel):
    tier: str
    members: int
    share: float
    target: float


class Size(BaseModel):
    members: int
    cap: int
    alert_at: int
    alert: bool


class Growth(BaseModel):
    joins: int
    leaves: int
    invited_by_members: int
    invited_by_staff: int
    not_invited: int  # QR code or link
    organic_share: float | None  # invited by members ÷ invited by anyone


class Leads(Figure):
    by_stage: dict[str, int]
    marked: int


class Report(BaseModel):
    members: int  # present members who are not hosts: the denominators
    active_rate: ActiveRate
    interaction_rounds: Figure
    questions: Questions
    pyramid: list[Tier]
    size: Size
    growth: Growth
    leads: Leads | None
    below_goal: list[str]  # the figures under their goal line, for the weekly digest


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(facts: WeekFacts, goals: HealthSection) -> Report:
    window = timedelta(minutes=goals.thread_minutes)
    members = facts.present - facts.hosts
    speakers = {m.member_id for m in facts.messages}

    active = len(members & speakers)
    rate = share(active, len(members))
    active_rate = ActiveRate(
        value=rate,
        goal=goals.active_rate,
        meets=None if rate is None else rate >= goals.active_rate,
        active=active,
        members=len(members),
    )

    rounds = member_rounds(facts.messages, facts.hosts, window)
    interaction = Figure(value=rounds, goal=goals.rounds, meets=rounds >= goals.rounds)

    answers = first_answers(facts.messages, window)
    by_staff = sum(1 for a in answers if a.answerer is not None and a.answerer in facts.hosts)
    by_members = sum(1 for a in answers if a.answerer is not None and a.answerer not in facts.hosts)
    member_share = share(by_members, by_members + by_staff)
    questions = Questions(
        value=member_share,
        goal=goals.member_answer_share,
        meets=None if member_share is None else member_share >= goals.member_answer_share,
        asked=len(answers),
        answered_by_members=by_members,
        answered_by_staff=by_staff,
        unanswered=len(answers) - by_members - by_staff,
    )

    counted = Counter(facts.tiers.get(m, goals.ordinary_tier) for m in members)
    pyramid = [
        Tier(
            tier=t.tier,
            members=counted.get(t.tier, 0),
            share=share(counted.get(t.tier, 0), len(members)) or 0.0,
            target=t.share,
        )
        for t in goals.pyramid
    ]

    size = Size(
        members=len(facts.present),
        cap=goals.size_cap,
        alert_at=goals.size_alert,
        alert=len(facts.present) >= goals.size_alert,
    )

    invited_by_members = sum(1 for j in facts.joins if j.invitor and not j.invitor_is_staff)
    invited_by_staff = sum(1 for j in facts.joins if j.invitor and j.invitor_is_staff)
    growth = Growth(
        joins=len(facts.joins),
        leaves=facts.leaves,
        invited_by_members=invited_by_members,
        invited_by_staff=invited_by_staff,
        not_invited=len(facts.joins) - invited_by_members - invited_by_staff,
        organic_share=share(invited_by_members, invited_by_members + invited_by_staff),
    )

    leads: Leads | None = None
    if facts.leads is not None:
        marked = sum(facts.leads.values())
        conversion = share(marked, len(members))
        leads = Leads(
            value=conversion,
            goal=goals.lead_conversion,
            meets=None if conversion is None else conversion >= goals.lead_conversion,
            by_stage=dict(facts.leads),
            marked=marked,
        )

    below = [
        name
        for name, figure in (
            ("active_rate", active_rate),
            ("interaction_rounds", interaction),
            ("questions", questions),
            ("leads", leads),
        )
        if figure is not None and figure.meets is False
    ]
    if size.alert:
        below.append("size")
    return Report(
        members=len(members),
        active_rate=active_rate,
        interaction_rounds=interaction,
        questions=questions,
        pyramid=pyramid,
        size=size,
        growth=growth,
        leads=leads,
        below_goal=below,
    )
