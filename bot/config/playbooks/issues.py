"""What a rejected playbook set reports: one issue per problem, file:line:field."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

__all__ = ["DIRECTORY", "FILE", "ROOT", "YAML", "PlaybookIssue", "PlaybookLoadError"]

# `field` for problems that are not about one key.
ROOT = "(root)"
YAML = "(yaml)"
FILE = "(file)"
DIRECTORY = "(directory)"


class PlaybookIssue(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str
    """Name relative to the playbook directory; the directory itself for directory problems."""
    line: int | None
    """1-based YAML line, or None when there is no line to point at."""
    field: str
    """Dotted path such as ``touch_sequence.steps.1.at``."""
    message: str

    def __str__(self) -> str:
        line = "?" if self.line is None else str(self.line)
        return f"{self.file}:{line}:{self.field}: {self.message}"


class PlaybookLoadError(Exception):
    """The directory does not make a valid playbook set; ``issues`` says why."""

    def __init__(self, issues: Iterable[PlaybookIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
