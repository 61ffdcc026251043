"""The rules feature's handlers: read the facts, ask the pure decisions, return actions.

A group message is matched against its playbook's rules (the automaton is built
off the event loop once per playbook version), plus flood and repeated text from
the message log and the raid guard's strict mode. Each hit goes through
`decide_hit` (exemptions, windows, dry run, the member's ladder); at most one step
is taken per message, and it is delivered the way the group's channel allows:
privately or in the group where the bot can, as an owner task where it cannot.
An appeal word from a member with a recent step puts it in the review queue.
A rule with `action: collect` instead keeps the message as a demand post for the 早报
(`decide_collect`, handlers/features/demands/collect.py): no violation, no step, no
points; the first rule in playbook order that acts on a message decides.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.playbooks import Playbook
from bot.config.playbooks.rules_section import Rule, RulesSection
from handlers.channels import customer_sender, group_channel, private_channel
from handlers.core.actions import Action, Note, QueueGroupText, QueuePrivateText, Stop
from handlers.core.context import Context
from handlers.core.events import Event, MemberJoined, Message
from handlers.core.playbooks import playbook_for
from handlers.features import copilot
from handlers.features.demands.collect import collect_actions, demand_of
from handlers.features.demands.posts import reads_as_question
from handlers.features.message_log import LogMessage
from handlers.features.points.penalties import penalty_points
from handlers.features.roles import roles_of
from handlers.features.rules import texts
from handlers.features.rules.decide import (
    MemberFacts,
    RuleDecision,
    decide_collect,
    decide_hit,
)
from handlers.features.rules.matching import (
    Hit,
    MessageView,
    RuleMatcher,
    RuleSpec,
    cached_matcher,
    matcher_for,
    normalize,
    text_fingerprint,
)
from handlers.features.rules.texts import HitStory
from handlers.features.rules.violations import (
    DRY_RUN,
    HELD,
    TAKEN,
    MarkAppealed,
    RecordViolation,
    RemoveMember,
    StartRaidGuard,
    active_raid,
    appealable,
    ladder_history,
)
from handlers.features.welcome import group_vars
from storage.members import get_membership
from storage.models import Group, Membership, MessageLog, RaidGuardState, Violation

RAID_RULE = "raid_guard"
# Groups the platform lets the bot remove members from: those the app created.
REMOVABLE_IN = frozenset({"appchat"})
_RAID_MATCHER = RuleMatcher((RuleSpec(RAID_RULE, links=True, contact=True),))


async def matcher_of(rules: RulesSection) -> RuleMatcher:
    """Built off the event loop the first time a playbook version is used."""
    built = cached_matcher(rules)
    return built if built is not None else await asyncio.to_thread(matcher_for, rules)


def is_robot(member_id: str) -> bool:
    return member_id.startswith("wb")


def view_of(event: Message) -> MessageView:
    text = (
        event.text
        if event.title is None or event.title in event.text
        else (f"{event.title} {event.text}")
    )
    return MessageView(
        kind=event.msgtype,
        text=text,
        urls=tuple(event.urls),
        weapp=event.weapp,
        card_user=event.card_user,
    )


# --- messages ----------------------------------------------------------------------


async def on_message(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, Message)
    if event.msgtype == "revoke" or not event.sender or is_robot(event.sender):
        return []
    if event.chat_type != "group" or not event.chat_id:
        return await private_appeal(event, ctx)
    group = await ctx.group(event.chat_id)
    if group is None:
        return []
    playbook = playbook_for(ctx.playbooks, group)
    rules = playbook.rules
    if rules is None or not rules.enabled:
        return []
    if is_appeal(event.text, rules.appeal_word):
        appealed = await group_appeal(event, group, playbook, rules, ctx)
        if appealed:
            return appealed
    hits = await hits_of(event, rules, ctx)
    suspect = await raid_suspect(event, rules, ctx)
    if not hits and suspect is None:
        return []
    membership = await get_membership(ctx.session, group.chat_id, event.sender)
    raid = None
    if suspect is not None and is_newcomer(membership, suspect[0], rules):
        raid = suspect[1]
    if not hits and raid is None:
        return []
    roles = await roles_of(ctx.session, group.chat_id, event.sender)
    if raid is not None and not roles & set(rules.exempt_roles):
        return raid_report(event, raid, group, playbook, rules, membership)
    return await act_on_hits(event, hits, group, playbook, rules, membership, roles, ctx)


async def hits_of(event: Message, rules: RulesSection, ctx: Context) -> list[Hit]:
    """The rules the message hits: the matchers, flood and repeated text."""
    hits = (await matcher_of(rules)).hits(view_of(event)) if rules.items else []
    return hits + await window_hits(event, rules, ctx)


async def raid_suspect(
    event: Message, rules: RulesSection, ctx: Context
) -> tuple[RaidGuardState, Hit] | None:
    """A link or a contact while the group is in the raid guard's strict mode (whether
    the sender is a newcomer is `is_newcomer`'s question)."""
    assert event.chat_id
    if rules.raid_guard is None:
        return None
    guard = await active_raid(ctx, event.chat_id, event.occurred_at)
    found = _RAID_MATCHER.hits(view_of(event)) if guard is not None else []
    return (guard, Hit(RAID_RULE, "raid", found[0].evidence)) if guard and found else None


