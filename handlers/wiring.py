"""Which feature handles what, in one readable place: event handlers by priority
group, the appliers of each feature's actions, and the kinds of scheduled work."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.core.executor import Executor
from handlers.core.registry import Registry
from handlers.features import copilot, demands, membership, message_log, touch, welcome
from handlers.features.content import keyword_answers, keyword_wait_kind
from handlers.features.points import checkin as points_checkin
from handlers.features.points import good_content
from handlers.features.points import invite as points_invite
from handlers.features.points import ledger as points
from handlers.features.points import penalties as points_penalties
from handlers.features.points import query as points_query
from handlers.features.rules import handler as rules
from handlers.features.rules import review, violations
from handlers.features.star import vote as star_vote
from handlers.features.weekly_digest.schedule import WeeklyDigestKind
from scheduler.engine import DueKind

# Priority groups: 0 bookkeeping (every later handler relies on it), 10 rules
# (may stop the rest), 20 welcome, 30 touch sequence, 40 lookup/points.
BOOKKEEPING, RULES, WELCOME, TOUCH, CONTENT = 0, 10, 20, 30, 40


@dataclass(frozen=True)
class Features:
    executor: Executor
    registry: Registry
    due_kinds: tuple[DueKind, ...]


def build_features() -> Features:
    executor = Executor()
    for feature in (membership, message_log, violations, review, copilot, points, welcome, touch):
        feature.register(executor)
    star_vote.register(executor)
    points_penalties.register(executor)
    keyword_answers.register(executor)
    demands.register(executor)  # the rules collect posts; the 早报 publishes them
    # One lookup index per service (runtime): built from its own database.
    answers = keyword_answers.KeywordAnswers()
    registry = Registry(executor)
    registry.add("member_joined", membership.record_joins, group=BOOKKEEPING)
    registry.add("member_left", membership.record_leaves, group=BOOKKEEPING)
    registry.add("message", membership.record_message, group=BOOKKEEPING)
    registry.add("message", message_log.record, group=BOOKKEEPING)
    for kind in ("group_created", "group_dismissed", "group_updated"):
        registry.add(kind, membership.record_group_change, group=BOOKKEEPING)
    registry.add("message", rules.on_message, group=RULES, name="rules")
    registry.add("member_joined", rules.on_member_joined, group=RULES, name="raid_guard")
    registry.add("member_joined", welcome.on_member_joined, group=WELCOME, name="welcome")
    registry.add("member_joined", touch.on_member_joined, group=TOUCH, name="touch_enroll")
    registry.add("member_left", touch.on_member_left, group=TOUCH, name="touch_stop")
    registry.add("message", touch.on_message, group=TOUCH, name="touch_opt_out")
    registry.add("message", points.on_message, group=CONTENT, name="points")
    registry.add("message", points_query.on_message, group=CONTENT, name="points_query")
    registry.add("message", answers.on_message, group=CONTENT, name="keyword_answers")
    registry.add("message", star_vote.on_message, group=CONTENT, name="star_vote")
    registry.add("message", good_content.on_message, group=CONTENT, name="good_content")
    registry.add(
        "member_joined", points_invite.on_member_joined, group=CONTENT, name="invite_points"
    )
    registry.add(
        "member_left", points_invite.on_member_left, group=CONTENT, name="invite_taken_back"
    )
    registry.add("message", points_checkin.on_message, group=CONTENT, name="checkin_points")
    due_kinds: tuple[DueKind, ...] = (
        welcome.WelcomeBatchKind(executor),
        touch.TouchStepKind(executor),
        copilot.OwnerDigestKind(executor),
        star_vote.StarOpenKind(executor),
        star_vote.StarCloseKind(executor),
        keyword_wait_kind.KeywordWaitKind(executor),
        WeeklyDigestKind(executor),
    )
    return Features(executor, registry, due_kinds)


def build_registry() -> Registry:
    return build_features().registry
