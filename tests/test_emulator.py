"""The WeCom emulator app in-process: WeCom-shaped answers, faults, sent log, control API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sandbox.emulator import EmulatorState, Fault, create_emulator_app
from bot.sandbox.emulator.__main__ import main as emulator_main
from bot.sandbox.emulator.server import start_emulator_in_thread

CORP_ID = "wwemulatortest01"
SECRET = "emulator-test-secret"
AGENT_ID = 1000007

Json = dict[str, Any]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> EmulatorState:
    return EmulatorState(corp_id=CORP_ID, corp_secret=SECRET, agent_id=AGENT_ID, clock=clock)


class Api:
    """Thin helper over an in-process httpx client: every call returns the decoded JSON."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.token = ""

    async def get(self, path: str, **params: Any) -> Json:
        data: Json = (await self.http.get(path, params=params)).json()
        return data

    async def post(self, path: str, body: Any = None, **params: Any) -> Json:
        data: Json = (await self.http.post(path, params=params, json=body)).json()
        return data

    async def wecom(self, path: str, body: Any) -> Json:
        """POST a token-authenticated WeCom API."""
        return await self.post(path, body, access_token=self.token)

    async def webhook(self, body: Any, key: str = "robot") -> Json:
        resp = await self.http.post("/cgi-bin/webhook/send", params={"key": key}, json=body)
        assert resp.status_code == 200  # WeCom answers errors with HTTP 200 too
        data: Json = resp.json()
        return data


@pytest.fixture
async def http(state: EmulatorState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_emulator_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        yield client


@pytest.fixture
async def api(http: httpx.AsyncClient) -> Api:
    api = Api(http)
    api.token = (await api.get("/cgi-bin/gettoken", corpid=CORP_ID, corpsecret=SECRET))[
        "access_token"
    ]
    return api


def text(content: str) -> Json:
    return {"msgtype": "text", "text": {"content": content}}


# -- gettoken and token checks ------------------------------------------------------------


async def test_gettoken_ok(http: httpx.AsyncClient) -> None:
    data = (
        await http.get("/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": SECRET})
    ).json()
    assert data["errcode"] == 0
    assert data["errmsg"] == "ok"
    assert data["expires_in"] == 7200
    assert len(data["access_token"]) > 32


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"corpid": "wrong", "corpsecret": SECRET}, 40013),
        ({"corpid": CORP_ID, "corpsecret": "wrong"}, 40001),
        ({"corpsecret": SECRET}, 41002),
        ({"corpid": CORP_ID}, 41004),
    ],
)
async def test_gettoken_rejects_bad_credentials(
    http: httpx.AsyncClient, params: dict[str, str], errcode: int
) -> None:
    data = (await http.get("/cgi-bin/gettoken", params=params)).json()
    assert data["errcode"] == errcode
    assert "access_token" not in data


async def test_errmsg_carries_hint_like_wecom(api: Api) -> None:
    data = await api.get("/cgi-bin/gettoken", corpid="x", corpsecret="y")
    assert data["errmsg"].startswith("invalid corpid, hint: [")
    assert data["errmsg"].endswith("devtool/query?e=40013")


async def test_token_checks(api: Api, clock: FakeClock) -> None:
    body = {"chatid": "wrApp", **text("hi")}
    assert (await api.post("/cgi-bin/appchat/send", body))["errcode"] == 41001
    unknown = await api.post("/cgi-bin/appchat/send", body, access_token="nope")
    assert unknown["errcode"] == 40014
    assert (await api.wecom("/cgi-bin/appchat/send", body))["errcode"] == 0

    clock.now += 7200
    assert (await api.wecom("/cgi-bin/appchat/send", body))["errcode"] == 42001


