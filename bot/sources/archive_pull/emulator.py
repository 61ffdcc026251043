"""The emulator's archive as a source: its GetChatData stand-in over HTTP.

Records come back already decrypted (the emulator cannot produce Tencent's
DecryptData format); everything else — seq paging, limit, errcodes — mirrors
GetChatData, so the puller cannot tell the difference.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.sources.archive_pull.source import MAX_LIMIT, ArchiveFetchError, PulledRecord

CHAT_DATA_PATH = "/cgi-bin/finance/getchatdata"


class EmulatorArchiveSource:
    name = "emulator"

    def __init__(
        self,
        *,
        api_base: str,
        corp_id: str,
        secret: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._url = api_base.rstrip("/") + CHAT_DATA_PATH
        self._corp_id = corp_id
        self._secret = secret
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout

    async def fetch(self, after_seq: int, limit: int) -> list[PulledRecord]:
        body = {
            "corpid": self._corp_id,
            "secret": self._secret,
            "seq": after_seq,
            "limit": max(1, min(limit, MAX_LIMIT)),
        }
        try:
            response = await self._http.post(self._url, json=body, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise ArchiveFetchError(f"GetChatData: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise ArchiveFetchError(f"GetChatData: HTTP {response.status_code}")
        try:
            data: Any = response.json()
        except ValueError:
            raise ArchiveFetchError("GetChatData: the answer is not JSON") from None
        errcode = data.get("errcode") if isinstance(data, dict) else None
        if errcode != 0:
            message = data.get("errmsg", "") if isinstance(data, dict) else ""
            raise ArchiveFetchError(f"GetChatData: errcode {errcode}: {message}", code=errcode)
        return [_entry(item) for item in data.get("chatdata") or []]

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()


def _entry(item: Any) -> PulledRecord:
    if not isinstance(item, dict) or not isinstance(item.get("seq"), int):
        raise ArchiveFetchError(f"GetChatData: malformed entry {str(item)[:200]}")
    msgid = str(item.get("msgid") or "")
    record = item.get("record")
    if not isinstance(record, dict):
        return PulledRecord(item["seq"], msgid, None, "the entry has no record object")
    return PulledRecord(item["seq"], msgid, record)
