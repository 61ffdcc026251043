"""Run the emulator on a real loopback port in a background thread (tests, manual checks)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn

from bot.sandbox.emulator.aibot_ws import AibotHub
from bot.sandbox.emulator.app import create_emulator_app
from bot.sandbox.emulator.state import EmulatorState


def require_loopback(host: str) -> None:
    """The control API has no authentication, so the emulator never listens beyond loopback."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the WeCom emulator only binds to loopback, not {host!r}")


@dataclass
class RunningEmulator:
    base_url: str
    state: EmulatorState
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _hub: AibotHub | None = field(default=None, repr=False)

    @property
    def aibot(self) -> AibotHub:
        """The 智能机器人 long-connection endpoint, started on first use (its own port)."""
        if self._hub is None:
            hub = AibotHub(self.state)
            hub.start()
            self._hub = hub
        return self._hub

    @property
    def ws_url(self) -> str:
        """WECOM_AIBOT_WS_URL for a bot that should hold its long connection here."""
        return self.aibot.url

    def stop(self, timeout: float = 5.0) -> None:
        if self._hub is not None:
            self._hub.stop()
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Requests parked in a long fault delay would hold a graceful shutdown.
            self._server.force_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator_in_thread(
    state: EmulatorState | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 10.0,
) -> RunningEmulator:
    """Serve create_emulator_app(state) with uvicorn on its own event loop and thread.

    Returns once the socket accepts connections. Port 0 picks a free port: the
    socket is bound here and handed to uvicorn, so there is no window in which
    another process could take the port.
    """
    require_loopback(host)
    state = state if state is not None else EmulatorState()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto is IPPROTO_TCP, and without it every keep-alive request stalls ~40 ms
    # on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        create_emulator_app(state),
        log_config=None,
        access_log=False,
        lifespan="off",
        loop="asyncio",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=_serve, args=(server, sock), name=f"wecom-emulator:{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the WeCom emulator stopped during startup")
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(startup_timeout)
            raise TimeoutError(f"the WeCom emulator did not start within {startup_timeout}s")
        time.sleep(0.01)
    url_host = f"[{host}]" if family == socket.AF_INET6 else host
    return RunningEmulator(
        base_url=f"http://{url_host}:{bound_port}", state=state, _server=server, _thread=thread
    )


def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