async def test_control_expires_and_revokes_tokens(api: Api) -> None:
    body = {"chatid": "wrApp", **text("hi")}
    assert await api.post("/_emulator/tokens/expire") == {"expired": 1}
    assert (await api.wecom("/cgi-bin/appchat/send", body))["errcode"] == 42001
    assert await api.post("/_emulator/tokens/revoke") == {"revoked": 1}
    assert (await api.wecom("/cgi-bin/appchat/send", body))["errcode"] == 40014


# -- webhook/send -----------------------------------------------------------------------


async def test_webhook_send_records(api: Api, state: EmulatorState) -> None:
    assert await api.webhook(text("早上好"), key="k1") == {"errcode": 0, "errmsg": "ok"}
    (record,) = state.sent
    assert (record.seq, record.api, record.target) == (1, "webhook/send", "k1")
    assert record.body == text("早上好")
    assert abs(record.at - time.time()) < 5


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"msgtype": "video", "video": {}}, 40008),
        ({"text": {"content": "no msgtype"}}, 40008),
        (text(""), 44004),
        (text("中" * 683), 40058),  # 2049 bytes
        ({"msgtype": "markdown", "markdown": {"content": "a" * 4097}}, 40058),
        ({"msgtype": "markdown_v2", "markdown_v2": {"content": "a" * 4097}}, 40058),
        ({"msgtype": "news", "news": {"articles": [{"title": "t"}] * 9}}, 45008),
        ({"msgtype": "news", "news": {"articles": [{"url": "u"}]}}, 41016),
        ({"msgtype": "image", "image": {"md5": "x"}}, 40058),
        ({"msgtype": "template_card", "template_card": {"card_type": "vote_interaction"}}, 40058),
    ],
)
async def test_webhook_rejects_invalid_messages(
    api: Api, state: EmulatorState, body: Json, errcode: int
) -> None:
    assert (await api.webhook(body))["errcode"] == errcode
    assert state.sent == []


async def test_webhook_length_limits_are_bytes_inclusive(api: Api) -> None:
    assert (await api.webhook(text("中" * 682)))["errcode"] == 0  # 2046 bytes
    markdown = {"msgtype": "markdown", "markdown": {"content": "a" * 4096}}
    assert (await api.webhook(markdown))["errcode"] == 0
    too_long = await api.webhook({"msgtype": "markdown", "markdown": {"content": "a" * 4097}})
    assert too_long["errmsg"].startswith("markdown.content exceed max length 4096")


async def test_webhook_invalid_key(api: Api, state: EmulatorState) -> None:
    state.invalid_webhook_keys.add("gone")
    assert (await api.webhook(text("x"), key="gone"))["errcode"] == 93000
    assert (await api.webhook(text("x"), key=""))["errcode"] == 93000
    assert (await api.webhook(text("x"), key="other"))["errcode"] == 0


async def test_webhook_rate_limit_slides(api: Api, state: EmulatorState, clock: FakeClock) -> None:
    state.webhook_rate_limit = 3
    for _ in range(3):
        assert (await api.webhook(text("x")))["errcode"] == 0
        clock.now += 10
    limited = await api.webhook(text("x"))
    assert limited["errcode"] == 45009
    assert limited["errmsg"].startswith("api freq out of limit")
    assert (await api.webhook(text("x"), key="another"))["errcode"] == 0
    clock.now += 31  # the first message leaves the 60 s window
    assert (await api.webhook(text("x")))["errcode"] == 0
    assert (await api.webhook(text("x")))["errcode"] == 45009
    assert len(state.sent) == 5


