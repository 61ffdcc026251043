"""The listening socket `serve` binds itself behaves as uvicorn's own would."""

from __future__ import annotations

import asyncio
import socket

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
