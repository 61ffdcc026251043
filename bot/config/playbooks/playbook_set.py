"""A loaded, valid set of playbooks and which one a group follows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bot.config.playbooks.models import Playbook

__all__ = ["DEFAULT_PLAYBOOK", "PlaybookSet"]

DEFAULT_PLAYBOOK = "default"


class PlaybookSet:
    """Immutable once built; the store swaps whole sets on reload."""

    def __init__(self, playbooks: Mapping[str, Playbook]) -> None:
        if DEFAULT_PLAYBOOK not in playbooks:
            raise ValueError(f"a playbook set needs a '{DEFAULT_PLAYBOOK}' playbook")
        self.playbooks: dict[str, Playbook] = dict(sorted(playbooks.items()))
        self._by_chat_id = {
            chat_id: playbook
            for playbook in self.playbooks.values()
            for chat_id in playbook.applies_to.chat_ids
        }
        # Every handler asks for every message; the answer never changes for a set.
        self._chosen: dict[tuple[str, tuple[str, ...]], Playbook] = {}

    @property
    def default(self) -> Playbook:
        return self.playbooks[DEFAULT_PLAYBOOK]

    def for_group(self, chat_id: str, tags: Sequence[str]) -> Playbook:
        """The playbook listing chat_id, else most shared tags (ties: name order), else default."""
        key = (chat_id, tuple(tags))
        if (chosen := self._chosen.get(key)) is None:
            chosen = self._chosen[key] = self._choose(chat_id, tags)
        return chosen

    def _choose(self, chat_id: str, tags: Sequence[str]) -> Playbook:
        if (listed := self._by_chat_id.get(chat_id)) is not None:
            return listed
        group_tags = set(tags)
        best, best_overlap = self.default, 0
        for playbook in self.playbooks.values():  # name order, so the first best wins a tie
            overlap = len(group_tags.intersection(playbook.applies_to.tags))
            if overlap > best_overlap:
                best, best_overlap = playbook, overlap
        return best

    def bindings(self, groups: Iterable[tuple[str, Sequence[str]]]) -> dict[str, list[str]]:
        """Playbook name → chat ids following it; every playbook appears, even unused."""
        bound: dict[str, list[str]] = {name: [] for name in self.playbooks}
        for chat_id, tags in groups:
            bound[self.for_group(chat_id, tags).name].append(chat_id)
        return bound

    def __len__(self) -> int:
        return len(self.playbooks)

    def __repr__(self) -> str:
        return f"PlaybookSet({', '.join(self.playbooks)})"
