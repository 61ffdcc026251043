"""The listening socket `serve` binds itself behaves as uvicorn's own would."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

from bot.serving import bind_listener


async def test_accepted_connections_send_without_nagle_delays() -> None:
    """asyncio turns TCP_NODELAY on only for sockets that say they are TCP; a
    listener made without it answered keep-alive requests up to 40 ms late."""
    listener = bind_listener("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener)
    port = listener.getsockname()[1]
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(accepted, timeout=10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


PROBE = """
import asyncio, gc, sys
from pathlib import Path

import uvicorn

from bot.serving import RecordingServer, bind_listener


async def app(scope, receive, send):
    return None


class Probe(RecordingServer):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        print("frozen after start-up:", gc.get_freeze_count(), flush=True)
        self.should_exit = True


print("frozen before:", gc.get_freeze_count(), flush=True)
config = uvicorn.Config(app, lifespan="off", log_level="warning")
server = Probe(config, Path(sys.argv[1]), "127.0.0.1")
asyncio.run(server.serve(sockets=[bind_listener("127.0.0.1", 0)]))
"""


def test_serve_exempts_what_start_up_built_from_the_garbage_collector(tmp_path: Path) -> None:
    """In its own process: freezing the heap of the test process would keep every app
    the tests build."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "server.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = dict(line.split(": ") for line in done.stdout.splitlines())
    assert int(lines["frozen before"]) == 0
    assert int(lines["frozen after start-up"]) > 10_000
