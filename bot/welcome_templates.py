"""Keeps WeCom's 入群欢迎语素材 in step with each playbook's customer_group_template.

In a customer group nothing can be posted at once, so the group welcome is WeCom's
own template, sent natively when someone joins. We create it (`add`, with
`notify=1` so owners are prompted to apply it in 群聊设置: no API binds a template
to a chat) and keep it current by content hash (`edit`). Only playbooks that drive
at least one customer group are synced: templates are capped at 100 per corp, and
`notify` interrupts owners.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config.playbooks import PlaybookSet
from bot.wecom.client import WeComClient
from bot.wecom.errors import WeComError
from storage.models import Group, WelcomeTemplate

log = logging.getLogger(__name__)


def template_body(text: str) -> dict[str, Any]:
    return {"text": {"content": text}}


def content_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def playbooks_with_customer_groups(session: AsyncSession, playbooks: PlaybookSet) -> set[str]:
    rows = await session.execute(
        select(Group.chat_id, Group.tags).where(
            Group.channel_type == "customer_group", Group.dismissed_at.is_(None)
        )
    )
    return {playbooks.for_group(chat_id, list(tags or [])).name for chat_id, tags in rows}


async def sync_welcome_templates(
    sessions: async_sessionmaker[AsyncSession],
    client: WeComClient,
    playbooks: PlaybookSet,
    *,
    now: datetime,
) -> dict[str, str]:
    """Create or update templates; returns playbook → what happened. Raises nothing."""
    outcome: dict[str, str] = {}
    async with sessions() as session:
        wanted = await playbooks_with_customer_groups(session, playbooks)
    for name in sorted(wanted):
        playbook = playbooks.playbooks[name]
        template = playbook.welcome.customer_group_template if playbook.welcome else None
        if template is None:
            continue
        body = template_body(template.text)
        digest = content_hash(body)
        try:
            outcome.update(await _sync_one(sessions, client, name, body, digest, now))
        except SQLAlchemyError as exc:  # e.g. a replica without the lock raced us
            outcome[name] = f"failed: {type(exc).__name__}"
            log.warning("welcome template for playbook %s not recorded: %s", name, exc)
    return outcome


async def _sync_one(
    sessions: async_sessionmaker[AsyncSession],
    client: WeComClient,
    name: str,
    body: dict[str, Any],
    digest: str,
    now: datetime,
) -> dict[str, str]:
    """Create or edit one playbook's template; {} when it is already current."""
    async with sessions() as session, session.begin():
        row = await session.get(WelcomeTemplate, name)
        if row is not None and row.content_hash == digest:
            return {}
        try:
            if row is None:
                template_id = await client.group_welcome_template_add({**body, "notify": 1})
                session.add(
                    WelcomeTemplate(
                        playbook=name, template_id=template_id, content_hash=digest, synced_at=now
                    )
                )
                return {name: "created"}
            try:
                await client.group_welcome_template_edit(row.template_id, body)
                result = "edited"
            except WeComError as exc:
                if exc.kind != "permanent":
                    raise
                # Deleted in the admin console, or created by another app: start over.
                row.template_id = await client.group_welcome_template_add({**body, "notify": 1})
                result = "re-created"
            row.content_hash = digest
            row.synced_at = now
            return {name: result}
        except WeComError as exc:
            log.warning("welcome template for playbook %s not synced: %s", name, exc)
            return {name: f"failed: {exc}"}
