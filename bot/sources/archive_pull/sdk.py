"""Tencent's 会话内容存档 SDK as an ArchiveSource (docs/decisions/archive-sdk.md).

The SDK (pywecomarchive, the `archive` extra) runs in a worker process of its own
(sdk_worker.py): its native code aborts the process on some malformed input, and
an abort must cost a restart of the worker, not the service. One long-lived
worker holds one SDK handle for every pull; calls go one at a time. The RSA step
(`encrypt_random_key` → the message key, by `publickey_ver`) happens here with
`cryptography`, off the event loop, and what DecryptData would choke on is
refused before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sources.archive_pull.keys import (
    PrivateKeys,
    RecordKeyError,
    check_decrypt_inputs,
    decrypt_random_key,
)
from bot.sources.archive_pull.source import MAX_LIMIT, ArchiveFetchError, PulledRecord

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("sdk_worker.py")
STREAM_LIMIT = 256 * 1024 * 1024  # one answer line holds a whole page of 1000 records
UNAVAILABLE = (
    "WECOM_ARCHIVE_SECRET: archive pulling needs Tencent's SDK: install it with "
    "`uv sync --extra archive` (Linux x86_64/aarch64 with glibc only)"
)

# What operators should do about the codes GetChatData is known to answer.
HINTS: dict[int, str] = {
    10001: "network error; retried",
    10002: "data parse failure; retried",
    10009: "this host's IP is not on the archive app's trusted-IP list (admin console)",
    10010: "the data has expired: only about the last 5 days can be pulled",
    10011: "SSL certificate error",
    48002: "the archive secret (WECOM_ARCHIVE_SECRET) is not accepted",
    301042: "this host's IP is not on the archive app's trusted-IP list (admin console)",
}


def sdk_problem() -> str | None:
    """One line saying why the SDK cannot be used here, or None."""
    if importlib.util.find_spec("pywecomarchive") is None:
        return UNAVAILABLE
    return None


class WorkerDied(Exception):
    """The SDK worker process ended (an abort in native code, a kill)."""


def _exit_text(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


@dataclass
class WorkerError(Exception):
    kind: str
    code: int | None
    message: str

    def __str__(self) -> str:
        code = f" {self.code}" if self.code is not None else ""
        hint = f" ({HINTS[self.code]})" if self.code in HINTS else ""
        return f"{self.kind}{code}: {self.message}{hint}"


class SdkWorker:
    """The worker process, spawned on first use and again after it dies."""

    def __init__(
        self,
        init: dict[str, Any],
        *,
        call_timeout: float = 60.0,
        python: str = sys.executable,
    ) -> None:
        self._init = {"op": "init", **init}
        self._call_timeout = call_timeout
        self._python = python
        self._proc: asyncio.subprocess.Process | None = None
        self.starts = 0  # how many processes were started (restarts show here)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request, one answer; WorkerError for an SDK failure. A worker found dead
        (it may have died since the last call, unnoticed) is replaced and the request
        sent once more; WorkerDied if that one dies too."""
        for attempt in (1, 2):
            proc = await self._running()
            try:
                await self._send(proc, request)
                return _answer(await self._read(proc))
            except WorkerDied as died:
                if attempt == 2:
                    raise
                log.warning("the archive SDK worker died (%s); trying once more", died)
        raise AssertionError("unreachable")

    async def decrypt(self, items: list[dict[str, str]]) -> list[dict[str, Any]]:
        """DecryptData for each item, in order: {"ok", "record"} or {"error"}. An item
        the worker dies on gets an error of its own; the rest go to a new worker."""
        answers: list[dict[str, Any]] = []
        pending = list(items)
        while pending:
            proc = await self._running()
            await self._send(proc, {"op": "decrypt", "items": pending})
            done = 0
            try:
                for _ in pending:
                    answers.append(await self._read(proc))
                    done += 1
            except WorkerDied as died:
                log.error("the archive SDK worker died decrypting one record: %s", died)
                answers.append(
                    {"error": {"type": "WorkerDied", "code": None, "message": str(died)}}
                )
                done += 1
            pending = pending[done:]
        return answers

    async def _running(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        if self._proc is not None:
            log.warning("restarting the archive SDK worker (%s)", _exit_text(self._proc.returncode))
        self._proc = await asyncio.create_subprocess_exec(
            self._python,
            "-I",  # isolated: no script directory, no PYTHON* variables, no user site
            str(WORKER_SCRIPT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=STREAM_LIMIT,
        )
        self.starts += 1
        try:
            _answer(await self._exchange(self._proc, self._init))
        except BaseException:
            await self._kill()
            raise
        return self._proc

    async def _exchange(
        self, proc: asyncio.subprocess.Process, request: dict[str, Any]
    ) -> dict[str, Any]:
        await self._send(proc, request)
        return await self._read(proc)

    async def _send(self, proc: asyncio.subprocess.Process, request: dict[str, Any]) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n")
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise WorkerDied(_exit_text(await proc.wait())) from None

    async def _read(self, proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=self._call_timeout)
        except TimeoutError:
            await self._kill()
            raise WorkerDied(f"no answer within {self._call_timeout:.0f} s; killed") from None
        if not line:
            raise WorkerDied(_exit_text(await proc.wait()))
        answer: Any = json.loads(line)
        if not isinstance(answer, dict):
            raise WorkerDied("the worker answered something that is not an object")
        return answer

    async def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def aclose(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # end of input: the worker frees the handle and exits
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _answer(answer: dict[str, Any]) -> dict[str, Any]:
    error = answer.get("error")
    if isinstance(error, dict):
        raise WorkerError(
            str(error.get("type") or "Error"),
            error.get("code") if isinstance(error.get("code"), int) else None,
            str(error.get("message") or ""),
        )
    return answer


@dataclass(frozen=True)
class _Prepared:
    seq: int
    msgid: str
    key: str | None  # the message key, checked sane
    msg: str
    error: str | None


def prepare(keys: PrivateKeys, entries: list[Any]) -> list[_Prepared]:
    """The RSA step and the input checks for a page (CPU work: run off the loop)."""
    prepared = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
            raise ArchiveFetchError(f"GetChatData: malformed entry {str(entry)[:200]}")
        seq, msgid = entry["seq"], str(entry.get("msgid") or "")
        msg = str(entry.get("encrypt_chat_msg") or "")
        try:
            version = int(entry.get("publickey_ver") or 0)
            key = decrypt_random_key(keys, version, str(entry.get("encrypt_random_key") or ""))
            check_decrypt_inputs(key, msg)
        except (RecordKeyError, ValueError) as exc:
            prepared.append(_Prepared(seq, msgid, None, msg, str(exc)))
            continue
        prepared.append(_Prepared(seq, msgid, key, msg, None))
    return prepared


class SdkArchiveSource:
    name = "sdk"

    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        keys: PrivateKeys,
        proxy: str = "",
        passwd: str = "",
        timeout: int = 5,
        library_path: str | None = None,
    ) -> None:
        self._keys = keys
        init = {
            "corpid": corp_id,
            "secret": secret,
            "proxy": proxy,
            "passwd": passwd,
            "timeout": timeout,
            "library_path": library_path,
        }
        # The SDK's own timeout bounds each network call; a page of DecryptData is quick.
        self.worker = SdkWorker(init, call_timeout=timeout * 3 + 30)
        self._lock = asyncio.Lock()

    async def fetch(self, after_seq: int, limit: int) -> list[PulledRecord]:
        async with self._lock:
            request = {"op": "get_chat_data", "seq": after_seq, "limit": min(limit, MAX_LIMIT)}
            try:
                reply = await self.worker.call(request)
            except (WorkerError, WorkerDied) as exc:
                code = exc.code if isinstance(exc, WorkerError) else None
                raise ArchiveFetchError(f"GetChatData: {exc}", code=code) from None
            chatdata = reply.get("chatdata")
            if not isinstance(chatdata, list):
                raise ArchiveFetchError("GetChatData: the answer has no chatdata list")
            prepared = await asyncio.to_thread(prepare, self._keys, chatdata)
            ready = [p for p in prepared if p.key is not None]
            try:
                answers = await self.worker.decrypt(
                    [{"key": p.key or "", "msg": p.msg} for p in ready]
                )
            except (WorkerError, WorkerDied) as exc:  # a new worker could not even start
                code = exc.code if isinstance(exc, WorkerError) else None
                raise ArchiveFetchError(f"DecryptData: {exc}", code=code) from None
        decrypted = {id(p): answer for p, answer in zip(ready, answers, strict=True)}
        return [_record(p, decrypted.get(id(p))) for p in prepared]

    async def aclose(self) -> None:
        await self.worker.aclose()


def _record(prepared: _Prepared, answer: dict[str, Any] | None) -> PulledRecord:
    if prepared.error is not None or answer is None:
        return PulledRecord(prepared.seq, prepared.msgid, None, prepared.error or "not decrypted")
    error = answer.get("error")
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), int) else None
        text = str(WorkerError(str(error.get("type")), code, str(error.get("message"))))
        return PulledRecord(prepared.seq, prepared.msgid, None, f"DecryptData: {text}")
    record = answer.get("record")
    if not isinstance(record, dict):
        return PulledRecord(prepared.seq, prepared.msgid, None, "DecryptData gave no object")
    return PulledRecord(prepared.seq, prepared.msgid, record)
