"""Collecting a demand post a group rule with `action: collect` found (called by the
rules handler, handlers/features/rules/handler.py, after `decide_collect` said so).

The post is kept (`RecordDemand`; a duplicate merges into the first) and the member
gets one kind note, at most one a local day: privately to an internal member, in the
group where the playbook asks for it and the bot posts at once, and nothing to a
customer (a private message to a customer needs the owner to confirm it; not worth it
for a courtesy). In dry run the post waits for an operator's approval and nobody is
told.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bot.config.playbooks import Playbook
from handlers.channels import group_channel, private_channel
from handlers.core.actions import Action, Note, QueueGroupText, QueuePrivateText
from handlers.core.context import Context
from handlers.features.demands import texts
from handlers.features.demands.posts import clip, tidy
from handlers.features.demands.store import NewDemand, submit
from storage.models import Group, Membership, OutboxItem

NOTE_ORIGIN = "demand_note"


@dataclass(frozen=True)
class RecordDemand(Action):
    """Keep a demand post, or merge it into the recent post it duplicates."""

    post: NewDemand


async def apply_record(action: RecordDemand, ctx: Context) -> None:
    submitted = await submit(ctx.session, action.post)
    ctx.note(f"demand post {submitted.post.id} ({action.post.kind}): {submitted.outcome}")


def demand_of(
    *,
    kind: str,
    text: str,
    member_id: str,
    name: str,
    chat_id: str,
    source_key: str,
    at: datetime,
    playbook: Playbook,
    dry_run: bool,
) -> NewDemand | None:
    """The post a group message makes (scoped to its group), or None when nothing of
    the text is left to publish."""
    section = playbook.demands
    shown = clip(tidy(text), section.max_chars)
    if not shown:
        return None
    return NewDemand(
        kind=kind,
        text=shown,
        source_key=source_key[:200],
        at=at,
        member_id=member_id,
        name=name[:64],
        chat_id=chat_id,
        scope=(chat_id,),
        approval=section.approval or dry_run,
        dedup_days=section.dedup_days,
    )


async def note_action(
    ctx: Context,
    *,
    post: NewDemand,
    group: Group,
    group_name: str,
    playbook: Playbook,
    membership: Membership | None,
) -> Action | None:
    """The member's one note of the day, or None (the playbook says none, a customer,
    a group the bot cannot post in, or already told today)."""
    section = playbook.demands
    member = post.member_id
    assert member is not None
    day = post.at.astimezone(ctx.tz).date().isoformat()
    key = f"{NOTE_ORIGIN}:{member}:{day}"[:200]
    approval = post.approval
    action: Action | None = None
    if section.note == "group" and group_channel(group.channel_type).capabilities.immediate:
        text = texts.group_note(post.name, post.kind, approval=approval)
        action = QueueGroupText(group.chat_id, text, NOTE_ORIGIN, key=key, member_id=member)
    elif section.note == "private":
        channel = private_channel(member, membership.member_type if membership else None)
        if channel.capabilities.immediate:  # internal members; customers are not messaged
            text = texts.private_note(group_name, post.kind, approval=approval)
            action = QueuePrivateText(group.chat_id, member, text, NOTE_ORIGIN, key=key)
    if action is None or await noted_already(ctx, key):
        return None
    return action


async def noted_already(ctx: Context, key: str) -> bool:
    """A note with this key was queued before, or earlier in this batch: the outbox's
    key is unique, so a second one must not be queued at all."""
    memo = (NOTE_ORIGIN, key)
    if memo in ctx.memo.extra:
        return True
    ctx.memo.extra[memo] = True
    found = await ctx.session.scalar(select(OutboxItem.id).where(OutboxItem.dedup_key == key))
    return found is not None


async def collect_actions(
    ctx: Context,
    *,
    post: NewDemand,
    group: Group,
    group_name: str,
    playbook: Playbook,
    membership: Membership | None,
    dry_run: bool,
) -> list[Action]:
    actions: list[Action] = [RecordDemand(post)]
    if dry_run:
        actions.append(Note(f"demand post ({post.kind}) kept for review: the rule is in dry run"))
        return actions
    note = await note_action(
        ctx,
        post=post,
        group=group,
        group_name=group_name,
        playbook=playbook,
        membership=membership,
    )
    if note is not None:
        actions.append(note)
    return actions
