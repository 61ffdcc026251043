"""``wecom-bot templates check|schema`` as pure functions; bot/cli.py wires them into typer."""

from __future__ import annotations

import json
from pathlib import Path

from bot.config.playbooks.loader import PlaybookLoadError, load_playbooks
from bot.config.playbooks.models import Playbook

__all__ = ["check_command", "schema_command"]


def check_command(directory: Path) -> tuple[int, str]:
    """Exit code and output: one ``file:line:field: message`` line per issue, or a summary."""
    try:
        playbooks = load_playbooks(directory)
    except PlaybookLoadError as exc:
        return 1, "\n".join(str(issue) for issue in exc.issues)
    names = ", ".join(playbooks.playbooks)
    return 0, f"{len(playbooks)} playbooks OK: {names}"


def schema_command() -> str:
    """JSON Schema of a playbook file, for editor completion (yaml-language-server etc.)."""
    return json.dumps(Playbook.model_json_schema(), ensure_ascii=False, indent=2)