def is_newcomer(membership: Membership | None, guard: RaidGuardState, rules: RulesSection) -> bool:
    """Joined with the burst that tripped the guard, or after it."""
    if membership is None or rules.raid_guard is None:
        return False
    return membership.joined_at >= guard.started_at - timedelta(seconds=rules.raid_guard.seconds)


async def window_hits(event: Message, rules: RulesSection, ctx: Context) -> list[Hit]:
    """Flood (N messages in T seconds) and repeated text, from one read of the member's
    recent messages (the message log and what this batch has not written to it yet)."""
    windows = [
        seconds
        for rule in rules.items
        for seconds in (
            rule.match.flood.seconds if rule.match.flood else None,
            rule.match.repeat.seconds if rule.match.repeat else None,
        )
        if seconds is not None
    ]
    if not windows:
        return []
    recent = await recent_messages(ctx, event, event.occurred_at - timedelta(seconds=max(windows)))
    fingerprint = text_fingerprint(event.text)
    found: list[Hit] = []
    for rule in rules.items:
        flood, repeat = rule.match.flood, rule.match.repeat
        if flood is not None:
            since = event.occurred_at - timedelta(seconds=flood.seconds)
            count = sum(1 for at, _ in recent if at >= since)
            if count >= flood.messages:
                found.append(Hit(rule.name, "flood", f"{flood.seconds} 秒内 {count} 条"))
                continue
        if repeat is not None and fingerprint is not None:
            since = event.occurred_at - timedelta(seconds=repeat.seconds)
            count = sum(1 for at, digest in recent if at >= since and digest == fingerprint)
            if count >= repeat.times:
                found.append(Hit(rule.name, "repeat", f"同样的内容发了 {count} 次"))
    return found


RECENT_KEPT = 1000  # more than any threshold (flood ≤ 200 messages, repeat ≤ 50 times)


@dataclass
class ChatWindow:
    """The group's logged messages from `since` on, read once per batch: a busy group's
    messages then cost one query a batch, not one each."""

    since: datetime
    by_member: dict[str, list[tuple[datetime, str | None]]]


async def chat_window(ctx: Context, chat_id: str, since: datetime) -> ChatWindow:
    key = ("log_window", chat_id)
    window: ChatWindow | None = ctx.memo.extra.get(key)
    # A batch runs a chat's events in order, so later ones need no earlier rows; a
    # message older than the window read (out of order) reads again.
    if window is None or since < window.since or ctx.deferred is None:
        rows = await ctx.session.execute(
            select(MessageLog.member_id, MessageLog.sent_at, MessageLog.text_hash).where(
                MessageLog.chat_id == chat_id,
                MessageLog.sent_at >= since,
                MessageLog.revoked_at.is_(None),
            )
        )
        by_member: dict[str, list[tuple[datetime, str | None]]] = {}
        for member, at, digest in rows:
            by_member.setdefault(member, []).append((at, digest))
        window = ChatWindow(since, by_member)
        ctx.memo.extra[key] = window
    return window


