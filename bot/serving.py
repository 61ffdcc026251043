"""Running `serve`: bind its socket first (a port in use is one clear line), and keep
a record of where it listens in the data directory while it accepts connections."""

from __future__ import annotations

import errno
import gc
import logging
import socket
from pathlib import Path

import uvicorn

from bot.datafiles import ServerRecord, remove_server_record, write_server_record
from bot.server_address import url_for

log = logging.getLogger(__name__)


class CannotListen(Exception):
    """The address is taken or unusable; the message is one line that says what to do."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn, so a port in use is found before anything starts."""
    # The address family as uvicorn chooses it: IPv6 only for an IPv6 literal.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose
    # protocol says TCP. Without it Nagle's algorithm meets delayed ACKs and every
    # keep-alive answer waits up to 40 ms (callbacks acknowledged at half the rate).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # As uvicorn does: a restart may reuse a port whose old connections linger in
        # TIME_WAIT; a live listener still makes bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except socket.gaierror as exc:
        sock.close()
        raise CannotListen(f"HOST: cannot resolve {host!r}: {exc.strerror}") from None
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"PORT: {host}:{port} is already in use (another `wecom-bot serve`?); "
                "stop it or choose another port with --port or PORT"
            ) from None
        raise CannotListen(f"HOST/PORT: cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def freeze_startup_heap() -> None:
    """Exempt what start-up built (modules, the app, the runtime, SQLAlchemy's and
    pydantic's structures: most of the heap, alive until exit) from the cyclic garbage
    collector. Under callback load its full passes walked all of it every second or
    so, about 80 ms each: near a tenth of the server's time (measured, bench/README.md).
    For `serve` only: a process that builds many apps (the tests) must not keep them."""
    gc.collect()
    gc.freeze()


class RecordingServer(uvicorn.Server):
    """uvicorn's server that writes the server record once it listens and removes it as
    shutdown begins (inside the server's own shutdown, because uvicorn re-raises a
    SIGTERM after it returns, which would skip any `finally` of the caller)."""

    def __init__(self, config: uvicorn.Config, record_path: Path, host: str) -> None:
        super().__init__(config)
        self.record_path = record_path
        self.host = host
        self.record: ServerRecord | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit and sockets:
            port = int(sockets[0].getsockname()[1])
            url = url_for(self.host, port)
            self.record = write_server_record(self.record_path, url)
            log.info("listening on %s (recorded in %s)", url, self.record_path)
        if self.started:
            freeze_startup_heap()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.forget()
        await super().shutdown(sockets)

    def forget(self) -> None:
        if self.record is not None:
            remove_server_record(self.record_path, self.record)
            self.record = None
