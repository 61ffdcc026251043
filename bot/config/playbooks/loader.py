"""Loading ``sop_templates/`` into a :class:`PlaybookSet`, and keeping the last good one.

``load_playbooks`` checks every file and reports every problem at once, each
as ``file:line:field: message``. Files are read in three passes:

1. parse each YAML file, keeping the node tree for line numbers;
2. resolve ``extends`` chains (unknown parents and cycles are reported on the
   file that names them);
3. merge each chain and validate the result with :class:`Playbook`; an error
   is reported in the file that provided the offending value, which may be a
   parent.

:class:`PlaybookStore` serves the last set that loaded cleanly: a broken edit
is refused and logged, the bot keeps running on the previous version.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from watchfiles import Change, awatch
from yaml.nodes import ScalarNode

from bot.config.playbooks.issues import DIRECTORY, FILE, PlaybookIssue, PlaybookLoadError
from bot.config.playbooks.models import Playbook
from bot.config.playbooks.playbook_set import DEFAULT_PLAYBOOK, PlaybookSet
from bot.config.playbooks.resolve import locate, merge_chain, resolve_chains
from bot.config.playbooks.source import SourceFile, parse_file

__all__ = [
    "PlaybookIssue",
    "PlaybookLoadError",
    "PlaybookSet",
    "PlaybookStore",
    "ReloadResult",
    "is_playbook_file",
    "load_playbooks",
]

logger = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml")


def is_playbook_file(name: str) -> bool:
    # Dot-files are editor and OS litter (.#camp.yaml, ._camp.yaml), not playbooks.
    return name.endswith(SUFFIXES) and not name.startswith(".")


def load_playbooks(directory: Path) -> PlaybookSet:
    """Load and validate every playbook in ``directory``; raise with all issues found."""
    issues: list[PlaybookIssue] = []
    sources: dict[str, SourceFile] = {}
    broken: set[str] = set()
    for path in _playbook_paths(directory):
        if path.stem in sources or path.stem in broken:
            issues.append(
                _issue(path.name, None, FILE, f"a second file for playbook '{path.stem}'")
            )
            continue
        source, found = parse_file(path, path.name)
        issues += found
        if source is None:
            broken.add(path.stem)
        else:
            sources[path.stem] = source

    for stem, source in sources.items():
        name = source.data.get("name")
        if name is not None and name != stem:
            line = source.line_of(["name"])
            issues.append(
                _issue(source.label, line, "name", f"'{name}' must match the file name '{stem}'")
            )

    parents = {stem: _extends(source) for stem, source in sources.items()}
    chains, chain_problems = resolve_chains(parents, frozenset(broken))
    for stem, problem in chain_problems.items():
        source = sources[stem]
        issues.append(_issue(source.label, source.line_of(["extends"]), "extends", problem))

    playbooks: dict[str, Playbook] = {}
    for stem, chain in sorted(chains.items()):
        chain_sources = [sources[name] for name in chain]
        data = merge_chain([s.data for s in chain_sources]) | {"name": stem}
        try:
            playbooks[stem] = Playbook.model_validate(data)
        except ValidationError as exc:
            issues += [_from_pydantic(error, chain_sources) for error in exc.errors()]

    if DEFAULT_PLAYBOOK not in sources and DEFAULT_PLAYBOOK not in broken:
        issues.append(
            _issue(
                f"{DEFAULT_PLAYBOOK}.yaml",
                None,
                FILE,
                "missing: groups that no other playbook matches follow 'default'; add default.yaml",
            )
        )
    issues += _shared_chat_ids(playbooks, sources)

    if issues:
        raise PlaybookLoadError(_dedupe_sorted(issues))
    return PlaybookSet(playbooks)


def _playbook_paths(directory: Path) -> list[Path]:
    try:
        paths = sorted(p for p in directory.iterdir() if is_playbook_file(p.name) and p.is_file())
    except OSError as exc:
        raise PlaybookLoadError(
            [_issue(str(directory), None, DIRECTORY, f"cannot read: {exc.strerror or exc}")]
        ) from exc
    if not paths:
        raise PlaybookLoadError(
            [_issue(str(directory), None, DIRECTORY, "no playbooks (*.yaml) in this directory")]
        )
    return paths


def _extends(source: SourceFile) -> str | None:
    # A non-string `extends` has no parent here; validation reports its type.
    parent = source.data.get("extends")
    return parent if isinstance(parent, str) else None


def _issue(file: str, line: int | None, field: str, message: str) -> PlaybookIssue:
    return PlaybookIssue(file=file, line=line, field=field, message=message)


def _from_pydantic(error: ErrorDetails, chain: Sequence[SourceFile]) -> PlaybookIssue:
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    path: tuple[str | int, ...] = (*error["loc"], *ctx.get("loc_suffix", ()))
    file, line, node = locate(chain, path)
    template_lineno = ctx.get("template_lineno")
    if template_lineno and isinstance(node, ScalarNode) and node.style == "|":
        # In a literal block, template line 1 is the line after the `|`.
        line = node.start_mark.line + 1 + template_lineno
    field = ".".join(str(part) for part in path) or "(root)"
    return _issue(file, line, field, _message(error, path))


_SCALARS = (str, int, float, bool, type(None))
_SELF_DESCRIBING = {"missing", "extra_forbidden", "time_format", "template", "too_long"}


def _message(error: ErrorDetails, path: Sequence[str | int]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return _unknown_key(path)
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if kind not in _SELF_DESCRIBING and isinstance(value, _SCALARS):
        message += f" (got {value!r})"
    return message


def _unknown_key(path: Sequence[str | int]) -> str:
    key = str(path[-1])
    model = _model_at(path[:-1])
    if model is None:
        return f"unknown key '{key}'"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}' (allowed here: {', '.join(allowed)})"


def _model_at(path: Sequence[str | int]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Playbook
    for part in path:
        if isinstance(part, int):
            continue  # an item of a tuple of models: same model
        if model is None or part not in model.model_fields:
            return None
        model = _find_model(model.model_fields[part].annotation)
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _find_model(arg)) is not None:
            return found
    return None


def _shared_chat_ids(
    playbooks: dict[str, Playbook], sources: dict[str, SourceFile]
) -> list[PlaybookIssue]:
    owner: dict[str, str] = {}
    issues: list[PlaybookIssue] = []
    for name, playbook in sorted(playbooks.items()):
        for index, chat_id in enumerate(playbook.applies_to.chat_ids):
            if chat_id in owner:
                source = sources[name]
                issues.append(
                    _issue(
                        source.label,
                        source.line_of(["applies_to", "chat_ids", index]),
                        f"applies_to.chat_ids.{index}",
                        f"'{chat_id}' is also listed by playbook '{owner[chat_id]}'; "
                        "a group follows exactly one playbook",
                    )
                )
            else:
                owner[chat_id] = name
    return issues


def _dedupe_sorted(issues: Iterable[PlaybookIssue]) -> list[PlaybookIssue]:
    # A broken parent is seen once per child that inherits it; report it once.
    unique = dict.fromkeys(issues)
    return sorted(unique, key=lambda i: (i.file, i.line or 0, i.field))


class ReloadResult(BaseModel):
    ok: bool
    issues: list[PlaybookIssue]
    """Why the reload was refused; empty when ``ok``."""
    loaded_at: datetime
    """When the set now in use was loaded."""
    version: int
    """Version now in use; it grows by one with every successful load."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PlaybookStore:
    """The playbook set in use; reloads replace it only when they succeed.

    Construction loads the directory and lets :class:`PlaybookLoadError`
    propagate: with no good set to fall back on, the service must not start.

    The service reloads with :meth:`reload_async` (the file watcher and
    ``/admin/playbooks/reload``): the files are read and checked in a worker
    thread, and the new set is swapped in on the event loop under an asyncio
    lock, so the loop never waits for parsing, rendering or a thread lock.
    :meth:`reload` is the same for code without an event loop (scripts, tests).
    """

    def __init__(self, directory: Path, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.directory = directory
        self._clock = clock
        self._lock = threading.Lock()  # serializes reload() calls from threads
        # Serializes reload_async(): a slow load must not swap in after a newer one.
        self._async_lock = asyncio.Lock()
        self.current: PlaybookSet = load_playbooks(directory)
        self.version = 1
        self.loaded_at = clock()
        self.last_issues: list[PlaybookIssue] = []
        """Issues of the latest reload; cleared by a successful one."""
        self.last_error_at: datetime | None = None
        """When a reload was last refused; kept after later successes."""

    def reload(self) -> ReloadResult:
        """Load and swap in the caller's thread; never call it on the event loop."""
        with self._lock:
            return self._apply(self._load())

    async def reload_async(self) -> ReloadResult:
        """Load in a worker thread, then swap in on the loop (no thread lock taken)."""
        async with self._async_lock:
            loaded = await asyncio.to_thread(self._load)
            return self._apply(loaded)

    def _load(self) -> PlaybookSet | PlaybookLoadError:
        try:
            return load_playbooks(self.directory)
        except PlaybookLoadError as exc:
            return exc

    def _apply(self, loaded: PlaybookSet | PlaybookLoadError) -> ReloadResult:
        # Plain attribute assignments, nothing that waits: cheap on the event loop.
        if isinstance(loaded, PlaybookLoadError):
            self.last_issues = loaded.issues
            self.last_error_at = self._clock()
            return self._result(ok=False)
        self.current = loaded
        self.version += 1
        self.loaded_at = self._clock()
        self.last_issues = []
        return self._result(ok=True)

    def _result(self, *, ok: bool) -> ReloadResult:
        return ReloadResult(
            ok=ok, issues=list(self.last_issues), loaded_at=self.loaded_at, version=self.version
        )

    async def watch(
        self,
        stop: asyncio.Event | None = None,
        *,
        debounce_ms: int = 500,
        retry_seconds: float = 10.0,
    ) -> None:
        """Reload whenever a playbook file changes, until ``stop`` is set.

        Editors save in bursts (temp file, rename, chmod); ``debounce_ms``
        folds a burst into one reload. If the directory cannot be watched
        (removed, unmounted) the watcher logs and retries instead of dying
        quietly and leaving the bot without hot reload.
        """
        while stop is None or not stop.is_set():
            try:
                async for changes in awatch(
                    self.directory,
                    stop_event=stop,
                    debounce=debounce_ms,
                    watch_filter=_playbook_change,
                    recursive=False,
                ):
                    await self._reload_logged(changes)
                return  # awatch only ends when stop is set
            except OSError:
                logger.exception(
                    "cannot watch playbooks in %s; retrying in %.0f s",
                    self.directory,
                    retry_seconds,
                )
                if await _stopped_within(stop, retry_seconds):
                    return

    async def _reload_logged(self, changes: set[tuple[Change, str]]) -> None:
        changed = ", ".join(sorted(Path(path).name for _, path in changes))
        try:
            result = await self.reload_async()
        except Exception:  # a bug here must not end hot reload for the process' lifetime
            logger.exception("reloading playbooks after a change to %s failed", changed)
            return
        if result.ok:
            logger.info(
                "playbooks reloaded after a change to %s: version %d (%s)",
                changed,
                result.version,
                ", ".join(self.current.playbooks),
            )
        else:
            logger.warning(
                "playbook change to %s refused; still serving version %d:\n%s",
                changed,
                result.version,
                "\n".join(str(issue) for issue in result.issues),
            )


def _playbook_change(_change: Change, path: str) -> bool:
    return is_playbook_file(Path(path).name)


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
