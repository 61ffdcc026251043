"""Small files the service keeps in its data directory, beside the SQLite database.

With SQLite the data directory is the database file's folder and each file is
named after the database (`wecom-bot.db.server.json`), so two databases in one
folder never share a file; with PostgreSQL it is the working directory.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from bot.config.settings import Settings, generate_admin_token


def data_path(settings: Settings, suffix: str) -> Path:
    url = settings.database_url
    if url.startswith("sqlite") and ":///" in url:
        database = Path(url.split(":///", 1)[1].split("?", 1)[0])
        if database.name and database.name != ":memory:":
            return database.with_name(database.name + suffix)
    return Path("wecom-bot" + suffix)


def sandbox_log_path(settings: Settings) -> Path:
    """The emulator's log of what it "sent" (sandbox mode)."""
    return data_path(settings, ".sandbox-sent.jsonl")


def sandbox_archive_path(settings: Settings) -> Path:
    """The sandbox emulator's 会话内容存档, kept across restarts so seq numbers go on."""
    return data_path(settings, ".sandbox-archive.jsonl")


def server_record_path(settings: Settings) -> Path:
    """Where a running `serve` says where it listens, for `simulate`, `tick`, `sandbox sent`."""
    return data_path(settings, ".server.json")


@dataclass(frozen=True)
class ServerRecord:
    url: str
    pid: int

    def alive(self) -> bool:
        """The recording process still runs (a kill -9 leaves the file behind)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process: it exists
            return True
        return True


def write_server_record(path: Path, url: str) -> ServerRecord:
    record = ServerRecord(url=url, pid=os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{record.pid}.tmp")
    tmp.write_text(json.dumps({"url": record.url, "pid": record.pid}) + "\n", encoding="utf-8")
    tmp.replace(path)  # readers never see half a file
    return record


def read_server_record(path: Path) -> ServerRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ServerRecord(url=str(data["url"]), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_server_record(path: Path, record: ServerRecord) -> None:
    """Remove the file only if it is still ours (a second `serve` may have taken over)."""
    if read_server_record(path) == record:
        with contextlib.suppress(OSError):
            path.unlink()


def admin_token_path(settings: Settings) -> Path:
    return data_path(settings, ".admin-token")


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def sandbox_admin_token(settings: Settings) -> tuple[str, Path]:
    """The sandbox's admin token: created once (mode 0600) and read back on every start,
    so scripts and notes keep working across restarts."""
    path = admin_token_path(settings)
    token = _read_token(path)
    if token:
        return token, path
    path.parent.mkdir(parents=True, exist_ok=True)
    token = generate_admin_token()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    try:
        # A hard link creates the name only if it is free, with the content complete:
        # of two processes starting at once, one token wins and both use it.
        os.link(tmp, path)
    except FileExistsError:
        existing = _read_token(path)
        if existing:
            return existing, path
        tmp.replace(path)  # an empty file someone left: replace it, still private
        return token, path
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return token, path