async def recent_messages(
    ctx: Context, event: Message, since: datetime
) -> list[tuple[datetime, str | None]]:
    """(time, text digest) of the member's messages in the group from `since` up to this
    one, not taken back: the log's rows and this batch's pending ones."""
    assert event.chat_id
    window = await chat_window(ctx, event.chat_id, since)
    recent = [
        (at, digest)
        for at, digest in window.by_member.get(event.sender, ())
        if since <= at <= event.occurred_at
    ][-RECENT_KEPT:]
    if ctx.deferred is not None:  # this batch's log rows are written at its end
        for entry in ctx.deferred.actions.get(LogMessage, ()):
            assert isinstance(entry, LogMessage)
            if (
                entry.chat_id == event.chat_id
                and entry.member_id == event.sender
                and entry.revokes is None
                and since <= entry.at <= event.occurred_at
            ):
                recent.append((entry.at, entry.text_hash))
    return recent


async def act_on_hits(
    event: Message,
    hits: list[Hit],
    group: Group,
    playbook: Playbook,
    rules: RulesSection,
    membership: Membership | None,
    roles: frozenset[str],
    ctx: Context,
) -> list[Action]:
    """At most one step per message: the first rule (in playbook order) that acts."""
    assert event.chat_id
    by_name = {rule.name: rule for rule in rules.items}
    at = event.occurred_at
    actions: list[Action] = []
    acted: str | None = None
    for hit in hits:
        rule = by_name[hit.rule]
        if rule.collects:
            if acted is not None:
                actions.append(Note(f"rule {rule.name}: not collected, rule {acted} acted"))
                continue
            collected, stops = await collect_hit(
                event, rule, group, playbook, rules, membership, roles, ctx
            )
            actions += collected
            if stops:
                # A demand post, not a violation of the rules after it either.
                actions.append(Stop(f"rule {rule.name} collected a demand post"))
                return actions
            continue
        history = await ladder_history(
            ctx.session,
            chat_id=group.chat_id,
            member_id=event.sender,
            family=rule.ladder_family,
            since=at - timedelta(days=rules.warning_ttl_days),
            until=at,
        )
        facts = MemberFacts(
            roles=roles,
            member_id=event.sender,
            joined_at=membership.joined_at if membership is not None else None,
            history=history,
        )
        decision = decide_hit(rules, rule, facts, at=at, tz=ctx.tz)
        if not decision.record:
            actions.append(Note(f"rule {rule.name}: {event.sender} passes ({decision.reason})"))
            continue
        if acted is not None and decision.step is not None:
            decision = RuleDecision(
                rule.name,
                decision.family,
                None,
                f"rule {acted} acted on this message",
                record=True,
            )
        status = TAKEN if decision.step else (DRY_RUN if decision.dry_run else HELD)
        penalty = penalty_points(playbook.points, decision.step)
        actions.append(record_of(event, hit, decision, status, penalty=penalty))
        if decision.step is None:
            continue
        acted = rule.name
        story = texts.story(
            rules,
            rule,
            matcher=hit.matcher,
            evidence=hit.evidence,
            text=view_of(event).text or texts_of_kind(event),
            member_name=texts.member_name(membership, playbook),
            group_name=group_vars(group)["name"],
            count=decision.in_force + 1,
        )
        actions += deliver(decision.step, story, event, group, playbook, membership)
    if acted is not None:
        actions.append(Stop(f"rule {acted} acted on the message"))
    return actions


async def collect_hit(
    event: Message,
    rule: Rule,
    group: Group,
    playbook: Playbook,
    rules: RulesSection,
    membership: Membership | None,
    roles: frozenset[str],
    ctx: Context,
) -> tuple[list[Action], bool]:
    """A hit of a collect rule: the post kept (and the member told once a day), or a
    note why not; True when the message is collected and nothing else may act on it."""
    assert event.chat_id
    facts = MemberFacts(
        roles=roles,
        member_id=event.sender,
        joined_at=membership.joined_at if membership is not None else None,
    )
    text = view_of(event).text
    decision = decide_collect(
        rules, rule, facts, question=reads_as_question(text), at=event.occurred_at, tz=ctx.tz
    )
    assert rule.collect_kind is not None
    post = (
        demand_of(
            kind=rule.collect_kind,
            text=text,
            member_id=event.sender,
            name=texts.member_name(membership, playbook),
            chat_id=group.chat_id,
            source_key=f"msg:{event.msg_id}" if event.msg_id else (ctx.source_id or ""),
            at=event.occurred_at,
            playbook=playbook,
            dry_run=decision.dry_run,
        )
        if decision.collect
        else None
    )
    if post is None:
        return [Note(f"rule {rule.name}: {event.sender} passes ({decision.reason})")], False
    collected = await collect_actions(
        ctx,
        post=post,
        group=group,
        group_name=group_vars(group)["name"],
        playbook=playbook,
        membership=membership,
        dry_run=decision.dry_run,
    )
    return collected, not decision.dry_run


