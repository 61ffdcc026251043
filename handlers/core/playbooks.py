"""Which playbook drives a group: every feature asks this, so it lives in the core."""

from __future__ import annotations

from bot.config.playbooks import Playbook, PlaybookSet
from storage.models import Group


def playbook_for(playbooks: PlaybookSet, group: Group) -> Playbook:
    return playbooks.for_group(group.chat_id, list(group.tags or []))
