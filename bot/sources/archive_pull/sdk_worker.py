"""The process that holds Tencent's SDK: `python -I sdk_worker.py`, driven by sdk.py.

Tencent's native code aborts the whole process on some malformed input, and its
handle must not be shared across threads, so it lives here, alone: one handle,
one thread, requests one at a time. If it dies, only this process dies, and the
service starts another.

Protocol: one JSON object per line on stdin, answers one per line on the
original stdout. The first request is `init` (credentials travel through the
pipe, never argv or the environment). Then `get_chat_data` {seq, limit} →
{ok, chatdata}; `decrypt` {items: [{key, msg}]} → one answer per item, in order;
`status` → {ok, open}; `close` frees the handle. End of input frees it and exits.
Failures answer {"error": {type, code, message}}.

Stand-alone on purpose (run by path, in isolated mode): it imports nothing of
the service, only the SDK.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, BinaryIO

UNAVAILABLE = (
    "Tencent's archive SDK (pywecomarchive) is not installed: run `uv sync --extra archive` "
    "(Linux x86_64/aarch64 with glibc only)"
)


def _error(exc: BaseException | str, kind: str | None = None) -> dict[str, Any]:
    if isinstance(exc, str):
        return {"error": {"type": kind or "Error", "code": None, "message": exc}}
    code = getattr(exc, "code", None)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return {
        "error": {
            "type": kind or type(exc).__name__,
            "code": code if isinstance(code, int) else None,
            "message": message[:500],
        }
    }


class Worker:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sdk: Any = None
        self.adapter: Any = None

    def send(self, answer: dict[str, Any]) -> None:
        self.out.write(json.dumps(answer, ensure_ascii=False).encode("utf-8") + b"\n")
        self.out.flush()

    def handle(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        try:
            if op == "init":
                self.send(self.init(request))
            elif op == "get_chat_data":
                self.send(self.get_chat_data(request))
            elif op == "decrypt":
                for item in request.get("items") or []:
                    self.send(self.decrypt(item))
            elif op == "status":
                self.send({"ok": True, "open": self.sdk is not None})
            elif op == "close":
                self.close()
                self.send({"ok": True})
            else:
                self.send(_error(f"unknown op {op!r}", "ProtocolError"))
        except Exception as exc:  # an answer, never a dead worker, for Python errors
            self.send(_error(exc))

    def init(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            from pywecomarchive import WecomArchiveSdk
        except ImportError:
            return _error(UNAVAILABLE, "SdkUnavailable")
        self.close()
        self.sdk = WecomArchiveSdk(
            str(request.get("corpid") or ""),
            str(request.get("secret") or ""),
            proxy=str(request.get("proxy") or ""),
            passwd=str(request.get("passwd") or ""),
            timeout=int(request.get("timeout") or 5),
            library_path=request.get("library_path") or None,
        )
        return {"ok": True, "pid": os.getpid()}

    def get_chat_data(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.sdk is None:
            return _error("the SDK is not initialised", "ProtocolError")
        response = self.sdk.get_chat_data(int(request["seq"]), int(request["limit"]))
        return {"ok": True, "chatdata": [item.model_dump() for item in response.chatdata]}

    def decrypt(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.sdk is None:
            return _error("the SDK is not initialised", "ProtocolError")
        if self.adapter is None:
            from pydantic import TypeAdapter

            # A plain dict: the SDK's own models refuse msgtypes they do not know.
            self.adapter = TypeAdapter(dict[str, Any])
        try:
            record = self.sdk.decrypt_data(str(item["key"]), str(item["msg"]), adapter=self.adapter)
        except Exception as exc:
            return _error(exc)
        return {"ok": True, "record": record}

    def close(self) -> None:
        if self.sdk is not None:
            self.sdk.close()
            self.sdk = None


def main() -> int:
    # Our answers go to a private copy of stdout; anything the native library prints
    # goes to stderr (the service's log) instead of corrupting the protocol.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker(out)
    try:
        for line in sys.stdin.buffer:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError:
                worker.send(_error("a request that is not JSON", "ProtocolError"))
                continue
            worker.handle(request if isinstance(request, dict) else {})
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