def texts_of_kind(event: Message) -> str:
    return {"weapp": "[小程序]", "card": "[名片]", "link": "[链接]"}.get(event.msgtype, "")


def record_of(
    event: Message, hit: Hit, decision: RuleDecision, status: str, *, penalty: int = 0
) -> RecordViolation:
    assert event.chat_id
    return RecordViolation(
        chat_id=event.chat_id,
        member_id=event.sender,
        rule=hit.rule,
        family=decision.family,
        step=decision.step,
        status=status,
        reason=decision.reason,
        matcher=hit.matcher,
        evidence=hit.evidence,
        at=event.occurred_at,
        msg_id=event.msg_id,
        penalty=penalty,
    )


def deliver(
    step: str,
    story: HitStory,
    event: Message,
    group: Group,
    playbook: Playbook,
    membership: Membership | None,
) -> list[Action]:
    """The step, the way the group's channel allows. A customer group takes nothing at
    once: the owner and operators get the text to send themselves."""
    posts_at_once = group_channel(group.channel_type).capabilities.immediate
    member = event.sender

    def task(summary: str, paste_text: str | None = None) -> Action:
        return copilot.assign(
            group,
            playbook,
            origin=f"rule_{step}",
            summary=summary,
            paste_text=paste_text,
            member_id=member,
        )

    if step == "remind":
        text = texts.remind_text(story)
        if posts_at_once and reachable_privately(group, membership, member):
            return [QueuePrivateText(group.chat_id, member, text, "rule_remind")]
        return [task(texts.remind_task(story), text)]
    if step == "warn":
        text = texts.warn_text(story)
        if posts_at_once:
            return [QueueGroupText(group.chat_id, text, "rule_warn", member_id=member)]
        return [task(texts.warn_task(story), text)]
    if step == "remove" and group.channel_type in REMOVABLE_IN:
        return [
            QueueGroupText(group.chat_id, texts.remove_notice(story), "rule_remove"),
            RemoveMember(group.chat_id, member),
            task(texts.removed_summary(story)),
        ]
    # report, and remove where WeCom does not let the bot: a person decides.
    return [task(texts.remove_summary(story) if step == "remove" else texts.report_summary(story))]


def reachable_privately(group: Group, membership: Membership | None, member_id: str) -> bool:
    """An internal member by app message; a customer by the owner-confirmed private
    message, which needs someone to send it (the channel's sender or the owner)."""
    channel = private_channel(member_id, membership.member_type if membership else None)
    if channel.capabilities.immediate:
        return True
    return customer_sender(dict(group.channel_config or {}), group.owner) is not None


def raid_report(
    event: Message,
    hit: Hit,
    group: Group,
    playbook: Playbook,
    rules: RulesSection,
    membership: Membership | None,
) -> list[Action]:
    """In strict mode a newcomer's link or contact goes to the owner as a report; the
    group's one notice already told members, so nobody is reminded one by one."""
    decision = RuleDecision(RAID_RULE, RAID_RULE, "report", "raid guard: newcomer", record=True)
    story = texts.story(
        rules,
        None,
        matcher="raid",
        evidence=hit.evidence,
        text=view_of(event).text,
        member_name=texts.member_name(membership, playbook),
        group_name=group_vars(group)["name"],
        count=1,
    )
    summary = (
        f"防突击入群保护期间，新成员 {story.member_name} 发了 {story.evidence}，"
        f"原话：「{story.excerpt}」。请看一眼是否是广告号。"
    )
    return [
        record_of(event, hit, decision, TAKEN),
        copilot.assign(
            group, playbook, origin="raid_report", summary=summary, member_id=event.sender
        ),
        Stop("raid guard reported the message"),
    ]


# --- appeals -----------------------------------------------------------------------


def is_appeal(text: str, word: str) -> bool:
    """The message starts with the appeal word, after any @-mentions (a reply to the bot)."""
    said = normalize(text).strip()
    while said.startswith("@"):
        _, _, said = said.partition(" ")
        said = said.strip()
    return bool(said) and said.startswith(normalize(word).strip())


