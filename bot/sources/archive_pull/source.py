"""What the puller reads from: an archive that hands out records after a seq.

Two implementations: Tencent's SDK (sdk.py, in a worker process) and the
emulator's GetChatData stand-in (emulator.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

MAX_LIMIT = 1000  # GetChatData's own limit


@dataclass(frozen=True)
class PulledRecord:
    """One entry of a GetChatData page: the decrypted record, or why it could not be
    had (then `record` is None and `error` says why; the puller records it)."""

    seq: int
    msgid: str
    record: dict[str, Any] | None
    error: str | None = None


class ArchiveFetchError(Exception):
    """A page could not be fetched at all (network, credentials, a dead SDK): the
    cursor stays where it is and the page is fetched again later."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ArchiveSource(Protocol):
    name: str  # "sdk" or "emulator", for logs and metrics

    async def fetch(self, after_seq: int, limit: int) -> list[PulledRecord]:
        """Records after `after_seq` in seq order, at most `limit` (≤ 1000); [] at the end."""
        ...

    async def aclose(self) -> None: ...
