"""/wecom/callback, /wecom/aibot/callback and /wecom/archive through the real app (SPEC §4, §6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.sandbox.emulator.server import RunningEmulator
from bot.sandbox.simulate import aibot_text_json, sign_json, sign_xml
from bot.wecom.crypto import WeComCrypto
from storage.models import InboxItem
from tests.helpers import (
    AES_KEY,
    AUTH,
    CORP_ID,
    TOKEN,
    LiveApp,
    configured_settings,
    join_callback,
    live_app,
    sent_texts,
    wait_for,
)
from tests.test_crypto import (
    AES_KEY as SAMPLE_KEY,
)
from tests.test_crypto import (
    CORP_ID as SAMPLE_CORP,
)
from tests.test_crypto import (
    TOKEN as SAMPLE_TOKEN,
)
from tests.test_crypto import (
    VERIFY_ECHO,
    VERIFY_NONCE,
    VERIFY_SIG,
    VERIFY_TS,
)

GROUP = "wrCallbackGroup"


@pytest.fixture
async def live(database_url: str, templates_dir: Path, emulator: RunningEmulator) -> LiveApp:  # type: ignore[misc]
    settings = configured_settings(
        database_url=database_url, templates_dir=templates_dir, api_base=emulator.base_url
    )
    async with live_app(settings) as app:
        yield app  # type: ignore[misc]


async def inbox_count(live: LiveApp) -> int:
    async with live.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(InboxItem)) or 0)


async def register_webhook_group(live: LiveApp, chat_id: str = GROUP, key: str = "k-1") -> None:
    response = await live.http.put(
        f"/admin/groups/{chat_id}",
        headers=AUTH,
        json={"name": "私域运营交流群", "tags": [], "channel": {"type": "webhook", "key": key}},
    )
    assert response.status_code == 200, response.text


async def test_url_verification_with_official_vector(
    database_url: str, templates_dir: Path
) -> None:
    settings = configured_settings(
        database_url=database_url,
        templates_dir=templates_dir,
        api_base="http://127.0.0.1:9",
        wecom_corp_id=SAMPLE_CORP,
        wecom_token=SAMPLE_TOKEN,
        wecom_encoding_aes_key=SAMPLE_KEY,
    )
    async with live_app(settings, background=False) as live:
        ok = await live.http.get(
            "/wecom/callback",
            params={
                "msg_signature": VERIFY_SIG,
                "timestamp": VERIFY_TS,
                "nonce": VERIFY_NONCE,
                "echostr": VERIFY_ECHO,
            },
        )
        assert ok.status_code == 200
        assert ok.text == "1288432023552776189"
        assert ok.headers["content-type"].startswith("text/plain")
        bad = await live.http.get(
            "/wecom/callback",
            params={
                "msg_signature": "0" * 40,
                "timestamp": VERIFY_TS,
                "nonce": VERIFY_NONCE,
                "echostr": VERIFY_ECHO,
            },
        )
        assert bad.status_code == 403
        missing = await live.http.get("/wecom/callback", params={"echostr": VERIFY_ECHO})
        assert missing.status_code == 403


async def test_join_is_acknowledged_and_welcomed_once(
    live: LiveApp, emulator: RunningEmulator
) -> None:
    emulator.state.upsert_group(
        GROUP,
        name="私域运营交流群",
        owner="owner1",
        members=[
            {"userid": "wmNew1", "name": "林小雨", "invitor": "staff1"},
            {"userid": "staff1", "name": "运营阿杰", "type": 1},
        ],
    )
    await register_webhook_group(live)
    params, body = join_callback(GROUP, ["wmNew1"])
    response = await live.post_callback(params, body)
    assert response.status_code == 200 and response.text == "success"
    took = await wait_for(lambda: len(sent_texts(emulator)) == 1, within=5.0)
    assert took < 5.0
    assert "林小雨" in sent_texts(emulator)[0]
    # WeCom's retry of the same callback: acknowledged, processed once.
    replay = await live.post_callback(params, body)
    assert replay.status_code == 200 and replay.text == "success"
    assert await inbox_count(live) == 1
    await live.runtime.tick()
    await live.runtime.dispatcher.drain()
    assert len(sent_texts(emulator)) == 1


async def test_bad_signature_is_403_and_stores_nothing(live: LiveApp) -> None:
    params, body = join_callback(GROUP, ["wmX"])
    params["msg_signature"] = "f" * 40
    assert (await live.post_callback(params, body)).status_code == 403
    params.pop("msg_signature")
    assert (await live.post_callback(params, body)).status_code == 403
    assert await inbox_count(live) == 0


async def test_wrong_receive_id_is_403(live: LiveApp) -> None:
    other = WeComCrypto(TOKEN, AES_KEY, "wwSomebodyElse")
    signed = sign_xml(other, "<xml><MsgType>event</MsgType></xml>")
    assert (await live.post_callback(signed.params, signed.body)).status_code == 403
    assert await inbox_count(live) == 0


@pytest.mark.parametrize(
    "body",
    [
        "<xml><Encrypt>unclosed",
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        "<xml><Encrypt>&lol3;</Encrypt></xml>",
        "<xml><NoEncrypt/></xml>",
    ],
)
async def test_malformed_and_bomb_xml_are_400(live: LiveApp, body: str) -> None:
    params, _ = join_callback(GROUP, ["wmX"])
    response = await live.post_callback(params, body)
    assert response.status_code == 400
    assert await inbox_count(live) == 0
    assert (await live.http.get("/healthz")).status_code == 200


async def test_decrypted_payload_must_be_xml(live: LiveApp) -> None:
    from tests.helpers import crypto

    signed = sign_xml(crypto(), "this is not xml")
    assert (await live.post_callback(signed.params, signed.body)).status_code == 400
    assert await inbox_count(live) == 0


async def test_oversized_body_is_413(live: LiveApp) -> None:
    params, _ = join_callback(GROUP, ["wmX"])
    huge = "<xml><Encrypt>" + "A" * (10 * 1024 * 1024) + "</Encrypt></xml>"
    response = await live.post_callback(params, huge)
    assert response.status_code == 413
    assert await inbox_count(live) == 0
    assert (await live.http.get("/healthz")).status_code == 200


async def test_unknown_event_is_stored_and_acknowledged(live: LiveApp) -> None:
    from tests.helpers import crypto

    xml = (
        f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>sys</FromUserName>"
        "<CreateTime>1629101687</CreateTime><MsgType>event</MsgType><AgentID>1000002</AgentID>"
        "<Event>batch_job_result</Event></xml>"
    )
    signed = sign_xml(crypto(), xml)
    response = await live.post_callback(signed.params, signed.body)
    assert response.text == "success"
    async with live.runtime.sessions() as session:
        item = (await session.execute(select(InboxItem))).scalar_one()
    assert item.status == "ignored" and item.event_type == "batch_job_result"


async def test_aibot_callback(live: LiveApp) -> None:
    aibot = WeComCrypto(TOKEN, AES_KEY, "")
    signed = sign_json(
        aibot, aibot_text_json(chat_id=GROUP, sender="u1", content="@bot 资料", msg_id="m-1")
    )
    response = await live.http.post(
        "/wecom/aibot/callback", params=signed.params, content=signed.body
    )
    assert response.status_code == 200
    again = await live.http.post("/wecom/aibot/callback", params=signed.params, content=signed.body)
    assert again.status_code == 200
    assert await inbox_count(live) == 1
    corp_encrypted = sign_json(WeComCrypto(TOKEN, AES_KEY, CORP_ID), "{}")
    refused = await live.http.post(
        "/wecom/aibot/callback", params=corp_encrypted.params, content=corp_encrypted.body
    )
    assert refused.status_code == 403  # aibot uses an empty receive-id
    not_json = await live.http.post(
        "/wecom/aibot/callback", params=signed.params, content=b"<xml/>"
    )
    assert not_json.status_code == 400


async def test_archive_batch(live: LiveApp) -> None:
    records = [
        {
            "msgid": "1234_567",
            "action": "send",
            "from": "wmABC",
            "tolist": [],
            "roomid": GROUP,
            "msgtime": 1732320000123,
            "msgtype": "text",
            "text": {"content": "有没有私域运营的资料"},
        },
        {
            "msgid": "1234_568",
            "action": "send",
            "from": "wmABC",
            "tolist": [],
            "roomid": GROUP,
            "msgtime": 1732320000124,
            "msgtype": "vote",
            "vote": {},
        },
    ]
    assert (await live.http.post("/wecom/archive", json=records)).status_code == 401
    first = await live.http.post("/wecom/archive", json=records, headers=AUTH)
    assert first.status_code == 200
    assert first.json() == {"accepted": 2, "duplicate": 0, "ignored": 1}
    second = await live.http.post("/wecom/archive", json=records, headers=AUTH)
    assert second.json() == {"accepted": 0, "duplicate": 2, "ignored": 0}
    assert await inbox_count(live) == 2


async def test_archive_refuses_a_bad_batch_whole(live: LiveApp) -> None:
    records = [
        {
            "msgid": "ok-1",
            "action": "send",
            "from": "a",
            "roomid": "r",
            "msgtime": 1,
            "msgtype": "text",
            "text": {"content": "x"},
        },
        {"action": "send"},
    ]
    response = await live.http.post("/wecom/archive", json=records, headers=AUTH)
    assert response.status_code == 400
    assert "[1].msgid" in json.dumps(response.json())
    assert await inbox_count(live) == 0
    not_list = await live.http.post("/wecom/archive", json={"msgid": "x"}, headers=AUTH)
    assert not_list.status_code == 400


async def test_admin_api_needs_a_configured_token(database_url: str, templates_dir: Path) -> None:
    settings = configured_settings(
        database_url=database_url,
        templates_dir=templates_dir,
        api_base="http://127.0.0.1:9",
        admin_token=None,
    )
    async with live_app(settings, background=False) as live:
        response = await live.http.get("/admin/groups", headers=AUTH)
        assert response.status_code == 503
        assert "ADMIN_TOKEN" in response.json()["detail"]


async def test_admin_groups(live: LiveApp) -> None:
    assert (await live.http.get(f"/admin/groups/{GROUP}", headers=AUTH)).status_code == 404
    assert (await live.http.get(f"/admin/groups/{GROUP}")).status_code == 401
    await register_webhook_group(live)
    got = (await live.http.get(f"/admin/groups/{GROUP}", headers=AUTH)).json()
    assert got["channel"] == {"type": "webhook", "key": "k-1"}
    assert got["name"] == "私域运营交流群" and got["capabilities"]["immediate"] is True
    assert got["playbook"] == "default"
    bad = await live.http.put(
        f"/admin/groups/{GROUP}", headers=AUTH, json={"channel": {"type": "webhook"}}
    )
    assert bad.status_code == 422
    tagged = await live.http.put(
        f"/admin/groups/{GROUP}",
        headers=AUTH,
        json={"tags": ["新用户群"], "channel": {"type": "customer_group", "sender": "owner1"}},
    )
    body = tagged.json()
    assert body["tags"] == ["新用户群"] and body["name"] == "私域运营交流群"
    assert body["channel"] == {"type": "customer_group", "sender": "owner1"}
    assert body["capabilities"]["immediate"] is False
    listed = (await live.http.get("/admin/groups", headers=AUTH)).json()
    assert [g["chat_id"] for g in listed] == [GROUP]


async def test_health_ready_and_metrics(live: LiveApp) -> None:
    assert (await live.http.get("/healthz")).json() == {"status": "ok"}
    ready = await live.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["templates"] == "ok"
    params, body = join_callback(GROUP, ["wmM"])
    await live.post_callback(params, body)
    params["msg_signature"] = "0" * 40
    await live.post_callback(params, body)
    text = (await live.http.get("/metrics")).text
    assert 'wecom_callbacks_total{path="/wecom/callback",result="stored"} 1.0' in text
    assert 'wecom_callbacks_total{path="/wecom/callback",result="403"} 1.0' in text
    assert "wecom_outbox_depth" in text
    await live.runtime.tick()
    text = (await live.http.get("/metrics")).text
    assert 'wecom_job_runs_total{job="tick",result="ok"}' in text
    schema = (await live.http.get("/openapi.json")).json()
    assert "/admin/groups/{chat_id}" in schema["paths"]


async def test_hostile_inputs_get_4xx_not_500(live: LiveApp) -> None:
    deep = "[" * 200_000
    aibot = await live.http.post(
        "/wecom/aibot/callback",
        params={"msg_signature": "x", "timestamp": "1", "nonce": "n"},
        content=deep,
    )
    assert aibot.status_code == 400
    archived = await live.http.post("/wecom/archive", content=deep, headers=AUTH)
    assert archived.status_code == 400
    huge_time = [
        {
            "msgid": "t",
            "action": "send",
            "from": "a",
            "roomid": "r",
            "msgtime": 10**20,
            "msgtype": "text",
            "text": {"content": "x"},
        }
    ]
    assert (await live.http.post("/wecom/archive", json=huge_time, headers=AUTH)).status_code == 400
    long_room = [
        {
            "msgid": "t",
            "action": "send",
            "from": "a",
            "roomid": "r" * 500,
            "msgtime": 1,
            "msgtype": "text",
            "text": {"content": "x"},
        }
    ]
    assert (await live.http.post("/wecom/archive", json=long_room, headers=AUTH)).status_code == 400
    for bad_name in ("a\x00.yaml", "../x.yaml", "x.txt", ".hidden.yaml"):
        response = await live.http.post(
            "/admin/playbooks/validate", headers=AUTH, json={"files": {bad_name: "x: 1"}}
        )
        assert response.status_code == 422, bad_name
    for path in ("/admin/outbox/99999999999999999999/retry", "/admin/enrollments/0/cancel"):
        assert (await live.http.post(path, headers=AUTH)).status_code == 422
    long_key = await live.http.put(
        f"/admin/groups/{GROUP}",
        headers=AUTH,
        json={"channel": {"type": "webhook", "key": "k" * 300}},
    )
    assert long_key.status_code == 422
    assert await inbox_count(live) == 0


async def test_outsized_ids_are_stored_safely(live: LiveApp) -> None:
    from tests.helpers import crypto

    long_msg = sign_xml(
        crypto(),
        (
            f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>u</FromUserName>"
            f"<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content>"
            f"<MsgId>{'9' * 400}</MsgId></xml>"
        ),
    )
    assert (await live.post_callback(long_msg.params, long_msg.body)).text == "success"
    assert (await live.post_callback(long_msg.params, long_msg.body)).text == "success"
    assert await inbox_count(live) == 1
    long_chat = sign_xml(
        crypto(),
        (
            f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>sys</FromUserName>"
            "<CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_external_chat</Event>"
            f"<ChatId>{'w' * 300}</ChatId><ChangeType>create</ChangeType></xml>"
        ),
    )
    assert (await live.post_callback(long_chat.params, long_chat.body)).status_code == 400
    assert await inbox_count(live) == 1


async def test_aibot_url_verification_uses_an_empty_receive_id(live: LiveApp) -> None:
    aibot = WeComCrypto(TOKEN, AES_KEY, "")
    echo = aibot.encrypt("4213897530182391")
    params = {
        "msg_signature": aibot.sign("1700000000", "n1", echo),
        "timestamp": "1700000000",
        "nonce": "n1",
        "echostr": echo,
    }
    ok = await live.http.get("/wecom/aibot/callback", params=params)
    assert ok.status_code == 200 and ok.text == "4213897530182391"
    corp_style = WeComCrypto(TOKEN, AES_KEY, CORP_ID).encrypt("1")
    params["echostr"] = corp_style
    params["msg_signature"] = aibot.sign("1700000000", "n1", corp_style)
    assert (await live.http.get("/wecom/aibot/callback", params=params)).status_code == 403
    missing = await live.http.get(
        "/wecom/aibot/callback", params={k: v for k, v in params.items() if k != "echostr"}
    )
    assert missing.status_code == 400
