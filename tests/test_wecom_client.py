"""WeComClient against the emulator on a real loopback port: tokens, retries, limits."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from bot.sandbox.emulator import EmulatorState, Fault
from bot.sandbox.emulator.server import RunningEmulator, start_emulator_in_thread
from bot.wecom.client import WeComClient
from bot.wecom.errors import TransportError, WeComError, classify

CORP_ID = "wwclienttest0001"
SECRET = "client-test-secret"
AGENT_ID = 1000042
CHAT = {"chatid": "wrAppChat01", "msgtype": "text", "text": {"content": "早上好"}}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_emulator() -> RunningEmulator:
    return start_emulator_in_thread(
        EmulatorState(corp_id=CORP_ID, corp_secret=SECRET, agent_id=AGENT_ID)
    )


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[RunningEmulator]:
    with new_emulator() as running:
        yield running


@pytest.fixture
def emulator(shared_emulator: RunningEmulator) -> RunningEmulator:
    shared_emulator.state.reset()
    return shared_emulator


@pytest.fixture
def private_emulator() -> Iterator[RunningEmulator]:
    """For tests that stop the server or leave slow requests running in it."""
    with new_emulator() as running:
        yield running


@pytest.fixture
def state(emulator: RunningEmulator) -> EmulatorState:
    return emulator.state


def make_client(
    base_url: str,
    *,
    corp_secret: str = SECRET,
    agent_id: int | None = AGENT_ID,
    timeout: float = 2.0,
    retries: int = 2,
    backoff_base: float = 0.01,
    clock: Callable[[], float] = time.monotonic,
) -> WeComClient:
    return WeComClient(
        api_base=base_url,
        corp_id=CORP_ID,
        corp_secret=corp_secret,
        agent_id=agent_id,
        timeout=timeout,
        retries=retries,
        backoff_base=backoff_base,
        clock=clock,
    )


@pytest.fixture
async def client(emulator: RunningEmulator) -> AsyncIterator[WeComClient]:
    async with make_client(emulator.base_url) as wecom:
        yield wecom


def test_classify() -> None:
    assert [classify(c) for c in (-1, 45033)] == ["retry", "retry"]
    assert classify(45009) == "rate_limited"
    assert [classify(c) for c in (40001, 40014, 42001)] == ["auth"] * 3
    assert [classify(c) for c in (93000, 40058, 0)] == ["permanent"] * 3


# -- access token ---------------------------------------------------------------------


async def test_token_fetched_once_and_cached(client: WeComClient, state: EmulatorState) -> None:
    for _ in range(3):
        assert (await client.appchat_send(CHAT))["errcode"] == 0
    assert state.calls["gettoken"] == 1
    assert state.calls["appchat/send"] == 3
    assert [r.api for r in state.sent] == ["appchat/send"] * 3


async def test_concurrent_callers_fetch_token_once(
    client: WeComClient, state: EmulatorState
) -> None:
    tokens = await asyncio.gather(*(client.access_token() for _ in range(10)))
    assert len(set(tokens)) == 1
    assert state.calls["gettoken"] == 1


async def test_token_refreshed_before_expiry(emulator: RunningEmulator) -> None:
    clock = FakeClock()
    async with make_client(emulator.base_url, clock=clock) as wecom:
        first = await wecom.access_token()
        clock.now += 7200 - 300 - 1
        assert await wecom.access_token() == first
        clock.now += 2
        assert await wecom.access_token() != first
    assert emulator.state.calls["gettoken"] == 2


async def test_force_refresh_fetches_new_token(client: WeComClient, state: EmulatorState) -> None:
    first = await client.access_token()
    assert await client.access_token(force_refresh=True) != first
    assert state.calls["gettoken"] == 2


async def test_expired_token_42001_refetched_once(
    client: WeComClient, state: EmulatorState
) -> None:
    await client.appchat_send(CHAT)
    state.expire_tokens()
    assert (await client.appchat_send(CHAT))["errcode"] == 0
    assert state.calls["gettoken"] == 2
    # first send, the 42001 attempt, and its single retry
    assert state.calls["appchat/send"] == 3
    assert len(state.sent) == 2


async def test_invalid_token_40014_refetched_once(
    client: WeComClient, state: EmulatorState
) -> None:
    await client.appchat_send(CHAT)
    state.revoke_tokens()
    assert (await client.appchat_send(CHAT))["errcode"] == 0
    assert state.calls["gettoken"] == 2
    assert len(state.sent) == 2


async def test_concurrent_calls_with_stale_token_refetch_once(
    client: WeComClient, state: EmulatorState
) -> None:
    await client.access_token()
    state.expire_tokens()
    results = await asyncio.gather(*(client.appchat_send(CHAT) for _ in range(5)))
    assert all(r["errcode"] == 0 for r in results)
    assert state.calls["gettoken"] == 2
    assert len(state.sent) == 5


async def test_auth_error_after_refresh_is_raised(
    client: WeComClient, state: EmulatorState
) -> None:
    state.add_fault(Fault("appchat/send", errcode=42001, times=5))
    with pytest.raises(WeComError) as info:
        await client.appchat_send(CHAT)
    assert info.value.errcode == 42001
    assert info.value.kind == "auth"
    assert state.calls["gettoken"] == 2
    assert state.calls["appchat/send"] == 2
    assert state.sent == []


async def test_wrong_secret_fails_without_refetch_loop(
    emulator: RunningEmulator,
) -> None:
    async with make_client(emulator.base_url, corp_secret="wrong") as wecom:
        with pytest.raises(WeComError) as info:
            await wecom.appchat_send(CHAT)
    assert info.value.errcode == 40001
    assert info.value.kind == "auth"
    assert emulator.state.calls["gettoken"] == 1
    assert emulator.state.calls["appchat/send"] == 0


# -- retries ----------------------------------------------------------------------------


async def test_system_busy_retried_with_backoff_then_success(
    emulator: RunningEmulator,
) -> None:
    emulator.state.add_fault(Fault("appchat/send", errcode=-1, times=2))
    async with make_client(emulator.base_url, backoff_base=0.05) as wecom:
        started = time.monotonic()
        assert (await wecom.appchat_send(CHAT))["errcode"] == 0
        elapsed = time.monotonic() - started
    assert emulator.state.calls["appchat/send"] == 3
    assert len(emulator.state.sent) == 1
    assert elapsed >= 0.05 + 0.10  # backoff_base * 2**0, then * 2**1


async def test_http_502_retried_then_success(client: WeComClient, state: EmulatorState) -> None:
    state.add_fault(Fault("webhook/send", http_status=502))
    message = {"msgtype": "text", "text": {"content": "hi"}}
    assert (await client.webhook_send("robot-key", message))["errcode"] == 0
    assert state.calls["webhook/send"] == 2
    assert [(r.api, r.target) for r in state.sent] == [("webhook/send", "robot-key")]


async def test_retries_exhausted_raise_last_error(
    client: WeComClient, state: EmulatorState
) -> None:
    state.add_fault(Fault("appchat/send", errcode=45033, times=10))
    with pytest.raises(WeComError) as info:
        await client.appchat_send(CHAT)
    assert (info.value.errcode, info.value.kind) == (45033, "retry")
    assert state.calls["appchat/send"] == 3  # 1 + retries=2


async def test_per_call_retries_override(client: WeComClient, state: EmulatorState) -> None:
    state.add_fault(Fault("appchat/send", http_status=503, times=10))
    with pytest.raises(TransportError) as info:
        await client.appchat_send(CHAT, retries=0)
    assert info.value.http_status == 503
    assert info.value.errcode == 503
    assert info.value.kind == "retry"
    assert state.calls["appchat/send"] == 1


async def test_rate_limited_45009_not_retried(client: WeComClient, state: EmulatorState) -> None:
    state.add_fault(Fault("appchat/send", errcode=45009))
    with pytest.raises(WeComError) as info:
        await client.appchat_send(CHAT)
    assert (info.value.errcode, info.value.kind) == (45009, "rate_limited")
    assert state.calls["appchat/send"] == 1


async def test_invalid_webhook_key_93000_is_permanent(
    client: WeComClient, state: EmulatorState
) -> None:
    state.invalid_webhook_keys.add("removed-robot")
    with pytest.raises(WeComError) as info:
        await client.webhook_send("removed-robot", {"msgtype": "text", "text": {"content": "x"}})
    assert (info.value.errcode, info.value.kind) == (93000, "permanent")
    assert "hint" in info.value.errmsg
    assert state.calls["webhook/send"] == 1
    assert state.sent == []


async def test_timeout_raises_transport_error_after_retries(
    private_emulator: RunningEmulator,
) -> None:
    state = private_emulator.state
    state.add_fault(Fault("webhook/send", delay=0.5, times=3))
    async with make_client(private_emulator.base_url, timeout=0.1) as wecom:
        with pytest.raises(TransportError) as info:
            await wecom.webhook_send("k", {"msgtype": "text", "text": {"content": "slow"}})
    assert info.value.errcode == -2
    assert info.value.http_status is None
    assert info.value.kind == "retry"
    assert state.calls["webhook/send"] == 3


async def test_stopped_emulator_is_transport_error(private_emulator: RunningEmulator) -> None:
    private_emulator.stop()
    async with make_client(private_emulator.base_url, retries=1) as wecom:
        with pytest.raises(TransportError) as info:
            await wecom.access_token()
    assert info.value.errcode == -2


async def test_unused_port_is_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_client(f"http://127.0.0.1:{port}", retries=0) as wecom:
        with pytest.raises(TransportError) as info:
            await wecom.webhook_send("k", {"msgtype": "text", "text": {"content": "x"}})
    assert info.value.kind == "retry"


# -- typed helpers --------------------------------------------------------------------


async def test_webhook_limit_answers_45009_on_21st(
    client: WeComClient, state: EmulatorState
) -> None:
    message = {"msgtype": "markdown", "markdown": {"content": "**早报**"}}
    for _ in range(20):
        await client.webhook_send("busy-robot", message)
    with pytest.raises(WeComError) as info:
        await client.webhook_send("busy-robot", message)
    assert info.value.kind == "rate_limited"
    assert len(state.sent) == 20
    # the window is per key
    await client.webhook_send("other-robot", message)
    assert len(state.sent) == 21


async def test_groupchat_get_returns_names(client: WeComClient, state: EmulatorState) -> None:
    state.upsert_group(
        "wrCustomers01",
        name="读书会",
        owner="zhangsan",
        members=[
            {"userid": "zhangsan", "name": "张三"},
            {"userid": "wmGuest0001", "name": "李四", "invitor": "zhangsan"},
        ],
    )
    group = await client.groupchat_get("wrCustomers01")
    assert group["name"] == "读书会"
    assert group["owner"] == "zhangsan"
    members = {m["userid"]: m for m in group["member_list"]}
    assert members["wmGuest0001"]["name"] == "李四"
    assert members["wmGuest0001"]["type"] == 2
    assert members["wmGuest0001"]["invitor"] == {"userid": "zhangsan"}
    assert members["zhangsan"]["type"] == 1
    assert len(group["member_version"]) == 32

    nameless = await client.groupchat_get("wrCustomers01", need_name=False)
    assert all("name" not in m for m in nameless["member_list"])


async def test_groupchat_get_unknown_chat_is_permanent(client: WeComClient) -> None:
    with pytest.raises(WeComError) as info:
        await client.groupchat_get("wrNoSuchChat")
    assert (info.value.errcode, info.value.kind) == (40050, "permanent")


async def test_message_send_injects_agentid(client: WeComClient, state: EmulatorState) -> None:
    resp = await client.message_send(
        {"touser": "zhangsan", "msgtype": "text", "text": {"content": "有一条群发待确认"}}
    )
    assert resp["errcode"] == 0
    assert resp["msgid"]
    (record,) = state.sent
    assert (record.api, record.target) == ("message/send", "zhangsan")
    assert record.body["agentid"] == AGENT_ID


async def test_message_send_keeps_explicit_agentid(
    client: WeComClient, state: EmulatorState
) -> None:
    with pytest.raises(WeComError) as info:
        await client.message_send(
            {"touser": "a", "agentid": 7, "msgtype": "text", "text": {"content": "x"}}
        )
    assert info.value.errcode == 40056


async def test_message_send_without_agent_id_fails_before_request(
    emulator: RunningEmulator,
) -> None:
    async with make_client(emulator.base_url, agent_id=None) as wecom:
        with pytest.raises(ValueError, match="agentid"):
            await wecom.message_send({"touser": "a", "msgtype": "text", "text": {"content": "x"}})
    assert emulator.state.calls["message/send"] == 0


async def test_add_msg_template_returns_msgid(client: WeComClient, state: EmulatorState) -> None:
    state.upsert_group("wrKnown", name="known")
    resp = await client.add_msg_template(
        {
            "chat_type": "group",
            "sender": "zhangsan",
            "chat_id_list": ["wrKnown", "wrUnknown"],
            "text": {"content": "今日早报"},
        }
    )
    assert resp["msgid"]
    assert resp["fail_list"] == ["wrUnknown"]
    assert state.sent[-1].target == "wrKnown,wrUnknown"


async def test_group_welcome_template_lifecycle(client: WeComClient, state: EmulatorState) -> None:
    template_id = await client.group_welcome_template_add(
        {"text": {"content": "欢迎 %NICKNAME% 加入"}, "notify": 0}
    )
    assert state.welcome_templates[template_id]["text"]["content"] == "欢迎 %NICKNAME% 加入"
    await client.group_welcome_template_edit(template_id, {"text": {"content": "新欢迎语"}})
    assert state.welcome_templates[template_id]["text"]["content"] == "新欢迎语"
    await client.group_welcome_template_del(template_id)
    assert template_id not in state.welcome_templates
    assert [r.api for r in state.sent] == [
        "group_welcome_template/add",
        "group_welcome_template/edit",
        "group_welcome_template/del",
    ]
    with pytest.raises(WeComError) as info:
        await client.group_welcome_template_del(template_id)
    assert info.value.kind == "permanent"


async def test_aclose_leaves_injected_http_client_open(emulator: RunningEmulator) -> None:
    async with httpx.AsyncClient() as http:
        wecom = WeComClient(
            api_base=emulator.base_url, corp_id=CORP_ID, corp_secret=SECRET, http=http
        )
        await wecom.access_token()
        await wecom.aclose()
        assert not http.is_closed
        # still usable by its owner
        await WeComClient(
            api_base=emulator.base_url, corp_id=CORP_ID, corp_secret=SECRET, http=http
        ).access_token()