async def group_appeal(
    event: Message, group: Group, playbook: Playbook, rules: RulesSection, ctx: Context
) -> list[Action]:
    since = event.occurred_at - timedelta(hours=rules.appeal_window_hours)
    found = await appealable(
        ctx.session, member_id=event.sender, chat_id=group.chat_id, since=since
    )
    if not found:
        return []
    return await appeal_actions(event, found[0].id, group, playbook, rules, ctx)


async def private_appeal(event: Message, ctx: Context) -> list[Action]:
    """An appeal word sent to the app privately: the newest step still open to appeal,
    in whichever group, by that group's playbook."""
    words = {
        playbook.rules.appeal_word
        for playbook in ctx.playbooks.playbooks.values()
        if playbook.rules is not None
    }
    if not any(is_appeal(event.text, word) for word in words):
        return []  # most private messages: no query
    longest = timedelta(hours=720)
    candidates = await appealable(
        ctx.session, member_id=event.sender, chat_id=None, since=event.occurred_at - longest
    )
    for violation in candidates:
        group = await ctx.group(violation.chat_id)
        if group is None:
            continue
        playbook = playbook_for(ctx.playbooks, group)
        rules = playbook.rules
        if rules is None or not is_appeal(event.text, rules.appeal_word):
            continue
        if event.occurred_at - violation.created_at > timedelta(hours=rules.appeal_window_hours):
            continue
        return await appeal_actions(event, violation.id, group, playbook, rules, ctx)
    return []


async def appeal_actions(
    event: Message,
    violation_id: int,
    group: Group,
    playbook: Playbook,
    rules: RulesSection,
    ctx: Context,
) -> list[Action]:
    violation = await ctx.session.get(Violation, violation_id)
    assert violation is not None
    title = texts.rule_title(rules, violation.rule)
    membership = await get_membership(ctx.session, group.chat_id, event.sender)
    name = texts.member_name(membership, playbook)
    actions: list[Action] = [
        MarkAppealed(violation.id, event.text, event.occurred_at),
        copilot.assign(
            group,
            playbook,
            origin="appeal",
            summary=texts.appeal_task(name, title, violation.step, event.text),
            member_id=event.sender,
        ),
    ]
    if group_channel(group.channel_type).capabilities.immediate:
        actions.append(
            QueuePrivateText(
                group.chat_id, event.sender, texts.appeal_received_text(name, title), "appeal_ack"
            )
        )
    actions.append(Stop("an appeal, not a message for other features"))
    return actions


# --- joins: the raid guard -----------------------------------------------------------


async def on_member_joined(event: Event, ctx: Context) -> list[Action]:
    assert isinstance(event, MemberJoined) and event.chat_id
    group = await ctx.group(event.chat_id)
    if group is None:
        return []
    playbook = playbook_for(ctx.playbooks, group)
    rules = playbook.rules
    guard = rules.raid_guard if rules is not None and rules.enabled else None
    if guard is None:
        return []
    at = max((m.join_time or event.occurred_at for m in event.members), default=event.occurred_at)
    if await active_raid(ctx, group.chat_id, at) is not None:
        return []
    joins = await recent_joins(
        ctx.session, group.chat_id, since=at - timedelta(seconds=guard.seconds), until=at
    )
    if joins < guard.joins:
        return []
    key = f"raid:{group.chat_id}:{at.isoformat()}"
    actions: list[Action] = [
        StartRaidGuard(group.chat_id, at, at + timedelta(minutes=guard.strict_minutes), joins)
    ]
    if group_channel(group.channel_type).capabilities.immediate:
        notice = texts.raid_notice(joins, guard.seconds, guard.strict_minutes)
        actions.append(QueueGroupText(group.chat_id, notice, "raid_notice", key=key))
    actions.append(
        copilot.assign(
            group,
            playbook,
            origin="raid_guard",
            summary=texts.raid_task(joins, guard.seconds, guard.strict_minutes),
            paste_text=None
            if group_channel(group.channel_type).capabilities.immediate
            else texts.raid_notice(joins, guard.seconds, guard.strict_minutes),
            key=key,
        )
    )
    return actions


async def recent_joins(
    session: AsyncSession, chat_id: str, *, since: datetime, until: datetime
) -> int:
    value = await session.execute(
        select(func.count()).where(
            Membership.chat_id == chat_id,
            Membership.joined_at >= since,
            Membership.joined_at <= until,
        )
    )
    return int(value.scalar_one())
