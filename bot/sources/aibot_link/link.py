"""The 智能机器人 long connection: one replica holds it, subscribed, alive, reconnecting.

WeCom keeps one connection per bot (a newer one kicks the older with a
`disconnected_event`), so a database lease (storage/leases.py) decides which replica
connects; the others wait for it. The holder:

- subscribes (`aibot_subscribe` with the bot id and secret). A refusal (853000,
  invalid bot_id or secret) is logged once, plainly, and retried slowly: a typo in
  the settings must not become a crash loop or a flood of log lines;
- sends `ping` every `heartbeat` seconds and renews the lease with it; a ping not
  acknowledged within the same time (at most 10 s), or a lease another replica took,
  closes the connection;
- turns `aibot_msg_callback` frames into inbox items exactly as the HTTP callback
  does (`normalize_aibot`, deduplicated by msgid), keeping the frame's req_id on the
  event so the reply can echo it;
- sends the replies (`respond`, called by the dispatcher through the WeCom client)
  and waits for their acks; a non-zero errcode is the reply's failure;
- after any drop reconnects with capped, jittered backoff and subscribes again; a
  `disconnected_event` (someone else connected with this bot) is logged and backs
  off the same way.

It runs under the runtime's supervised loops, so even a bug here only restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bot.metrics import Metrics
from bot.sources.aibot import normalize_aibot
from bot.sources.aibot_link import frames
from bot.sources.aibot_link.frames import Frame
from bot.sources.normalized import store_many
from bot.wecom.errors import TransportError, WeComError
from bot.workers.claims import new_token
from bot.workers.health import LoopHealth
from storage import leases
from storage.inbox_append import InboxAppender

log = logging.getLogger(__name__)

LINK_LOOP = "aibot long connection"
CALLBACK_PATH = "aibot-ws"  # the callbacks metric's label for frames off the connection
BAD_CREDENTIALS = 853000  # "invalid bot_id or secret" (notes §4.5)
REPLY_ACK_SECONDS = 10.0
HANDSHAKE_SECONDS = 10.0

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class Ending:
    """Why a connection ended: what the loop logs and how long it waits."""

    kind: str  # refused | taken_over | no_ack | lease_lost | dropped | failed | stopped
    detail: str = ""


def lease_name(bot_id: str) -> str:
    return f"aibot:{bot_id}"[:80]


class AibotLink:
    def __init__(
        self,
        *,
        url: str,
        bot_id: str,
        secret: str,
        sessions: async_sessionmaker[AsyncSession],
        appender: InboxAppender,
        clock: Callable[[], datetime],
        heartbeat: float,
        metrics: Metrics | None = None,
        health: LoopHealth | None = None,
        on_stored: Callable[[], None] = lambda: None,
        on_live: Callable[[], None] = lambda: None,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        refused_retry: float = 300.0,
    ) -> None:
        self.url = url
        self.bot_id = bot_id
        self._secret = secret
        self.sessions = sessions
        self.appender = appender
        self.clock = clock
        self.heartbeat = heartbeat
        self.ack_seconds = min(heartbeat, 10.0)
        self.lease = timedelta(seconds=3 * heartbeat)
        self.metrics = metrics
        self.health = health
        self.on_stored = on_stored
        self.on_live = on_live
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.refused_retry = refused_retry
        self.name = lease_name(bot_id)
        self.token = new_token()
        # Counters the tests and the log read: how the connection has fared.
        self.subscriptions = 0  # subscribed connections, reconnects included
        self.lease_refusals = 0  # times another replica held the connection
        self._ws: ClientConnection | None = None
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        self._ending: Ending | None = None
        self._refusal_logged = False

    @property
    def live(self) -> bool:
        """Subscribed right now: replies on the connection can be sent from here."""
        return self._ws is not None

    # -- replies --------------------------------------------------------------------------

    async def respond(self, req_id: str, body: JSONDict) -> JSONDict:
        """Send `aibot_respond_msg` echoing `req_id` and wait for its ack. A transport
        problem (no connection, closed before the ack, no ack in time) is retried by the
        dispatcher; an errcode from WeCom is the reply's own failure."""
        ws = self._ws
        if ws is None:
            raise TransportError("the 智能机器人 long connection is not up", path=frames.RESPOND)
        if not req_id:
            raise WeComError(-3, "the reply has no req_id to echo", kind="permanent")
        if req_id in self._pending:
            raise TransportError("a reply to this message is still waiting for its ack")
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = waiter
        try:
            await ws.send(frames.respond(req_id, body))
            async with asyncio.timeout(REPLY_ACK_SECONDS):
                ack = await waiter
        except ConnectionClosed:
            raise TransportError(
                "the long connection closed before the reply's ack", path=frames.RESPOND
            ) from None
        except TimeoutError:
            raise TransportError(
                f"no ack for the reply within {REPLY_ACK_SECONDS:.0f} s", path=frames.RESPOND
            ) from None
        finally:
            self._pending.pop(req_id, None)
        if ack.errcode:
            raise WeComError(ack.errcode, ack.errmsg, path=frames.RESPOND)
        return {"errcode": 0, "errmsg": ack.errmsg or "ok"}

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the connection until `stop`: wait for the lease, connect, reconnect."""
        failures = 0
        while not stop.is_set():
            if not await self._take_lease():
                self.lease_refusals += 1
                await _wait(stop, self.heartbeat)
                continue
            subscribed_before = self.subscriptions
            try:
                ending = await self._connection(stop)
            except (OSError, TimeoutError, WebSocketException, WeComError) as exc:
                ending = Ending("failed", f"{type(exc).__name__}: {exc}")
            finally:
                await self._give_up_lease()
            if ending.kind == "stopped" or stop.is_set():
                return
            # After a connection that was up, the first reconnect is quick.
            failures = 1 if self.subscriptions > subscribed_before else failures + 1
            await _wait(stop, self._after(ending, failures))

    def _after(self, ending: Ending, failures: int) -> float:
        """Log why the connection ended; seconds to wait before the next try."""
        if self.health is not None:
            self.health.failed(LINK_LOOP, RuntimeError(f"{ending.kind}: {ending.detail}"))
        if ending.kind == "refused":
            delay = self.refused_retry * random.uniform(0.9, 1.1)
            if not self._refusal_logged:
                log.error(
                    "智能机器人 long connection: WeCom refused WECOM_AIBOT_ID/WECOM_AIBOT_SECRET "
                    "(%s); check them. Trying again every %.0f s",
                    ending.detail,
                    self.refused_retry,
                )
                self._refusal_logged = True
            return delay
        delay = float(min(self.retry_cap, self.retry_base * 2.0 ** max(0, failures - 1)))
        delay *= random.uniform(0.5, 1.0)
        if ending.kind == "taken_over":
            log.warning(
                "智能机器人 long connection: a newer connection with this bot id took over "
                "(disconnected_event; another process using WECOM_AIBOT_ID?); reconnecting "
                "in %.1f s",
                delay,
            )
        else:
            log.warning(
                "智能机器人 long connection %s (%s); reconnecting in %.1f s",
                ending.kind.replace("_", " "),
                ending.detail,
                delay,
            )
        return delay

    async def _connection(self, stop: asyncio.Event) -> Ending:
        """One connection, from connect to close."""
        self._ending = None
        async with connect(
            self.url,
            ping_interval=None,  # the protocol's own `ping` frames are the heartbeat
            open_timeout=HANDSHAKE_SECONDS,
            close_timeout=2,
            max_size=2**22,
            proxy=None if _is_loopback(self.url) else True,
        ) as ws:
            ack = await self._subscribe(ws)
            if ack.errcode:
                return Ending("refused", f"{ack.errcode}: {ack.errmsg}")
            self._ws = ws
            self.subscriptions += 1
            self._refusal_logged = False
            if self.health is not None:
                self.health.succeeded(LINK_LOOP)
            log.info("智能机器人 long connection: subscribed as %s", self.bot_id)
            self.on_live()
            try:
                return await self._serve(ws, stop)
            finally:
                self._ws = None
                self._fail_pending()

    async def _subscribe(self, ws: ClientConnection) -> Frame:
        req_id = frames.new_req_id(frames.SUBSCRIBE)
        await ws.send(frames.subscribe(req_id, self.bot_id, self._secret))
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            async for raw in ws:
                frame = frames.parse(raw)
                if frame is not None and frame.cmd is None and frame.req_id == req_id:
                    return frame
        raise TransportError("the connection closed before the subscription was answered")

    async def _serve(self, ws: ClientConnection, stop: asyncio.Event) -> Ending:
        reader = asyncio.create_task(self._read(ws))
        beat = asyncio.create_task(self._heartbeat(ws))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({reader, beat, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, beat, stopping):
                task.cancel()
            for task in (reader, beat, stopping):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if stop.is_set():
            return Ending("stopped")
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            exc = reader.exception()
            return Ending("failed", f"{type(exc).__name__}: {exc}")
        return self._ending or Ending("dropped", _close_detail(ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                frame = frames.parse(raw)
                if frame is None:
                    log.warning("智能机器人 long connection: a frame that is not JSON; skipped")
                    continue
                if frame.cmd is None:
                    waiter = self._pending.get(frame.req_id)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(frame)
                elif frame.cmd == frames.MESSAGE:
                    await self._store(frame)
                elif frame.cmd == frames.EVENT and frame.event_type == frames.DISCONNECTED_EVENT:
                    self._ending = Ending("taken_over", "disconnected_event")
                    await ws.close()
                    return

    async def _heartbeat(self, ws: ClientConnection) -> None:
        """Every `heartbeat`: renew the lease, ping, and wait for the ack; a lost lease
        or a missing ack closes the connection (the loop then reconnects)."""
        while True:
            await asyncio.sleep(self.heartbeat)
            if not await self._renew_lease():
                self._ending = Ending("lease_lost", "another replica holds the lease now")
                await ws.close()
                return
            req_id = frames.new_req_id(frames.PING)
            waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
            self._pending[req_id] = waiter
            try:
                await ws.send(frames.ping(req_id))
                async with asyncio.timeout(self.ack_seconds):
                    ack = await waiter
            except TimeoutError:
                self._ending = Ending("no_ack", f"no ack for a ping within {self.ack_seconds} s")
                await ws.close()
                return
            finally:
                self._pending.pop(req_id, None)
            if ack.errcode:
                self._ending = Ending("no_ack", f"ping answered {ack.errcode}: {ack.errmsg}")
                await ws.close()
                return

    async def _store(self, frame: Frame) -> None:
        """A message off the connection into the inbox, as the HTTP callback stores it."""
        if not frame.body:
            log.warning("智能机器人 long connection: a message frame without a body; skipped")
            return
        raw = json.dumps(frame.body, ensure_ascii=False)
        incoming = normalize_aibot(frame.body, raw, received_at=self.clock(), req_id=frame.req_id)
        try:
            [stored] = await store_many(self.appender, [incoming], now=self.clock())
        except Exception:
            # Not acknowledged anywhere, so WeCom will not send it again: say so loudly.
            log.exception("智能机器人 long connection: message %s not stored", incoming.dedup_key)
            return
        if self.metrics is not None:
            self.metrics.callbacks.labels(CALLBACK_PATH, "stored" if stored else "duplicate").inc()
        if stored and incoming.event is not None:
            self.on_stored()

    def _fail_pending(self) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(TransportError("the long connection closed"))
        self._pending.clear()

    # -- the lease ------------------------------------------------------------------------

    async def _take_lease(self) -> bool:
        async with self.sessions() as session, session.begin():
            return await leases.acquire(
                session, self.name, token=self.token, now=self.clock(), lease=self.lease
            )

    async def _renew_lease(self) -> bool:
        try:
            async with self.sessions() as session, session.begin():
                return await leases.renew(
                    session, self.name, token=self.token, now=self.clock(), lease=self.lease
                )
        except Exception:
            # The database, not the lease: keep the connection; the next beat tries again.
            log.warning("智能机器人 long connection: cannot renew the lease", exc_info=True)
            return True

    async def _give_up_lease(self) -> None:
        with contextlib.suppress(Exception):
            async with self.sessions() as session, session.begin():
                await leases.release(session, self.name, token=self.token)

    async def aclose(self) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        await self._give_up_lease()


def _close_detail(ws: ClientConnection) -> str:
    code, reason = ws.close_code, ws.close_reason
    if code is None:
        return "closed"
    return f"closed, code {code}" + (f" {reason}" if reason else "")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
