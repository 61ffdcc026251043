"""Reading one playbook file: its data plus the YAML nodes that say where each key is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.config.playbooks.issues import FILE, ROOT, YAML, PlaybookIssue

__all__ = ["SourceFile", "child_node", "parse_file"]

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 base-60 numbers.

    Under YAML 1.1 an unquoted ``at: 20:00`` is the integer 1200, which would
    turn every unquoted time into nonsense. Here it stays the string "20:00".
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
            |[-+]?0[0-7_]+
            |[-+]?(?:0|[1-9][0-9_]*)
            |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class SourceFile:
    label: str  # what issues call the file
    data: dict[str, Any]
    root: MappingNode

    def line_of(self, path: Sequence[str | int]) -> int | None:
        line, _ = locate_in(self.root, path)
        return line


def _issue(label: str, line: int | None, field: str, message: str) -> PlaybookIssue:
    return PlaybookIssue(file=label, line=line, field=field, message=message)


def parse_file(path: Path, label: str) -> tuple[SourceFile | None, list[PlaybookIssue]]:
    """Parse ``path``; the source is None when nothing usable could be read."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return None, [_issue(label, None, FILE, f"cannot read: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return None, [_issue(label, None, FILE, "not UTF-8 text; save the file as UTF-8")]

    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        detail = "; ".join(part for part in (exc.context, exc.problem) if part)
        return None, [_issue(label, line, YAML, f"invalid YAML: {detail}")]
    except yaml.YAMLError as exc:
        return None, [_issue(label, None, YAML, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()

    if root is None:
        return None, [_issue(label, None, ROOT, "the file is empty")]
    if not isinstance(root, MappingNode) or not isinstance(data, dict):
        return None, [
            _issue(label, root.start_mark.line + 1, ROOT, "expected a mapping of keys to values")
        ]
    return SourceFile(label, data, root), _duplicate_keys(label, root, ())


def _duplicate_keys(label: str, node: Node, path: tuple[str | int, ...]) -> list[PlaybookIssue]:
    # PyYAML keeps the last of two equal keys without a word; an operator who
    # pasted a second `text:` would never learn why the first one is ignored.
    issues: list[PlaybookIssue] = []
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            line = key.start_mark.line + 1
            if name is not None and name in seen:
                field = ".".join(str(p) for p in (*path, name))
                issues.append(
                    _issue(
                        label, line, field, f"duplicate key '{name}' (first at line {seen[name]})"
                    )
                )
            elif name is not None:
                seen[name] = line
            issues += _duplicate_keys(label, value, (*path, name if name is not None else "?"))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            issues += _duplicate_keys(label, item, (*path, index))
    return issues


def child_node(node: Node, part: str | int) -> tuple[int, Node] | None:
    """The node under ``part`` and the line to report for it (the key's line)."""
    if isinstance(node, MappingNode) and isinstance(part, str):
        for key, value in reversed(node.value):  # the last duplicate wins, as when loading
            if isinstance(key, ScalarNode) and key.value == part:
                return key.start_mark.line + 1, value
    elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None


def locate_in(root: Node, path: Sequence[str | int]) -> tuple[int, Node]:
    """Line and node of ``path``, or of its deepest existing ancestor."""
    line, node = root.start_mark.line + 1, root
    for part in path:
        found = child_node(node, part)
        if found is None:
            break
        line, node = found
    return line, node
