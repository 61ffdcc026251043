"""Ack throughput of /wecom/callback against a bare FastAPI endpoint doing the same decrypt.

Both run as real uvicorn processes on loopback, measured in the same run with the
same pre-signed callbacks (distinct app text messages, so every one is stored in
the inbox and processed). Prints requests/s for each and the ratio.

    uv run python bench/callback_throughput.py [--requests 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.sandbox.simulate import app_text_xml, sign_xml  # noqa: E402
from bot.wecom.crypto import WeComCrypto  # noqa: E402

CORP = "wwBenchCorp"
TOKEN = "bench-token"
AES = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def signed_requests(count: int, offset: int) -> list[tuple[dict[str, str], str]]:
    crypto = WeComCrypto(TOKEN, AES, CORP)
    out = []
    for n in range(count):
        xml = app_text_xml(
            corp_id=CORP,
            sender=f"user{n % 50}",
            content=f"第 {n} 条：有没有私域运营的资料？",
            msg_id=offset + n,
            agent_id=1000002,
        )
        signed = sign_xml(crypto, xml)
        out.append((signed.params, signed.body))
    return out


async def blast(url: str, requests: list[tuple[dict[str, str], str]], concurrency: int) -> float:
    queue: asyncio.Queue[tuple[dict[str, str], str]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    failures = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while True:
            try:
                params, body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            response = await client.post(url, params=params, content=body)
            if response.status_code != 200 or response.text != "success":
                failures += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{failures} callbacks were not acknowledged with success")
    return len(requests) / elapsed


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        shutil.copytree(ROOT / "sop_templates", workdir / "sop_templates")
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "WECOM_CORP_ID": CORP,
            "WECOM_CORP_SECRET": "s",
            "WECOM_AGENT_ID": "1000002",
            "WECOM_TOKEN": TOKEN,
            "WECOM_ENCODING_AES_KEY": AES,
            "WECOM_API_BASE": f"http://127.0.0.1:{free_port()}",  # nothing to send in this run
            "DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "ADMIN_TOKEN": "bench",
        }
        bare_port, ours_port = free_port(), free_port()
        bare = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare_callback_app:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
            ],
            env,
            ROOT,
        )
        ours = start(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "serve",
                "--port",
                str(ours_port),
                "--log-level",
                "warning",
            ],
            env,
            workdir,
        )
        try:
            wait_ready(f"http://127.0.0.1:{bare_port}/docs", bare)
            wait_ready(f"http://127.0.0.1:{ours_port}/healthz", ours)
            warm = signed_requests(200, 0)
            asyncio.run(blast(f"http://127.0.0.1:{bare_port}/wecom/callback", warm, 8))
            asyncio.run(blast(f"http://127.0.0.1:{ours_port}/wecom/callback", warm, 8))
            work = signed_requests(args.requests, 10_000)
            bare_rps = asyncio.run(
                blast(f"http://127.0.0.1:{bare_port}/wecom/callback", work, args.concurrency)
            )
            ours_rps = asyncio.run(
                blast(f"http://127.0.0.1:{ours_port}/wecom/callback", work, args.concurrency)
            )
        finally:
            for proc in (bare, ours):
                proc.terminate()
                proc.wait(timeout=10)
    print(f"requests: {args.requests}, concurrency: {args.concurrency}")
    print(f"bare decrypt endpoint: {bare_rps:8.0f} req/s")
    print(
        f"/wecom/callback:       {ours_rps:8.0f} req/s"
        " (verify, decrypt, parse, inbox insert + commit)"
    )
    print(f"ratio ours/bare: {ours_rps / bare_rps:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
