"""智能机器人 replies (issue 10): how a reply reads and travels, and the HTTP-callback
mode live — an @-mention through /wecom/aibot/callback answered by exactly one POST to
its response_url, never twice, never after its hour, never to another host — on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.sandbox.emulator.server import RunningEmulator
from bot.sandbox.simulate import aibot_text_json, sign_json
from bot.wecom.client import WeComClient
from bot.wecom.crypto import WeComCrypto
from bot.wecom.errors import WeComError
from handlers.channels import CannotPost, compose_aibot_reply
from handlers.channels.aibot_reply import REPLY_TTL, fit
from handlers.channels.registry import CHANNELS
from handlers.core.actions import AibotReplyTo
from handlers.core.events import Message
from handlers.features.content.answers import Offered, markdown_reply, nothing_found_text
from handlers.features.content.library import ContentIn, upsert_many
from storage.models import KeywordAnswer, OutboxItem, UnansweredQuestion
from tests.conftest import TEST_CORP_ID, TEST_CORP_SECRET
from tests.helpers import AES_KEY, AUTH, MORNING, TOKEN, Clock, LiveApp, live_webhook_group, settle

GROUP = "wrAibotAsk"
MEMBERS = {"wmA": "小安", "wmB": "小白"}
T0 = MORNING
AIBOT = WeComCrypto(TOKEN, AES_KEY, "")  # 智能机器人 callbacks: empty receive-id

INVOICE = ContentIn(
    title="增值税发票开具指南",
    url="https://example.com/fapiao",
    keywords=["发票", "增值税"],
    source="own",
)
SOCIAL = ContentIn(
    title="员工社保缴纳操作手册",
    body="入职后在线缴纳",
    summary="新员工入职后如何在线缴纳社保和公积金",
    keywords=["社保手册"],
    source="own",
)

# --- pure: how a reply reads, which channel carries it --------------------------------


def test_a_markdown_reply_links_titles_and_summarizes_the_rest() -> None:
    text = markdown_reply(
        [
            Offered("发票[2026]指南", "https://example.com/f", "不显示"),
            Offered("报销流程", None, "先填单，再找财务签字"),
        ]
    )
    assert text.split("\n") == [
        "这些资料可能有帮助：",
        "1. [发票【2026】指南](https://example.com/f)",  # brackets would end the link text
        "2. 报销流程：先填单，再找财务签字",
    ]
    assert "记下来了" in nothing_found_text(recorded=True)
    assert "记下" not in nothing_found_text(recorded=False)


def test_a_reply_is_one_row_cut_to_fit_never_split() -> None:
    long = "\n".join(f"{n}. 第{n}条资料" for n in range(2000))
    cut = fit(long, 4096)
    assert len(cut.encode("utf-8")) <= 4096 and cut.endswith("\n…")
    assert cut.startswith("0. 第0条资料\n1. ")
    assert fit("短", 4096) == "短"
    one_line = fit("长" * 5000, 300)
    assert len(one_line.encode("utf-8")) <= 300 and one_line.endswith("…")


def _event(**extra: Any) -> Message:
    values: dict[str, Any] = {
        "source": "aibot",
        "chat_id": GROUP,
        "occurred_at": T0,
        "sender": "wmA",
        "mentioned_bot": True,
    }
    values.update(extra)
    return Message(**values)


def test_a_message_is_answered_through_the_bot_only_with_a_handle() -> None:
    assert AibotReplyTo.of(_event()) is None  # no response_url, no req_id
    assert AibotReplyTo.of(_event(source="archive", response_url="https://x/y")) is None
    by_url = AibotReplyTo.of(_event(response_url="https://qyapi.weixin.qq.com/r?c=1"))
    assert by_url is not None and by_url.received_at == T0
    both = AibotReplyTo.of(_event(response_url="https://q/r", aibot_req_id="req-1"))
    assert both is not None and both.req_id == "req-1"


def test_the_long_connection_wins_and_a_reply_expires_after_its_hour() -> None:
    common: dict[str, Any] = {
        "received_at": T0,
        "text": "这些资料可能有帮助：",
        "origin": "keyword_answer",
        "chat_id": None,
        "member_id": "wmA",
        "dedup_key": "k1",
    }
    stream = compose_aibot_reply(req_id="req-1", response_url="https://q/r", **common)
    assert stream.channel == "aibot_stream" and stream.target == "single:wmA"
    assert stream.payload["reply_to"] == "req-1"
    body = stream.payload["body"]
    assert body["msgtype"] == "stream" and body["stream"]["finish"] is True
    assert body["stream"]["content"] == "这些资料可能有帮助："
    http = compose_aibot_reply(req_id=None, response_url="https://q/r", **common)
    assert http.channel == "aibot_response" and http.payload["reply_to"] == "https://q/r"
    assert http.payload["body"] == {"msgtype": "markdown", "markdown": {"content": common["text"]}}
    with pytest.raises(CannotPost):
        compose_aibot_reply(req_id=None, response_url=None, **common)
    channel = CHANNELS["aibot_response"]
    assert channel.stale_reason(http.payload, T0 + REPLY_TTL) is None
    late = channel.stale_reason(http.payload, T0 + REPLY_TTL + timedelta(seconds=1))
    assert late is not None and "expired" in late and "60 min" in late
    assert "cannot be sent" in str(channel.stale_reason({}, T0))
    assert CHANNELS["aibot_stream"].needs_connection and not channel.needs_connection


# --- the client: one POST, only to WeCom's own host ------------------------------------


def _client(emulator: RunningEmulator) -> WeComClient:
    return WeComClient(
        api_base=emulator.base_url, corp_id=TEST_CORP_ID, corp_secret=TEST_CORP_SECRET
    )


async def test_the_client_posts_a_response_url_once_and_a_second_call_is_final(
    emulator: RunningEmulator,
) -> None:
    code = emulator.state.issue_response_code(GROUP)
    url = f"{emulator.base_url}/cgi-bin/aibot/response?response_code={code}"
    body = {"msgtype": "markdown", "markdown": {"content": "你好"}}
    async with _client(emulator) as client:
        assert (await client.aibot_response(url, body))["errcode"] == 0
        with pytest.raises(WeComError) as used:
            await client.aibot_response(url, body)
    assert used.value.kind == "permanent" and "already used" in used.value.errmsg
    assert emulator.state.calls["gettoken"] == 0  # no access_token for a response_url
    [record] = [r for r in emulator.state.sent_since(0) if r.api == "aibot/response"]
    assert (record.target, record.body) == (GROUP, body)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/cgi-bin/aibot/response?response_code=x",
        "http://127.0.0.2:9/cgi-bin/aibot/response?response_code=x",  # another host
        "/cgi-bin/aibot/response?response_code=x",  # not an absolute address
        "ftp://127.0.0.1/x",
    ],
)
async def test_the_client_never_posts_off_wecom_s_host(emulator: RunningEmulator, url: str) -> None:
    calls: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"errcode": 0})

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    async with WeComClient(
        api_base="http://127.0.0.1:8999", corp_id="ww", corp_secret="s", http=http
    ) as client:
        with pytest.raises(WeComError) as refused:
            await client.aibot_response(url, {"msgtype": "markdown", "markdown": {"content": "x"}})
    await http.aclose()
    assert refused.value.kind == "permanent" and "not called" in refused.value.errmsg
    assert calls == []


# --- live: HTTP-callback mode ------------------------------------------------------------


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    clock = Clock(T0)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="答疑群",
        members=MEMBERS,
        joined=True,
    ) as app:
        async with app.runtime.sessions() as session:
            await upsert_many(session, [INVOICE, SOCIAL], now=T0)
            await session.commit()
        yield app, clock


def response_url(emulator: RunningEmulator, target: str = GROUP) -> str:
    code = emulator.state.issue_response_code(target)
    return f"{emulator.base_url}/cgi-bin/aibot/response?response_code={code}"


async def ask(
    app: LiveApp,
    *,
    msgid: str,
    text: str,
    url: str,
    chat_id: str | None = GROUP,
    sender: str = "wmA",
) -> tuple[dict[str, str], str]:
    """An @-mention callback, signed and encrypted as WeCom sends it; returns the request
    so a test can replay it."""
    payload = aibot_text_json(
        chat_id=chat_id, sender=sender, content=f"@小助手 {text}", msg_id=msgid, response_url=url
    )
    signed = sign_json(AIBOT, payload)
    answer = await app.http.post("/wecom/aibot/callback", params=signed.params, content=signed.body)
    assert answer.status_code == 200 and answer.content == b""  # the empty package, at once
    return signed.params, signed.body


def replies(emulator: RunningEmulator) -> list[tuple[str, str]]:
    return [
        (record.target, str(record.body["markdown"]["content"]))
        for record in emulator.state.sent_since(0)
        if record.api == "aibot/response"
    ]


def webhook_posts(emulator: RunningEmulator) -> list[Any]:
    return [record for record in emulator.state.sent_since(0) if record.api == "webhook/send"]


async def outbox_rows(app: LiveApp) -> list[OutboxItem]:
    got = await app.http.get("/admin/outbox", headers=AUTH)
    assert got.status_code == 200, got.text
    async with app.runtime.sessions() as session:
        return list((await session.scalars(select(OutboxItem).order_by(OutboxItem.id))).all())


async def test_an_at_mention_is_answered_by_one_post_to_its_response_url(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, _clock = live
    params, body = await ask(app, msgid="am-1", text="增值税发票怎么开", url=response_url(emulator))
    await settle(app)
    [(target, content)] = replies(emulator)
    assert target == GROUP
    assert content.split("\n")[:2] == [
        "这些资料可能有帮助：",
        "1. [增值税发票开具指南](https://example.com/fapiao)",
    ]
    assert webhook_posts(emulator) == []  # not the group robot, not an owner task
    # WeCom retries the callback: acknowledged, nothing more is sent.
    again = await app.http.post("/wecom/aibot/callback", params=params, content=body)
    assert again.status_code == 200
    await settle(app)
    assert emulator.state.calls["aibot/response"] == 1
    async with app.runtime.sessions() as session:
        answers = (await session.scalars(select(KeywordAnswer))).all()
    assert [(a.chat_id, a.source_key) for a in answers] == [(GROUP, "msg:am-1")]
    [row] = await outbox_rows(app)
    assert (row.channel, row.status, row.target) == ("aibot_response", "sent", GROUP)


async def test_an_at_mention_is_answered_even_when_the_group_just_saw_the_item(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await ask(app, msgid="am-1", text="发票", url=response_url(emulator))
    clock.advance(5)  # well inside the 60 s cooldown
    await ask(app, msgid="am-2", text="发票", url=response_url(emulator), sender="wmB")
    await settle(app)
    assert [content.split("\n")[1] for _, content in replies(emulator)] == [
        "1. [增值税发票开具指南](https://example.com/fapiao)"
    ] * 2


async def test_an_expired_response_url_sends_nothing_and_says_why(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, clock = live
    await ask(app, msgid="late-1", text="发票", url=response_url(emulator))
    clock.advance(3601)  # the service was down for an hour
    await settle(app)
    assert emulator.state.calls["aibot/response"] == 0
    got = await app.http.get("/admin/outbox", headers=AUTH, params={"status": "failed"})
    [row] = got.json()
    assert row["channel"] == "aibot_response"
    assert row["last_error"].startswith("expired: the message came 60 min ago")
    await settle(app, at=clock.now + timedelta(minutes=5))  # terminal: never tried again
    assert emulator.state.calls["aibot/response"] == 0


async def test_a_used_response_url_is_a_final_failure_not_a_retry(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, _clock = live
    url = response_url(emulator)
    async with _client(emulator) as client:  # someone else used it first
        await client.aibot_response(url, {"msgtype": "markdown", "markdown": {"content": "先"}})
    await ask(app, msgid="used-1", text="发票", url=url)
    await settle(app)
    [row] = await outbox_rows(app)
    assert (row.status, row.attempts, row.last_error_kind) == ("failed", 1, "permanent")
    assert row.last_error is not None and "already used" in row.last_error
    assert emulator.state.calls["aibot/response"] == 2  # ours was the one refused call


async def test_a_response_url_on_another_host_is_never_called(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, _clock = live
    await ask(app, msgid="evil-1", text="发票", url="http://127.0.0.2:1/cgi-bin/aibot/response")
    await settle(app)
    [row] = await outbox_rows(app)
    assert row.status == "failed" and "not WECOM_API_BASE's host" in str(row.last_error)
    assert emulator.state.calls["aibot/response"] == 0


async def test_single_chat_and_unregistered_groups_are_answered_from_the_default_playbook(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, _clock = live
    await ask(
        app,
        msgid="s-1",
        text="社保手册",
        url=response_url(emulator, "wmB"),
        chat_id=None,
        sender="wmB",
    )
    await ask(
        app, msgid="u-1", text="发票", url=response_url(emulator, "wrNobody"), chat_id="wrNobody"
    )
    await settle(app)
    got = dict(replies(emulator))
    assert (
        got["wmB"].split("\n")[1] == "1. 员工社保缴纳操作手册：新员工入职后如何在线缴纳社保和公积金"
    )
    assert got["wrNobody"].split("\n")[1] == "1. [增值税发票开具指南](https://example.com/fapiao)"
    targets = {row.target for row in await outbox_rows(app)}
    assert targets == {"single:wmB", "wrNobody"}


async def test_nothing_found_still_gets_a_kind_answer_and_is_counted(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, _clock = live
    await ask(app, msgid="n-1", text="量子计算机多少钱", url=response_url(emulator))
    await ask(app, msgid="n-2", text="？？", url=response_url(emulator, "wmB"), sender="wmB")
    await settle(app)
    assert sorted(content for _, content in replies(emulator)) == sorted(
        [nothing_found_text(recorded=True), nothing_found_text(recorded=False)]
    )
    async with app.runtime.sessions() as session:
        missed = (await session.scalars(select(UnansweredQuestion))).all()
    assert [(q.chat_id, q.text) for q in missed] == [(GROUP, "量子计算机多少钱")]
    listed = await app.http.get("/admin/questions/unanswered", headers=AUTH)
    assert listed.json()["questions"][0]["text"] == "量子计算机多少钱"


async def test_in_wait_mode_an_at_mention_is_answered_at_once(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> None:
    playbook = templates_dir / "default.yaml"
    text = playbook.read_text(encoding="utf-8")
    playbook.write_text(text.replace("  mode: immediate\n", "  mode: wait\n"), encoding="utf-8")
    clock = Clock(T0)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="答疑群",
        members=MEMBERS,
        joined=True,
    ) as app:
        async with app.runtime.sessions() as session:
            await upsert_many(session, [INVOICE], now=T0)
            await session.commit()
        await ask(app, msgid="w-1", text="发票", url=response_url(emulator))
        await settle(app)
        assert len(replies(emulator)) == 1


async def test_a_mention_without_a_way_back_outside_a_registered_group_is_left_alone(
    live: tuple[LiveApp, Clock], emulator: RunningEmulator
) -> None:
    app, _clock = live
    await ask(app, msgid="x-1", text="发票", url="", chat_id="wrNobody")
    await settle(app)
    assert await outbox_rows(app) == [] and replies(emulator) == []


def test_received_at_is_the_callback_s_instant() -> None:
    from bot.sources.aibot import normalize_aibot

    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    payload = {
        "msgid": "m",
        "msgtype": "text",
        "text": {"content": "@bot 你好"},
        "from": {"userid": "u"},
    }
    event = normalize_aibot(payload, "{}", received_at=at, req_id="r-9").event
    assert isinstance(event, Message)
    assert (event.occurred_at, event.aibot_req_id, event.response_url) == (at, "r-9", None)
