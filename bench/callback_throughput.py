"""Callback acknowledgement and inbox processing, driven from outside by wrk.

Two real uvicorn processes on loopback, measured in the same run with the same
pre-signed, distinct encrypted app-text callbacks:

- the baseline: a bare FastAPI endpoint that only verifies, decrypts and parses
  (bench/bare_callback_app.py);
- `wecom-bot serve`: verify, decrypt, parse, the durable inbox write (group
  commit) before `success`, and the inbox worker processing events meanwhile.

Prints acknowledgements/s of each and their ratio (target ≥ 0.5x), how many
events the inbox processed while callbacks arrived and what was left after, and
how fast 20,000 archived group messages posted to /wecom/archive are processed
(target ≥ 1,000 message events/s; posting them is included in the time).

The load generator is wrk (Debian's `wrk` package) with a Lua script that gives
every request its own pre-signed callback; without wrk, several client
processes. Either way the client is not the bottleneck (a Python client on the
same two cores was: it measured itself at ~270 req/s).

    uv run python bench/callback_throughput.py [--callbacks 40000] [--seconds 8]
        [--connections 16] [--database-url postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
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

from bench.databases import postgres_database  # noqa: E402
from bot.sandbox.simulate import app_text_xml, sign_xml  # noqa: E402
from bot.wecom.crypto import WeComCrypto  # noqa: E402

CORP = "wwBenchCorp"
TOKEN = "bench-token"
AES = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
ADMIN = "bench"

# Each wrk thread reads the file of signed requests and sends its own share of it,
# one request per line: the query string, a tab, the body (the XML has no newline).
WRK_SCRIPT = r"""
local requests = {}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  local count = tonumber(args[2])
  local n = 0
  for line in io.lines(file) do
    if n % count == id then
      local tab = string.find(line, "\t", 1, true)
      local query = string.sub(line, 1, tab - 1)
      local body = string.sub(line, tab + 1)
      table.insert(requests, wrk.format("POST", "/wecom/callback?" .. query,
        {["Content-Type"] = "text/xml"}, body))
    end
    n = n + 1
  end
  position = 0
end

function request()
  position = position + 1
  if position > #requests then position = 1 end
  return requests[position]
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
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


def _sign_range(start: int, stop: int) -> list[str]:
    crypto = WeComCrypto(TOKEN, AES, CORP)
    lines = []
    for n in range(start, stop):
        xml = app_text_xml(
            corp_id=CORP,
            sender=f"user{n % 500}",
            content=f"第 {n} 条：有没有私域运营的资料？",
            msg_id=10_000_000 + n,
            agent_id=1000002,
        )
        signed = sign_xml(crypto, xml)
        query = "&".join(f"{key}={value}" for key, value in signed.params.items())
        lines.append(query + "\t" + signed.body.replace("\n", ""))
    return lines


def signed_callbacks(count: int, path: Path) -> None:
    chunks = [(start, min(count, start + 2000)) for start in range(0, count, 2000)]
    with multiprocessing.Pool() as pool:
        parts = pool.starmap(_sign_range, chunks)
    path.write_text("\n".join(line for part in parts for line in part) + "\n", encoding="utf-8")


