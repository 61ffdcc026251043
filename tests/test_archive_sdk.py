"""Tencent's archive SDK in its worker process: loads, holds one handle, frees it, and an
abort in native code costs one record and a restart, never the service.

Nothing here reaches a WeCom host: Init needs no network, and GetChatData goes to a
loopback "proxy" that only records what it was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip(
    "pywecomarchive",
    reason="the archive extra has wheels for glibc Linux x86_64/aarch64 only "
    "(uv sync --extra archive)",
)

from bot.sources.archive_pull.keys import PrivateKeys
from bot.sources.archive_pull.sdk import (
    SdkArchiveSource,
    SdkWorker,
    WorkerError,
    prepare,
    sdk_problem,
)
from bot.sources.archive_pull.source import ArchiveFetchError

FAKE_CORP = {"corpid": "wwfakecorpid000000", "secret": "fake-secret", "timeout": 2}
GOOD_MSG = "bm90LWEtbXNnLWxvbmdlcg=="  # base64, long enough: DecryptData answers 10008


@pytest.fixture
async def worker() -> Iterator[SdkWorker]:
    running = SdkWorker(dict(FAKE_CORP), call_timeout=30)
    yield running  # type: ignore[misc]
    await running.aclose()


class RecordingProxy:
    """A loopback listener standing in for an HTTP proxy: it records the first bytes
    of each connection and hangs up, so the SDK's request fails without going anywhere."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    self.seen.append(conn.recv(4096))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    running = RecordingProxy()
    yield running
    running.close()


def test_the_sdk_is_installed_here() -> None:
    assert sdk_problem() is None


async def test_a_handle_is_created_in_the_worker_process_and_freed(worker: SdkWorker) -> None:
    assert (await worker.call({"op": "status"})) == {"ok": True, "open": True}
    pid = worker.pid
    assert pid is not None and pid != os.getpid()
    await worker.call({"op": "close"})  # DestroySdk
    assert (await worker.call({"op": "status"})) == {"ok": True, "open": False}
    assert worker.pid == pid  # the same process: one handle's life, not a new worker
    await worker.aclose()
    assert worker.pid is None


async def test_get_chat_data_reports_the_sdk_code_and_a_hint(proxy: RecordingProxy) -> None:
    source = SdkArchiveSource(
        corp_id=FAKE_CORP["corpid"], secret="fake-secret", keys={}, proxy=proxy.url, timeout=2
    )
    try:
        with pytest.raises(ArchiveFetchError) as caught:
            await source.fetch(0, 10)
    finally:
        await source.aclose()
    assert caught.value.code == 10001
    assert "network error" in str(caught.value)
    assert proxy.seen and all(b.startswith(b"CONNECT ") for b in proxy.seen if b)


async def test_an_abort_in_decryptdata_costs_one_record_and_a_restart(worker: SdkWorker) -> None:
    """`=` as the key makes Tencent's native code throw an uncaught C++ exception
    (SIGABRT): the answers before and after it still come, from a new worker."""
    answers = await worker.decrypt(
        [
            {"key": "k" * 32, "msg": GOOD_MSG},
            {"key": "=", "msg": GOOD_MSG},
            {"key": "k" * 32, "msg": GOOD_MSG},
        ]
    )
    assert [a["error"]["code"] for a in answers] == [10008, None, 10008]
    assert answers[1]["error"]["type"] == "WorkerDied"
    assert "SIGABRT" in answers[1]["error"]["message"]
    assert worker.starts == 2


async def test_a_killed_worker_is_started_again(worker: SdkWorker) -> None:
    await worker.call({"op": "status"})
    first = worker.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert (await worker.call({"op": "status"}))["open"] is True
    assert worker.pid not in (None, first) and worker.starts == 2


def test_malformed_inputs_are_refused_before_decryptdata() -> None:
    """What would abort the worker never leaves this process: no key for the version,
    a short or non-base64 encrypt_chat_msg."""
    keys: PrivateKeys = {}
    entries = [
        {
            "seq": 7,
            "msgid": "m7",
            "publickey_ver": 1,
            "encrypt_random_key": "AAAA",
            "encrypt_chat_msg": "x",
        },
    ]
    [prepared] = prepare(keys, entries)
    assert (
        prepared.key is None and prepared.error is not None and "publickey_ver=1" in prepared.error
    )
    with pytest.raises(ArchiveFetchError, match="malformed entry"):
        prepare(keys, [{"msgid": "no seq"}])


async def test_a_bad_library_path_is_a_clear_error() -> None:
    worker = SdkWorker({**FAKE_CORP, "library_path": "/nonexistent/libWeWorkFinanceSdk_C.so"})
    try:
        with pytest.raises(WorkerError) as caught:
            await worker.call({"op": "status"})
    finally:
        await worker.aclose()
    assert caught.value.kind == "SdkLoadError"


async def test_without_the_extra_the_worker_says_how_to_install_it(tmp_path: Path) -> None:
    """A Python without pywecomarchive (a bare venv) answers with the install hint."""
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
        check=True,
    )
    bare = tmp_path / "venv" / "bin" / "python"
    worker = SdkWorker(dict(FAKE_CORP), python=str(bare))
    try:
        with pytest.raises(WorkerError) as caught:
            await worker.call({"op": "status"})
    finally:
        await worker.aclose()
    assert caught.value.kind == "SdkUnavailable"
    assert "uv sync --extra archive" in str(caught.value)