async def test_invalid_json_body(http: httpx.AsyncClient) -> None:
    resp = await http.post(
        "/cgi-bin/webhook/send",
        params={"key": "k"},
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert resp.json()["errcode"] == 47001


# -- appchat/send, message/send ---------------------------------------------------------


async def test_appchat_send(api: Api, state: EmulatorState) -> None:
    assert (await api.wecom("/cgi-bin/appchat/send", text("x")))["errcode"] == 86001
    ok = await api.wecom("/cgi-bin/appchat/send", {"chatid": "wrA", **text("x")})
    assert ok["errcode"] == 0
    assert [(r.api, r.target) for r in state.sent] == [("appchat/send", "wrA")]


async def test_message_send(api: Api, state: EmulatorState) -> None:
    url = "/cgi-bin/message/send"
    assert (await api.wecom(url, {"touser": "a", **text("x")}))["errcode"] == 41011
    assert (await api.wecom(url, {"touser": "a", "agentid": 1, **text("x")}))["errcode"] == 40056
    assert (await api.wecom(url, {"agentid": AGENT_ID, **text("x")}))["errcode"] == 81013
    ok = await api.wecom(url, {"touser": "a|b", "agentid": AGENT_ID, **text("x")})
    assert ok["errcode"] == 0
    assert ok["invaliduser"] == ""
    assert ok["msgid"]
    assert [(r.api, r.target) for r in state.sent] == [("message/send", "a|b")]


# -- groups -----------------------------------------------------------------------------


async def test_group_control_and_member_version(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    created = (
        await http.put(
            "/_emulator/groups/wrG1",
            json={"name": "读书会", "owner": "zhangsan", "members": [{"userid": "zhangsan"}]},
        )
    ).json()
    assert created["chat_id"] == "wrG1"
    assert created["member_list"][0]["type"] == 1
    v1 = created["member_version"]

    new_members = [
        {"userid": "wmGuest01", "name": "王五", "invitor": "zhangsan"},
        {"userid": "woGuest02", "name": "赵六", "join_scene": 3},
    ]
    added = (
        await http.post("/_emulator/groups/wrG1/members", json={"members": new_members})
    ).json()
    v2 = added["member_version"]
    assert v2 != v1
    guests = {m["userid"]: m for m in added["member_list"]}
    assert guests["wmGuest01"]["type"] == 2
    assert guests["wmGuest01"]["invitor"] == {"userid": "zhangsan"}
    assert guests["wmGuest01"]["join_scene"] == 1
    assert guests["woGuest02"]["type"] == 2
    assert guests["woGuest02"]["join_scene"] == 3
    assert "invitor" not in guests["woGuest02"]
    assert abs(guests["wmGuest01"]["join_time"] - time.time()) < 5

    removed = (await http.delete("/_emulator/groups/wrG1/members/woGuest02")).json()
    assert removed["member_version"] not in (v1, v2)
    assert [m["userid"] for m in removed["member_list"]] == ["zhangsan", "wmGuest01"]

    fetched = (await http.get("/_emulator/groups/wrG1")).json()
    assert fetched == removed
    assert state.groups["wrG1"]["member_version"] == removed["member_version"]


def test_add_existing_member_keeps_version(state: EmulatorState) -> None:
    group = state.upsert_group("wrG", name="g", members=[{"userid": "a"}])
    state.add_members("wrG", [{"userid": "a", "name": "again"}])
    assert state.groups["wrG"]["member_version"] == group["member_version"]
    assert len(state.groups["wrG"]["member_list"]) == 1


async def test_group_control_404s(http: httpx.AsyncClient) -> None:
    assert (await http.get("/_emulator/groups/nope")).status_code == 404
    missing = await http.post("/_emulator/groups/nope/members", json={"members": []})
    assert missing.status_code == 404
    await http.put("/_emulator/groups/wrG", json={"name": "g"})
    assert (await http.delete("/_emulator/groups/wrG/members/ghost")).status_code == 404


async def test_groupchat_get(api: Api, state: EmulatorState) -> None:
    state.upsert_group("wrG", name="g", owner="o", members=[{"userid": "wmA", "name": "甲"}])
    url = "/cgi-bin/externalcontact/groupchat/get"
    named = await api.wecom(url, {"chat_id": "wrG", "need_name": 1})
    assert named["errcode"] == 0
    assert named["group_chat"]["member_list"][0]["name"] == "甲"
    plain = await api.wecom(url, {"chat_id": "wrG"})
    assert "name" not in plain["group_chat"]["member_list"][0]
    assert state.groups["wrG"]["member_list"][0]["name"] == "甲"  # stored copy untouched
    assert (await api.wecom(url, {"chat_id": "wrX"}))["errcode"] == 40050
    assert (await api.wecom(url, {}))["errcode"] == 40058


# -- externalcontact: add_msg_template, welcome templates --------------------------------


async def test_add_msg_template(api: Api, state: EmulatorState) -> None:
    url = "/cgi-bin/externalcontact/add_msg_template"
    no_sender = {"chat_type": "group", "chat_id_list": ["wrA"], "text": {"content": "x"}}
    assert (await api.wecom(url, no_sender))["errcode"] == 40058
    assert (await api.wecom(url, {"chat_type": "single", "sender": "s"}))["errcode"] == 44004
    single = {"external_userid": ["wmA"], "sender": "s", "text": {"content": "你好"}}
    resp = await api.wecom(url, single)
    assert resp["errcode"] == 0
    assert resp["fail_list"] == []
    assert resp["msgid"].startswith("msg")
    # The log names who a task reaches: the customer here, not the member sending it.
    assert [(r.api, r.target) for r in state.sent] == [("add_msg_template", "wmA")]
    pick = {"chat_type": "single", "sender": "s", "text": {"content": "由成员挑选客户"}}
    assert (await api.wecom(url, pick))["errcode"] == 0
    assert state.sent[-1].target == "s"


async def test_welcome_templates(api: Api, state: EmulatorState) -> None:
    base = "/cgi-bin/externalcontact/group_welcome_template"
    assert (await api.wecom(f"{base}/add", {}))["errcode"] == 40058
    assert (await api.wecom(f"{base}/add", {"text": {"content": "a" * 3001}}))["errcode"] == 40058

    added = await api.wecom(f"{base}/add", {"text": {"content": "欢迎%NICKNAME%"}})
    template_id = added["template_id"]
    got = await api.wecom(f"{base}/get", {"template_id": template_id})
    assert got["text"] == {"content": "欢迎%NICKNAME%"}

    edit = {"template_id": template_id, "text": {"content": "a" * 4000}}  # edit allows 4000
    assert (await api.wecom(f"{base}/edit", edit))["errcode"] == 0
    assert (await api.wecom(f"{base}/del", {"template_id": template_id}))["errcode"] == 0
    again = await api.wecom(f"{base}/get", {"template_id": template_id})
    assert again["errcode"] == 40058
    assert [r.api for r in state.sent] == [
        "group_welcome_template/add",
        "group_welcome_template/edit",
        "group_welcome_template/del",
    ]


# -- faults -----------------------------------------------------------------------------


async def test_fault_errcode_consumed_then_normal(
    api: Api, http: httpx.AsyncClient, state: EmulatorState
) -> None:
    fault = {"api": "webhook/send", "errcode": -1, "times": 2}
    assert (await http.post("/_emulator/faults", json=fault)).status_code == 201
    assert (await api.webhook(text("x")))["errcode"] == -1
    assert (await http.get("/_emulator/faults")).json()[0]["times"] == 1
    assert (await api.webhook(text("x")))["errcode"] == -1
    assert (await api.webhook(text("x")))["errcode"] == 0
    assert (await http.get("/_emulator/faults")).json() == []
    assert len(state.sent) == 1
    assert state.calls["webhook/send"] == 3


async def test_faults_apply_in_order_and_per_api(api: Api, http: httpx.AsyncClient) -> None:
    await http.post("/_emulator/faults", json={"api": "gettoken", "errcode": 45033})
    await http.post("/_emulator/faults", json={"api": "webhook/send", "errcode": 45033})
    await http.post("/_emulator/faults", json={"api": "webhook/send", "errcode": 45009})
    assert (await api.webhook(text("x")))["errcode"] == 45033
    assert (await api.webhook(text("x")))["errcode"] == 45009
    assert (await api.webhook(text("x")))["errcode"] == 0
    assert [f["api"] for f in (await http.get("/_emulator/faults")).json()] == ["gettoken"]


async def test_fault_http_status_has_plain_body(api: Api, http: httpx.AsyncClient) -> None:
    await http.post("/_emulator/faults", json={"api": "*", "http_status": 502})
    resp = await http.post("/cgi-bin/webhook/send", params={"key": "k"}, json=text("x"))
    assert resp.status_code == 502
    assert resp.text == "Bad Gateway"
    assert (await api.webhook(text("x")))["errcode"] == 0


async def test_fault_comes_before_token_check(api: Api, http: httpx.AsyncClient) -> None:
    await http.post("/_emulator/faults", json={"api": "appchat/send", "errcode": -1})
    data = await api.post("/cgi-bin/appchat/send", {"chatid": "c", **text("x")})
    assert data["errcode"] == -1


async def test_fault_delay(api: Api, http: httpx.AsyncClient) -> None:
    await http.post("/_emulator/faults", json={"api": "webhook/send", "delay": 0.3})
    started = time.monotonic()
    assert (await api.webhook(text("x")))["errcode"] == 0
    assert time.monotonic() - started >= 0.3


async def test_delete_faults_and_validation(
    api: Api, http: httpx.AsyncClient, state: EmulatorState
) -> None:
    await http.post("/_emulator/faults", json={"api": "webhook/send", "errcode": -1, "times": 5})
    assert (await http.delete("/_emulator/faults")).json() == {"cleared": 1}
    assert (await api.webhook(text("x")))["errcode"] == 0
    invalid = await http.post("/_emulator/faults", json={"api": "x", "times": 0})
    assert invalid.status_code == 422
    with pytest.raises(ValueError):
        state.add_fault(Fault("x", times=0))


# -- sent log ---------------------------------------------------------------------------


async def test_sent_log_since_and_clear(api: Api, http: httpx.AsyncClient) -> None:
    for n in range(3):
        await api.webhook(text(f"m{n}"))
    all_records = (await http.get("/_emulator/sent")).json()
    assert [r["seq"] for r in all_records] == [1, 2, 3]
    assert set(all_records[0]) == {"seq", "at", "api", "target", "body"}
    later = (await http.get("/_emulator/sent", params={"since": 2})).json()
    assert [r["body"]["text"]["content"] for r in later] == ["m2"]

    assert (await http.delete("/_emulator/sent")).json() == {"cleared": 3}
    assert (await http.get("/_emulator/sent")).json() == []
    await api.webhook(text("after"))
    # sequence numbers keep counting, so a reader's cursor stays meaningful
    after = (await http.get("/_emulator/sent", params={"since": 3})).json()
    assert [r["seq"] for r in after] == [4]


async def test_calls_counter(api: Api) -> None:
    await api.webhook(text("x"))
    assert await api.get("/_emulator/calls") == {"gettoken": 1, "webhook/send": 1}


# -- runners ----------------------------------------------------------------------------


def test_runner_refuses_non_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        start_emulator_in_thread(host="0.0.0.0")
    with pytest.raises(SystemExit):
        emulator_main(["--host", "0.0.0.0"])


def test_runner_serves_real_port() -> None:
    with start_emulator_in_thread() as running:
        assert running.base_url.startswith("http://127.0.0.1:")
        resp = httpx.post(f"{running.base_url}/cgi-bin/webhook/send?key=k", json=text("x"))
        assert resp.json()["errcode"] == 0
        assert running.state.sent[0].target == "k"


def test_sent_log_persists_across_restarts_and_clears(tmp_path: Path) -> None:
    log = tmp_path / "sent.jsonl"
    first = EmulatorState()
    assert first.load_log(log) == 0
    first.record("webhook/send", "k", {"msgtype": "text", "text": {"content": "一"}})
    first.record("webhook/send", "k", {"msgtype": "text", "text": {"content": "二"}})
    log.write_text(log.read_text(encoding="utf-8") + '{"seq": 3, "torn', encoding="utf-8")
    second = EmulatorState()
    assert second.load_log(log) == 2
    assert [r.seq for r in second.sent_since(0)] == [1, 2]
    second.clear_sent()
    third = EmulatorState()
    third.load_log(log)
    assert third.sent_since(0) == []
    assert (
        third.record("webhook/send", "k", {"msgtype": "text", "text": {"content": "三"}}).seq == 3
    )
    third.reset()
    assert log.read_text(encoding="utf-8") == ""


async def test_mass_send_results_follow_the_senders_confirmation(
    api: Api, state: EmulatorState, http: httpx.AsyncClient
) -> None:
    url = "/cgi-bin/externalcontact/get_groupmsg_send_result"
    state.upsert_group("wrA", name="A", owner="boss")
    state.upsert_group("wrB", name="B", owner="boss")
    task = {"chat_type": "group", "sender": "boss", "chat_id_list": ["wrA", "wrB", "wrGone"]}
    msgid = (
        await api.wecom(
            "/cgi-bin/externalcontact/add_msg_template", task | {"text": {"content": "早报"}}
        )
    )["msgid"]
    first = await api.wecom(url, {"msgid": msgid, "userid": "boss", "limit": 1, "cursor": ""})
    assert first["send_list"] == [
        {"external_userid": "", "chat_id": "wrA", "userid": "boss", "status": 0, "send_time": 0}
    ]
    rest = await api.wecom(url, {"msgid": msgid, "userid": "boss", "cursor": first["next_cursor"]})
    # The chat WeCom could not reach (fail_list) has no row; the last page has no cursor.
    assert ([r["chat_id"] for r in rest["send_list"]], rest["next_cursor"]) == (["wrB"], "")
    other = await api.wecom(url, {"msgid": msgid, "userid": "someone"})
    assert other["send_list"] == []

    confirmed = await http.post(f"/_emulator/mass_sends/{msgid}/confirm", json={"send_time": 1234})
    assert confirmed.json()["status"] == 1
    after = await api.wecom(url, {"msgid": msgid, "userid": "boss"})
    assert {(r["status"], r["send_time"]) for r in after["send_list"]} == {(1, 1234)}
    failed = await http.post(f"/_emulator/mass_sends/{msgid}/confirm", json={"status": 2})
    assert (failed.json()["status"], failed.json()["send_time"]) == (2, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"userid": "boss"},
        {"msgid": "", "userid": "boss"},
        {"msgid": "msgUnknown", "userid": "boss"},
        {"msgid": "msgUnknown"},
        {"msgid": "msgUnknown", "userid": "boss", "limit": 1001},
        {"msgid": "msgUnknown", "userid": "boss", "cursor": "x"},
    ],
)
async def test_bad_mass_send_result_requests_are_refused(api: Api, body: Json) -> None:
    url = "/cgi-bin/externalcontact/get_groupmsg_send_result"
    assert (await api.wecom(url, body))["errcode"] == 40058


async def test_confirming_an_unknown_or_with_a_bad_status_is_refused(
    api: Api, state: EmulatorState, http: httpx.AsyncClient
) -> None:
    assert (await http.post("/_emulator/mass_sends/nope/confirm", json={})).status_code == 404
    task = {"chat_type": "single", "sender": "s", "external_userid": ["wmA"]}
    msgid = (
        await api.wecom(
            "/cgi-bin/externalcontact/add_msg_template", task | {"text": {"content": "你好"}}
        )
    )["msgid"]
    bad = await http.post(f"/_emulator/mass_sends/{msgid}/confirm", json={"status": 0})
    assert bad.status_code == 422
    assert state.mass_sends[msgid].status == 0
    listed = (await http.get("/_emulator/mass_sends")).json()
    assert [(m["msgid"], m["targets"]) for m in listed] == [(msgid, ["wmA"])]
