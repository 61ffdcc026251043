"""``extends``: parent chains, the deep merge, and which file a merged value came from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from yaml.nodes import MappingNode, Node

from bot.config.playbooks.source import SourceFile, child_node

__all__ = ["NOT_INHERITED", "deep_merge", "locate", "merge_chain", "resolve_chains"]

# Who a playbook is and which groups it binds belong to the file itself; only
# sections are inherited, so a new section is inherited without touching this.
NOT_INHERITED = frozenset({"name", "description", "extends", "applies_to"})


def resolve_chains(
    parents: Mapping[str, str | None], broken: frozenset[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each playbook's chain, child first, and the problem of each one that has none.

    A problem is reported only on the file that causes it (an unknown parent,
    a member of a cycle). A playbook whose ancestor is broken or caught in
    someone else's cycle just has no chain: its own file is not at fault.
    """
    chains: dict[str, list[str]] = {}
    problems: dict[str, str] = {}
    for name in parents:
        chain = [name]
        while (parent := parents[chain[-1]]) is not None:
            if parent in chain:
                cycle = chain[chain.index(parent) :]
                if name in cycle:
                    problems[name] = "extends cycle: " + " → ".join([*cycle, parent])
                break
            if parent not in parents:
                if len(chain) == 1 and parent not in broken:
                    known = ", ".join(sorted(set(parents) - {name})) or "none"
                    problems[name] = f"extends unknown playbook '{parent}' (known: {known})"
                break
            chain.append(parent)
        else:
            chains[name] = chain
    return chains, problems


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``override`` (lists, scalars, null) wins."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merge_chain(chain: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge file data along a chain given child first."""
    sections: dict[str, Any] = {}
    for data in reversed(chain):
        sections = deep_merge(sections, {k: v for k, v in data.items() if k not in NOT_INHERITED})
    own = {k: v for k, v in chain[0].items() if k in NOT_INHERITED}
    return {**sections, **own}


def locate(chain: Sequence[SourceFile], path: Sequence[str | int]) -> tuple[str, int, Node]:
    """File, line and node that provided the merged value at ``path``.

    Follows the merge: while values are mappings every file in the chain may
    contribute keys; the first non-mapping value (child first) replaced the
    others, so from there on only that file counts.
    """
    candidates: list[tuple[SourceFile, Node]] = [(source, source.root) for source in chain]
    if path and path[0] in NOT_INHERITED:
        candidates = candidates[:1]
    owner: SourceFile = chain[0]
    node: Node = owner.root
    line = node.start_mark.line + 1
    for part in path:
        found = [
            (source, hit) for source, parent in candidates if (hit := child_node(parent, part))
        ]
        if not found:
            break
        owner, (line, node) = found[0]
        if isinstance(node, MappingNode):
            candidates = []
            for source, (_, value) in found:
                if not isinstance(value, MappingNode):
                    break
                candidates.append((source, value))
        else:
            candidates = [(owner, node)]
    return owner.label, line, node
