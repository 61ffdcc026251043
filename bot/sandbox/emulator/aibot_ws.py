"""The emulator's 智能机器人 long-connection endpoint (wss://openws.work.weixin.qq.com).

A `websockets` server on its own loopback port and thread (the emulator's HTTP app
may be mounted inside the sandbox server, whose loop the bot's own connection must
not depend on). It speaks the frames of notes §4.5:

- `aibot_subscribe` checks bot_id and secret (853000 "invalid bot_id or secret"
  otherwise, then closes); a second subscribed connection kicks the older one with a
  `disconnected_event`, as WeCom does;
- `ping` is acknowledged (unless a test turned acks off);
- `aibot_respond_msg` must echo the req_id of a message pushed here, with a stream
  reply; one finished reply per message (a second answers 40058). Accepted replies
  go into the emulator's sent log (api `aibot_respond_msg`, target the chat).

Control (thread-safe, also behind /_emulator/aibot/…): push an @-mention to the
connected bot, drop every connection from the server side, stop acking pings, make
the next reply fail with an errcode. Every frame the bot sends is kept in `frames`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bot.sandbox.emulator.state import EmulatorState, JSONDict

T = TypeVar("T")

BAD_CREDENTIALS = (853000, "invalid bot_id or secret")
STREAM_LIMIT = 20480
MAX_FRAMES = 5000
CONTROL_TIMEOUT = 5.0


class NotConnected(Exception):
    """No bot holds a subscribed connection, so nothing can be pushed to it."""


class AibotHub:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        state.aibot_hub = self
        self.url = ""
        self.ack_pings = True
        self.subscribes = 0  # aibot_subscribe frames received, refused ones included
        # The latest frames the bot sent (pings every 30 s would grow a list forever).
        self._frames: deque[JSONDict] = deque(maxlen=MAX_FRAMES)
        self._frame_seq = 0
        self._reply_errors: list[int] = []  # errcodes the next replies are answered with
        self._pushed: dict[str, JSONDict] = {}  # req_id -> the message pushed with it
        self._finished: set[str] = set()  # req_ids already answered with finish=true
        self._connections: list[ServerConnection] = []  # subscribed, oldest first
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on its own thread; returns the ws:// URL once it accepts connections."""
        started = threading.Event()
        failure: list[BaseException] = []

        async def open_server() -> Server:
            return await serve(self._handle, host, port)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(open_server())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            bound = self._server.sockets[0].getsockname()
            url_host = f"[{host}]" if ":" in host else host
            self.url = f"ws://{url_host}:{bound[1]}"
            started.set()
            try:
                loop.run_until_complete(self._server.wait_closed())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="wecom-emulator-aibot", daemon=True)
        self._thread.start()
        if not started.wait(10) or failure:
            raise RuntimeError(f"the emulator's long-connection endpoint did not start: {failure}")
        return self.url

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None or loop.is_closed():
            return

        async def shut() -> None:
            server.close()
            await server.wait_closed()

        with contextlib.suppress(Exception):  # already gone
            asyncio.run_coroutine_threadsafe(shut(), loop).result(CONTROL_TIMEOUT)
        if self._thread is not None:
            self._thread.join(CONTROL_TIMEOUT)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise NotConnected("the long-connection endpoint is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(CONTROL_TIMEOUT)

    # -- control ----------------------------------------------------------------------------

    @property
    def connected(self) -> int:
        with self._lock:
            return len(self._connections)

    def frames(self, cmd: str | None = None) -> list[JSONDict]:
        """Every frame the bot sent (or those of one cmd), oldest first."""
        with self._lock:
            return [f for f in self._frames if cmd is None or f["frame"].get("cmd") == cmd]

    def fail_next_reply(self, errcode: int) -> None:
        with self._lock:
            self._reply_errors.append(errcode)

    def push_mention(
        self,
        *,
        sender: str,
        text: str,
        chat_id: str | None = None,
        msgid: str | None = None,
        bot_name: str = "智能助手",
    ) -> tuple[str, str]:
        """An @-mention (group) or a 单聊 message (no chat_id) to the connected bot, as an
        `aibot_msg_callback` frame; returns (req_id, msgid)."""
        msgid = msgid or f"aibot_{secrets.token_hex(10)}"
        body: JSONDict = {
            "msgid": msgid,
            "aibotid": self.state.aibot_id,
            "chattype": "group" if chat_id else "single",
            "from": {"userid": sender},
            "msgtype": "text",
            "text": {"content": f"@{bot_name} {text}" if chat_id else text},
        }
        if chat_id:
            body["chatid"] = chat_id
        req_id = f"aibot_msg_callback_{int(time.time() * 1000)}_{secrets.token_hex(4)}"
        frame = {"cmd": "aibot_msg_callback", "headers": {"req_id": req_id}, "body": body}
        self._call(self._push(req_id, body, frame))
        return req_id, msgid

    def drop(self) -> int:
        """Close every connection from the server side; returns how many."""
        return self._call(self._drop())

    # -- the server's side ------------------------------------------------------------------

    async def _push(self, req_id: str, body: JSONDict, frame: JSONDict) -> None:
        with self._lock:
            if not self._connections:
                raise NotConnected("no bot is connected to the long-connection endpoint")
            newest = self._connections[-1]
            self._pushed[req_id] = body
        await newest.send(json.dumps(frame, ensure_ascii=False))

    async def _drop(self) -> int:
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            await connection.close(1012, "server restart")
        return len(connections)

    async def _handle(self, ws: ServerConnection) -> None:
        subscribed = False
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    await ws.close(1003, "not JSON")
                    return
                if not isinstance(frame, dict):
                    await ws.close(1003, "not a frame")
                    return
                self._record(frame)
                cmd = frame.get("cmd")
                headers = frame.get("headers")
                req_id = str(headers.get("req_id") or "") if isinstance(headers, dict) else ""
                given = frame.get("body")
                body: JSONDict = given if isinstance(given, dict) else {}
                if cmd == "aibot_subscribe":
                    subscribed = await self._subscribe(ws, req_id, body)
                    if not subscribed:
                        await ws.close(1008, "invalid bot_id or secret")
                        return
                elif not subscribed:
                    await ws.close(1008, "subscribe first")
                    return
                elif cmd == "ping":
                    if self.ack_pings:
                        await ws.send(_ack(req_id, 0, "ok"))
                elif cmd == "aibot_respond_msg":
                    errcode, errmsg = self._reply(req_id, body)
                    await ws.send(_ack(req_id, errcode, errmsg))
                else:
                    await ws.send(_ack(req_id, 40008, "invalid message type"))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if ws in self._connections:
                    self._connections.remove(ws)

    async def _subscribe(self, ws: ServerConnection, req_id: str, body: JSONDict) -> bool:
        with self._lock:
            self.subscribes += 1
        if (
            body.get("bot_id") != self.state.aibot_id
            or body.get("secret") != self.state.aibot_secret
        ):
            await ws.send(_ack(req_id, *BAD_CREDENTIALS))
            return False
        with self._lock:
            older = list(self._connections)
            self._connections = [ws]
        await ws.send(_ack(req_id, 0, "ok"))
        for connection in older:  # one connection per bot: the newer kicks the older
            event = {
                "cmd": "aibot_event_callback",
                "headers": {"req_id": f"aibot_event_callback_{secrets.token_hex(6)}"},
                "body": {
                    "msgtype": "event",
                    "aibotid": self.state.aibot_id,
                    "event": {"eventtype": "disconnected_event"},
                },
            }
            try:
                await connection.send(json.dumps(event))
                await connection.close(1000, "a newer connection took over")
            except ConnectionClosed:
                pass
        return True

    def _reply(self, req_id: str, body: JSONDict) -> tuple[int, str]:
        with self._lock:
            message = self._pushed.get(req_id)
            if message is None:
                return 40058, "invalid req_id: no message was pushed with it"
            if req_id in self._finished:
                return 40058, "the reply to this message has finished already"
            if self._reply_errors:
                errcode = self._reply_errors.pop(0)
                return errcode, "injected by the emulator"
        stream = body.get("stream") if body.get("msgtype") == "stream" else None
        if not isinstance(stream, dict) or not stream.get("id"):
            return 40058, "a reply needs msgtype stream with stream.id"
        content = stream.get("content")
        if not isinstance(content, str) or len(content.encode("utf-8")) > STREAM_LIMIT:
            return 40058, f"stream.content must be a string of at most {STREAM_LIMIT} bytes"
        if stream.get("finish") is True:
            with self._lock:
                self._finished.add(req_id)
            target = str(message.get("chatid") or (message.get("from") or {}).get("userid") or "")
            self.state.record("aibot_respond_msg", target, body)
        return 0, "ok"

    def _record(self, frame: JSONDict) -> None:
        with self._lock:
            self._frame_seq += 1
            self._frames.append({"seq": self._frame_seq, "at": time.time(), "frame": frame})


def _ack(req_id: str, errcode: int, errmsg: str) -> str:
    return json.dumps({"headers": {"req_id": req_id}, "errcode": errcode, "errmsg": errmsg})