def run_wrk(port: int, requests: Path, *, seconds: int, connections: int, script: Path) -> float:
    """Requests/s of 200 answers; fails loudly on any other answer."""
    threads = 1  # the server under test gets the other core
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            str(requests),
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    if "Non-2xx" in out or ("Socket errors" in out and "timeout" in out):
        raise SystemExit(f"wrk saw failed requests:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return float(match.group(1))


def _client_process(
    port: int, lines: list[str], deadline: float, out: multiprocessing.Queue[int]
) -> None:
    sent = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for line in lines:
            if time.monotonic() >= deadline:
                break
            query, body = line.split("\t", 1)
            response = client.post(f"/wecom/callback?{query}", content=body)
            if response.status_code != 200 or response.text != "success":
                raise SystemExit(f"callback not acknowledged: {response.status_code}")
            sent += 1
    out.put(sent)


def run_processes(port: int, requests: Path, *, seconds: int, connections: int) -> float:
    """Without wrk: several client processes, each with its own share of callbacks."""
    lines = requests.read_text(encoding="utf-8").splitlines()
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    started = time.monotonic()
    deadline = started + seconds
    procs = [
        multiprocessing.Process(
            target=_client_process, args=(port, lines[n::connections], deadline, queue)
        )
        for n in range(connections)
    ]
    for proc in procs:
        proc.start()
    total = sum(queue.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total / (time.monotonic() - started)


def metric_total(port: int, name: str, label: str) -> float:
    """The sum of a counter's series carrying `label` (e.g. 'result="done"')."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and label in line
    )


def processed(port: int) -> float:
    return metric_total(port, "wecom_inbox_processed_total", 'result="done"')


def stored(port: int) -> float:
    return metric_total(port, "wecom_callbacks_total", 'result="stored"')


def drain_rate(port: int, timeout: float = 600) -> tuple[float, float]:
    """(events processed after the load stopped, seconds it took to process them)."""
    start_done, started = processed(port), time.monotonic()
    target = stored(port)
    while processed(port) < target:
        if time.monotonic() - started > timeout:
            raise SystemExit("the inbox did not drain")
        time.sleep(0.05)
    return processed(port) - start_done, time.monotonic() - started


def archive_drain(port: int, records: int, rooms: int) -> tuple[float, float]:
    """Post archived group messages in bulk (one busy corp's backlog), then time how
    fast the inbox processes them: (events, seconds)."""
    batches = []
    for start_at in range(0, records, 1000):
        batches.append(
            [
                {
                    "msgid": f"bench-{n}",
                    "action": "send",
                    "from": f"wm{n % 300}",
                    "tolist": [],
                    "roomid": f"wrBench{n % rooms}",
                    "msgtime": 1_764_000_000_000 + n,
                    "msgtype": "text",
                    "text": {"content": f"第 {n} 条：有没有私域运营的资料？"},
                }
                for n in range(start_at, min(records, start_at + 1000))
            ]
        )
    before = processed(port)
    started = time.monotonic()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for batch in batches:
            response = client.post(
                "/wecom/archive", json=batch, headers={"Authorization": f"Bearer {ADMIN}"}
            )
            response.raise_for_status()
    target = before + records
    while processed(port) < target:
        if time.monotonic() - started > 600:
            raise SystemExit("the archive backlog did not drain")
        time.sleep(0.05)
    return processed(port) - before, time.monotonic() - started


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--callbacks", type=int, default=40_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (a database of this run's own is created there and "
        "dropped after); default: a fresh SQLite file",
    )
    parser.add_argument("--archive", type=int, default=20_000, help="archived messages")
    parser.add_argument("--rooms", type=int, default=10, help="groups they are spread over")
    parser.add_argument("--clients", choices=["auto", "wrk", "processes"], default="auto")
    args = parser.parse_args()
    use_wrk = args.clients == "wrk" or (args.clients == "auto" and shutil.which("wrk"))
    own_database = "wecombot_bench_callbacks"
    database_url = None
    if args.database_url:
        database_url = asyncio.run(postgres_database(args.database_url, own_database, True))
    try:
        return measure(args, use_wrk, database_url)
    finally:
        if args.database_url:
            asyncio.run(postgres_database(args.database_url, own_database, False))


def measure(args: argparse.Namespace, use_wrk: bool, database_url: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        requests = workdir / "callbacks.txt"
        script = workdir / "callbacks.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        signed_callbacks(args.callbacks, requests)
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
            "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "ADMIN_TOKEN": ADMIN,
        }
        bare_port, ours_port = free_port(), free_port()
        uvicorn_bare = [sys.executable, "-m", "uvicorn", "bench.bare_callback_app:app"]
        bare = start([*uvicorn_bare, "--port", str(bare_port), "--log-level", "warning"], env, ROOT)
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

        def load(port: int) -> float:
            if use_wrk:
                return run_wrk(
                    port,
                    requests,
                    seconds=args.seconds,
                    connections=args.connections,
                    script=script,
                )
            return run_processes(port, requests, seconds=args.seconds, connections=args.connections)

        try:
            wait_ready(f"http://127.0.0.1:{bare_port}/docs", bare)
            wait_ready(f"http://127.0.0.1:{ours_port}/healthz", ours)
            bare_rps = load(bare_port)
            ours_rps = load(ours_port)
            during = processed(ours_port)
            arrived = stored(ours_port)
            drained, drain_seconds = drain_rate(ours_port)
            archived, archive_seconds = archive_drain(ours_port, args.archive, args.rooms)
        finally:
            for proc in (bare, ours):
                proc.terminate()
                proc.wait(timeout=30)
    client = "wrk (1 thread)" if use_wrk else f"{args.connections} client processes"
    database = "PostgreSQL" if args.database_url else "SQLite"
    rate = drained / drain_seconds if drain_seconds > 0 else float("inf")
    print(
        f"{database}; {args.callbacks} distinct callbacks; {client}, "
        f"{args.connections} connections, {args.seconds} s"
    )
    print(f"bare decrypt endpoint:  {bare_rps:8.0f} req/s")
    print(f"/wecom/callback (ack):  {ours_rps:8.0f} req/s  (durable inbox write before success)")
    print(f"ack ratio ours/bare:    {ours_rps / bare_rps:8.2f}x  (target ≥ 0.5x)")
    print(
        f"processed during load:  {during:8.0f} of {arrived:.0f} stored "
        f"({during / max(arrived, 1):.0%}: processing keeps pace with acknowledgement)"
    )
    if drained >= 100:
        print(
            f"drain after the load:   {rate:8.0f} events/s  "
            f"({drained:.0f} in {drain_seconds:.1f} s; ratio to ack {rate / ours_rps:.2f}x)"
        )
    else:
        print(f"drain after the load:   {drained:8.0f} events were left to process")
    print(
        f"archive backlog:        {archived / archive_seconds:8.0f} events/s  "
        f"({archived:.0f} group messages in {args.rooms} groups, posted and processed "
        f"in {archive_seconds:.1f} s; target ≥ 1000)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
