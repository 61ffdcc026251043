"""Claim tokens that say which process holds a row, so a restart on SQLite (one
machine) can give back exactly the claims of processes that are gone."""

from __future__ import annotations

import os
import uuid


def new_token() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:16]}"


def holder_is_gone(token: str | None) -> bool:
    """True when the token's process no longer runs on this machine (or it is unreadable)."""
    if not token or "-" not in token:
        return True
    pid_text = token.split("-", 1)[0]
    if not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False
