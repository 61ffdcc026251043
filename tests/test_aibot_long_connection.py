"""The 智能机器人 long connection (SPEC §10) against the emulator's WebSocket endpoint, on
SQLite and PostgreSQL: an @-mention answered on the same connection, a server drop
survived, the heartbeat, bad credentials, a takeover, and one connection for two
replicas. Waits are on conditions (tests/helpers.py wait_for), never sleeps."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import connect

from bot.config.settings import (
    SANDBOX_AIBOT_ID,
    SANDBOX_AIBOT_SECRET,
    ConfigError,
    load_settings,
)
from bot.runtime import build_runtime, utc_now
from bot.sandbox.emulator.server import RunningEmulator
from bot.sources.aibot_link.link import AibotLink
from handlers.channels import compose_aibot_reply
from handlers.features.content.library import ContentIn, upsert_many
from storage import outbox
from storage.inbox_append import InboxAppender
from storage.models import OutboxItem
from tests.conftest import make_settings
from tests.helpers import AUTH, LiveApp, configured_settings, live_app, wait_for

CHAT = "wrLinked"
INVOICE = ContentIn(
    title="增值税发票开具指南",
    url="https://example.com/fapiao",
    keywords=["发票", "增值税"],
    source="own",
)


def linked_settings(
    database_url: str, templates_dir: Path, emulator: RunningEmulator, **extra: Any
) -> Any:
    values: dict[str, Any] = {
        "wecom_aibot_id": SANDBOX_AIBOT_ID,
        "wecom_aibot_secret": SANDBOX_AIBOT_SECRET,
        "wecom_aibot_ws_url": emulator.ws_url,
        "aibot_heartbeat_seconds": 1.0,
    }
    values.update(extra)
    return configured_settings(
        database_url=database_url,
        templates_dir=templates_dir,
        api_base=emulator.base_url,
        **values,
    )


@asynccontextmanager
async def linked_app(settings: Any) -> AsyncIterator[LiveApp]:
    """The whole service with its background loops (inbox, dispatcher, the long
    connection), a library item to answer with, once the connection is up."""
    async with live_app(settings, background=True) as app:
        async with app.runtime.sessions() as session:
            await upsert_many(session, [INVOICE], now=utc_now())
            await session.commit()
        link = app.runtime.link
        assert link is not None
        await wait_for(lambda: link.live, within=15)
        yield app


def stream_replies(emulator: RunningEmulator) -> list[dict[str, Any]]:
    """The aibot_respond_msg frames the bot sent, oldest first."""
    return [entry["frame"] for entry in emulator.aibot.frames("aibot_respond_msg")]


def subscribes(emulator: RunningEmulator) -> int:
    return len(emulator.aibot.frames("aibot_subscribe"))


async def push(emulator: RunningEmulator, text: str, **extra: Any) -> str:
    # Off the test's loop: the hub waits for its own loop, and the bot's side of the
    # connection runs on this one.
    req_id, _ = await asyncio.to_thread(
        emulator.aibot.push_mention, sender=extra.pop("sender", "wmA"), text=text, **extra
    )
    return req_id


async def test_a_mention_is_answered_on_the_connection_and_after_a_drop_on_the_new_one(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    settings = linked_settings(database_url, templates_dir, emulator)
    async with linked_app(settings) as app:
        link = app.runtime.link
        assert link is not None
        first = await push(emulator, "增值税发票怎么开", chat_id=CHAT)
        await wait_for(lambda: len(stream_replies(emulator)) == 1, within=15)
        [reply] = stream_replies(emulator)
        assert reply["headers"]["req_id"] == first
        stream = reply["body"]["stream"]
        assert reply["body"]["msgtype"] == "stream" and stream["finish"] is True
        assert stream["content"].split("\n")[:2] == [
            "这些资料可能有帮助：",
            "1. [增值税发票开具指南](https://example.com/fapiao)",
        ]
        assert subscribes(emulator) == 1
        # The server drops the connection: the bot reconnects and subscribes again.
        assert await asyncio.to_thread(emulator.aibot.drop) == 1
        await wait_for(lambda: subscribes(emulator) == 2 and link.live, within=15)
        second = await push(emulator, "发票", chat_id=CHAT, sender="wmB")
        await wait_for(lambda: len(stream_replies(emulator)) == 2, within=15)
        assert stream_replies(emulator)[1]["headers"]["req_id"] == second

        async def rows() -> list[tuple[str, str, str]]:
            async with app.runtime.sessions() as session:
                found = await session.scalars(select(OutboxItem).order_by(OutboxItem.id))
                return [(r.channel, r.status, r.target) for r in found]

        async def both_sent() -> bool:  # marked once the ack is in
            return await rows() == [("aibot_stream", "sent", CHAT)] * 2

        await wait_for(both_sent, within=15)
        # The emulator's sent log (the sandbox's "sent" view) has both replies.
        sent = [r for r in emulator.state.sent_since(0) if r.api == "aibot_respond_msg"]
        assert [r.target for r in sent] == [CHAT, CHAT]


async def test_a_message_pushed_twice_is_answered_once(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    settings = linked_settings(database_url, templates_dir, emulator)
    async with linked_app(settings) as app:
        duplicates = app.runtime.metrics.callbacks.labels("aibot-ws", "duplicate")
        await push(emulator, "发票", chat_id=CHAT, msgid="same-msg")
        await wait_for(lambda: len(stream_replies(emulator)) == 1, within=15)
        await push(emulator, "发票", chat_id=CHAT, msgid="same-msg")  # WeCom sends it again
        await wait_for(lambda: duplicates._value.get() == 1, within=15)
        await app.runtime.inbox.drain()
        await app.runtime.dispatcher.drain()
        assert len(stream_replies(emulator)) == 1


async def test_a_refused_reply_fails_its_row_with_the_code(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    settings = linked_settings(database_url, templates_dir, emulator)
    async with linked_app(settings) as app:
        emulator.aibot.fail_next_reply(600039)
        await push(emulator, "发票", chat_id=CHAT)

        async def failed() -> list[OutboxItem]:
            async with app.runtime.sessions() as session:
                query = select(OutboxItem).where(OutboxItem.status == "failed")
                return list((await session.scalars(query)).all())

        async def one_failed() -> bool:
            return len(await failed()) == 1

        await wait_for(one_failed, within=15)
        [row] = await failed()
        assert row.channel == "aibot_stream" and row.attempts == 1
        assert str(row.last_error).startswith("600039: ")
        listed = await app.http.get("/admin/outbox", headers=AUTH, params={"status": "failed"})
        assert listed.json()[0]["last_error"].startswith("600039")


async def test_pings_keep_their_interval_and_a_missing_ack_reconnects(
    database_url: str,
    templates_dir: Path,
    emulator: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    beat = 0.25
    settings = linked_settings(database_url, templates_dir, emulator, aibot_heartbeat_seconds=beat)
    caplog.set_level(logging.WARNING, logger="bot.sources.aibot_link.link")
    async with linked_app(settings) as app:
        link = app.runtime.link
        assert link is not None
        hub = emulator.aibot
        await wait_for(lambda: len(hub.frames("ping")) >= 4, within=15)
        pings = [entry["at"] for entry in hub.frames("ping")]
        gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
        assert min(gaps) >= beat * 0.9  # never sooner than the interval
        assert min(gaps) < 1.5  # the configured interval, not the 30 s default
        assert subscribes(emulator) == 1
        hub.ack_pings = False  # the server goes silent
        await wait_for(lambda: subscribes(emulator) >= 2, within=15)
        hub.ack_pings = True
        await wait_for(lambda: link.live, within=15)
        assert any("no ack for a ping" in r.getMessage() for r in caplog.records)


def _link(
    emulator: RunningEmulator,
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    **options: Any,
) -> AibotLink:
    values: dict[str, Any] = {
        "url": emulator.ws_url,
        "bot_id": SANDBOX_AIBOT_ID,
        "secret": SANDBOX_AIBOT_SECRET,
        "sessions": sessions,
        "appender": appender,
        "clock": utc_now,
        "heartbeat": 0.3,
    }
    values.update(options)
    return AibotLink(**values)


async def test_bad_credentials_are_logged_once_and_retried_slowly_without_a_crash(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.sources.aibot_link.link")
    link = _link(emulator, sessions, appender, secret="not-the-secret", refused_retry=0.4)
    stop = asyncio.Event()
    running = asyncio.create_task(link.run(stop))
    try:
        await wait_for(lambda: subscribes(emulator) >= 3, within=15)
        assert not running.done() and not link.live and link.subscriptions == 0
        times = [entry["at"] for entry in emulator.aibot.frames("aibot_subscribe")]
        assert all(b - a >= 0.4 * 0.85 for a, b in itertools.pairwise(times))
        refusals = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(refusals) == 1  # one clear line, not one per try
        line = refusals[0].getMessage()
        assert "WECOM_AIBOT_SECRET" in line and "853000" in line
    finally:
        stop.set()
        await running
        await link.aclose()


async def test_two_replicas_hold_one_connection_and_the_other_takes_over(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
) -> None:
    links = [_link(emulator, sessions, appender), _link(emulator, sessions, appender)]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(link.run(stop)) for link, stop in zip(links, stops, strict=True)]
    try:
        await wait_for(lambda: any(link.live for link in links), within=15)
        holder = 0 if links[0].live else 1
        standby = links[1 - holder]
        await wait_for(lambda: standby.lease_refusals >= 3, within=15)
        assert subscribes(emulator) == 1 and emulator.aibot.connected == 1
        assert not standby.live
        # The holder's replica stops: the other one connects.
        stops[holder].set()
        await tasks[holder]
        await links[holder].aclose()
        await wait_for(lambda: standby.live, within=15)
        assert subscribes(emulator) == 2 and emulator.aibot.connected == 1
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
        for link in links:
            await link.aclose()


async def test_a_newer_connection_for_the_bot_is_logged_and_backed_off_from(
    sessions: async_sessionmaker[AsyncSession],
    appender: InboxAppender,
    emulator: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.sources.aibot_link.link")
    link = _link(emulator, sessions, appender)
    stop = asyncio.Event()
    running = asyncio.create_task(link.run(stop))
    try:
        await wait_for(lambda: link.live, within=15)
        # Someone else connects with the same bot (another deployment): WeCom keeps the
        # newer connection and tells the older one.
        async with connect(emulator.ws_url, proxy=None) as rogue:
            frame = {
                "cmd": "aibot_subscribe",
                "headers": {"req_id": "rogue-1"},
                "body": {"bot_id": SANDBOX_AIBOT_ID, "secret": SANDBOX_AIBOT_SECRET},
            }
            await rogue.send(json.dumps(frame))
            assert json.loads(await rogue.recv())["errcode"] == 0
            await wait_for(
                lambda: any("took over" in r.getMessage() for r in caplog.records), within=15
            )
            await wait_for(lambda: subscribes(emulator) == 3 and link.live, within=15)
    finally:
        stop.set()
        await running
        await link.aclose()


async def test_a_replica_without_the_connection_leaves_its_replies_alone(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    runtime = await build_runtime(settings, api_base=emulator.base_url)
    try:
        assert runtime.link is None
        async with runtime.sessions() as session, session.begin():
            for req_id, url in (("req-1", None), (None, "http://127.0.0.2:1/r")):
                message = compose_aibot_reply(
                    req_id=req_id,
                    response_url=url,
                    received_at=utc_now(),
                    text="这些资料可能有帮助：",
                    origin="keyword_answer",
                    chat_id=CHAT,
                    member_id=f"wm{req_id}",
                    dedup_key=f"k-{req_id}",
                )
                await outbox.enqueue(session, message, now=utc_now())
        # The response_url row is handled (refused: another host); the stream row waits.
        assert await runtime.dispatcher.run_once() == 1
        assert await runtime.dispatcher.run_once() == 0
        assert await runtime.dispatcher.idle_wait() == 5.0  # sleeps, does not spin on it
        async with runtime.sessions() as session:
            rows = (await session.scalars(select(OutboxItem).order_by(OutboxItem.id))).all()
        assert [(r.channel, r.status) for r in rows] == [
            ("aibot_stream", "pending"),
            ("aibot_response", "failed"),
        ]
    finally:
        await runtime.aclose()


async def test_the_sandbox_holds_the_connection_to_its_own_emulator(
    tmp_path: Path, templates_dir: Path
) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}",
        sop_templates_dir=templates_dir,
        aibot_heartbeat_seconds=1.0,
    )
    async with live_app(settings, background=True) as app:
        link = app.runtime.link
        assert link is not None
        await wait_for(lambda: link.live, within=15)
        auth = {"Authorization": f"Bearer {app.app.state.admin_token}"}
        created = await app.http.post(
            "/admin/content",
            headers=auth,
            json={"title": "沙盒资料", "url": "https://example.com/s", "keywords": ["沙盒资料"]},
        )
        assert created.status_code == 201, created.text
        pushed = await app.http.post(
            "/sandbox/wecom/_emulator/aibot/mentions",
            json={"sender": "wmAlice", "text": "有没有沙盒资料", "chat_id": "wrSandboxDemoGroup"},
        )
        assert pushed.status_code == 201, pushed.text

        async def answered() -> list[dict[str, Any]]:
            got = await app.http.get("/admin/sandbox/sent", headers=auth)
            return [r for r in got.json() if r["api"] == "aibot_respond_msg"]

        async def has_answer() -> bool:
            return len(await answered()) == 1

        await wait_for(has_answer, within=15)
        [reply] = await answered()
        assert "[沙盒资料](https://example.com/s)" in reply["body"]["stream"]["content"]
        # A drop by the emulator: the sandbox reconnects too.
        assert await asyncio.to_thread(app.app.state.emulator.aibot_hub.drop) == 1
        await wait_for(lambda: link.subscriptions == 2 and link.live, within=15)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WECOM_AIBOT_ID": "bot1"}, "WECOM_AIBOT_ID is set, so WECOM_AIBOT_SECRET"),
        ({"WECOM_AIBOT_SECRET": "s"}, "WECOM_AIBOT_SECRET is set, so WECOM_AIBOT_ID"),
        ({"WECOM_AIBOT_WS_URL": "https://openws.work.weixin.qq.com"}, "WECOM_AIBOT_WS_URL:"),
        ({"AIBOT_HEARTBEAT_SECONDS": "0"}, "AIBOT_HEARTBEAT_SECONDS:"),
    ],
)
def test_a_half_configured_long_connection_stops_start_with_one_line(
    monkeypatch: pytest.MonkeyPatch, templates_dir: Path, env: dict[str, str], needle: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, sop_templates_dir=templates_dir)
    assert needle in str(refused.value) and "\n" not in str(refused.value)


def test_both_credentials_turn_the_long_connection_on(templates_dir: Path) -> None:
    on = make_settings(
        sop_templates_dir=templates_dir,
        wecom_corp_id="ww1",
        wecom_corp_secret="s",
        wecom_token="t",
        wecom_encoding_aes_key="6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        wecom_aibot_id="bot1",
        wecom_aibot_secret="secret1",
    )
    assert on.aibot_linking and (on.aibot_id, on.aibot_secret) == ("bot1", "secret1")
    assert on.wecom_aibot_ws_url == "wss://openws.work.weixin.qq.com"
    off = make_settings(
        sop_templates_dir=templates_dir,
        wecom_corp_id="ww1",
        wecom_corp_secret="s",
        wecom_token="t",
        wecom_encoding_aes_key="6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
    )
    assert not off.aibot_linking


async def test_the_emulator_s_endpoint_refuses_what_wecom_refuses(
    emulator: RunningEmulator,
) -> None:
    import httpx

    control = f"{emulator.base_url}/_emulator/aibot"
    async with httpx.AsyncClient() as http:
        assert (await http.get(control)).status_code == 404  # no endpoint started yet
        hub = emulator.aibot
        nobody = await http.post(f"{control}/mentions", json={"sender": "wmA", "text": "在吗"})
        assert nobody.status_code == 409 and "no bot is connected" in nobody.text
        assert (await http.get(control)).json()["connected"] == 0

    def subscribe(secret: str) -> str:
        body = {"bot_id": SANDBOX_AIBOT_ID, "secret": secret}
        return json.dumps({"cmd": "aibot_subscribe", "headers": {"req_id": "s1"}, "body": body})

    async with connect(hub.url, proxy=None) as ws:
        await ws.send(subscribe("wrong"))
        answer = json.loads(await ws.recv())
        assert (answer["errcode"], answer["errmsg"]) == (853000, "invalid bot_id or secret")
        await ws.wait_closed()
    async with connect(hub.url, proxy=None) as ws:  # anything before subscribing: closed
        await ws.send(json.dumps({"cmd": "ping", "headers": {"req_id": "p1"}}))
        await ws.wait_closed()
        assert ws.close_code == 1008
    async with connect(hub.url, proxy=None) as ws:
        await ws.send(subscribe(SANDBOX_AIBOT_SECRET))
        assert json.loads(await ws.recv())["errcode"] == 0
        req_id = await push(emulator, "在吗")
        assert json.loads(await ws.recv())["headers"]["req_id"] == req_id
        reply = {"msgtype": "stream", "stream": {"id": "s", "finish": True, "content": "在"}}
        for echoed, errcode in ((req_id, 0), (req_id, 40058), ("unknown", 40058)):
            frame = {"cmd": "aibot_respond_msg", "headers": {"req_id": echoed}, "body": reply}
            await ws.send(json.dumps(frame))
            assert json.loads(await ws.recv())["errcode"] == errcode
    assert [r.target for r in emulator.state.sent_since(0)] == ["wmA"]  # 单聊: the member


def test_simulate_mention_and_at_bot_are_answered_through_the_bot_in_the_sandbox(
    tmp_path: Path,
) -> None:
    """`serve` (sandbox) holds the long connection to its emulator: `simulate mention`
    is answered on it, `simulate message --at-bot` through its response_url."""
    import shutil

    import httpx

    from tests.conftest import SHIPPED_TEMPLATES
    from tests.procs import cli_env, run_cli, server, wait_until

    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    env = cli_env(tmp_path, ADMIN_TOKEN="sim-admin", AIBOT_HEARTBEAT_SECONDS="1")
    with server(env, tmp_path) as srv:
        created = httpx.post(
            f"{srv.url}/admin/content",
            headers={"Authorization": "Bearer sim-admin"},
            json={"title": "私域运营手册", "url": "https://example.com/sy", "keywords": ["私域"]},
            timeout=10,
        )
        assert created.status_code == 201, created.text

        def mentioned() -> bool:
            done = run_cli(
                ["simulate", "mention", "--member", "wmAlice", "--text", "有没有私域的资料"],
                env,
                tmp_path,
            )
            return done.returncode == 0 and "pushed as aibot_msg_callback_" in done.stdout

        wait_until(mentioned, timeout=20)  # until the server's connection is up

        def answered(api: str) -> bool:
            sent = run_cli(["sandbox", "sent"], env, tmp_path).stdout
            return api in sent and "[私域运营手册](https://example.com/sy)" in sent

        wait_until(lambda: answered("aibot_respond_msg → wrSandboxDemoGroup"), timeout=20)
        at_bot = run_cli(
            ["simulate", "message", "--member", "wmAlice", "--text", "私域", "--at-bot"],
            env,
            tmp_path,
        )
        assert at_bot.returncode == 0, at_bot.stderr
        wait_until(lambda: answered("aibot/response → wrSandboxDemoGroup"), timeout=20)


def test_simulate_mention_needs_the_sandbox(tmp_path: Path) -> None:
    from tests.procs import cli_env, run_cli

    env = cli_env(
        tmp_path,
        WECOM_CORP_ID="ww1",
        WECOM_CORP_SECRET="s",
        WECOM_TOKEN="t",
        WECOM_ENCODING_AES_KEY="6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        SOP_TEMPLATES_DIR=str(Path(__file__).resolve().parent.parent / "sop_templates"),
    )
    refused = run_cli(["simulate", "mention", "--member", "u1", "--text", "在吗"], env, tmp_path)
    assert refused.returncode == 2
    assert "drives the sandbox emulator only" in refused.stderr
