"""Every message kind a member can send becomes one `message` event that says what
rules, points and health need: kind, readable text, addresses, mini-program, shared
contact, the message taken back, the quoted message. Field names of the archive
records follow Tencent's format (document 91774)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.sources.aibot import normalize_aibot
from bot.sources.archive import KINDS, ArchiveRecord, normalize_archive
from bot.sources.callback_xml import normalize_callback
from bot.sources.message_parts import urls_in
from bot.wecom.xml import xml_to_dict
from handlers.core.events import MESSAGE_KINDS, Message, Quoted, event_from_json
from handlers.features import membership


def _archive(msgtype: str, body: Any, *, action: str = "send") -> Message | None:
    raw = {
        "msgid": f"m-{msgtype}",
        "action": action,
        "from": "wmAlice",
        "tolist": ["wmBob"],
        "roomid": "wrGroup",
        "msgtime": 1764500000000,
        "msgtype": msgtype,
        msgtype: body,
    }
    event = normalize_archive(ArchiveRecord.model_validate(raw), raw).event
    assert event is None or isinstance(event, Message)
    return event


MIXED = {
    "item": [
        {"type": "text", "content": json.dumps({"content": "看这个 https://a.example/x，"})},
        {"type": "image", "content": json.dumps({"md5sum": "m", "sdkfileid": "f"})},
        {"type": "text", "content": {"content": "加我微信"}},
    ]
}

CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("text", {"content": "有没有资料 www.example.cn/a"}, {"urls": ["www.example.cn/a"]}),
    ("markdown", {"info": {"content": "**通知**"}}, {"text": "**通知**"}),
    (
        "link",
        {
            "title": "低价代理",
            "description": "点开看看",
            "link_url": "https://ads.example/p?id=1",
            "image_url": "https://img.example/1.png",
        },
        {
            "text": "低价代理\n点开看看",
            "title": "低价代理",
            "urls": ["https://ads.example/p?id=1"],
        },
    ),
    (
        "weapp",
        {"title": "拼团", "description": "一元抢", "username": "gh_1@app", "displayname": "某商城"},
        {"text": "拼团\n一元抢", "weapp": "某商城", "title": "拼团"},
    ),
    ("card", {"corpname": "某公司", "userid": "wmCarol"}, {"card_user": "wmCarol"}),
    ("image", {"md5sum": "m", "filesize": 1, "sdkfileid": "f"}, {"text": ""}),
    (
        "file",
        {"md5sum": "m", "filename": "价目表.xlsx", "fileext": "xlsx", "filesize": 9},
        {"text": "价目表.xlsx", "title": "价目表.xlsx"},
    ),
    ("voice", {"md5sum": "m", "voice_size": 1, "play_length": 3, "sdkfileid": "f"}, {}),
    ("video", {"md5sum": "m", "filesize": 1, "play_length": 3, "sdkfileid": "f"}, {}),
    ("emotion", {"type": 1, "width": 1, "height": 1, "md5sum": "m", "sdkfileid": "f"}, {}),
    (
        "location",
        {"longitude": 1.0, "latitude": 2.0, "address": "南山区", "title": "科技园", "zoom": 15},
        {"text": "科技园\n南山区"},
    ),
    (
        "mixed",
        MIXED,
        {"text": "看这个 https://a.example/x，\n加我微信", "urls": ["https://a.example/x"]},
    ),
    (
        "news",
        {"info": {"item": [{"title": "周报", "description": "本周", "url": "https://n.example"}]}},
        {"text": "周报\n本周", "title": "周报", "urls": ["https://n.example"]},
    ),
    (
        "docmsg",
        {"title": "运营手册", "link_url": "https://doc.example/1", "doc_creator": "wmA"},
        {"title": "运营手册", "urls": ["https://doc.example/1"]},
    ),
    ("chatrecord", {"title": "群聊的聊天记录", "item": []}, {"title": "群聊的聊天记录"}),
]


@pytest.mark.parametrize(("msgtype", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_archive_kind_becomes_a_message(
    msgtype: str, body: Any, expected: dict[str, Any]
) -> None:
    event = _archive(msgtype, body)
    assert event is not None
    assert event.msgtype == msgtype and event.sender == "wmAlice" and event.chat_id == "wrGroup"
    for name, value in expected.items():
        assert getattr(event, name) == value, name
    # What is stored is what a handler reads back.
    assert event_from_json(json.loads(event.model_dump_json())) == event


def test_every_kind_the_archive_reader_knows_is_a_message_kind() -> None:
    assert set(KINDS) == set(MESSAGE_KINDS)
    assert {case[0] for case in CASES} | {"revoke"} == set(MESSAGE_KINDS)


def test_a_recall_names_the_message_taken_back() -> None:
    event = _archive("revoke", {"pre_msgid": "m-earlier"}, action="recall")
    assert event is not None and event.msgtype == "revoke" and event.revokes == "m-earlier"


@pytest.mark.parametrize(
    "body", [None, "not an object", {"content": None}, {"content": {"nested": 1}}, []]
)
def test_a_body_of_the_wrong_shape_is_an_empty_message_not_an_error(body: Any) -> None:
    event = _archive("text", body)
    assert event is not None and event.text == "" and event.urls == []


@pytest.mark.parametrize("msgtype", ["redpacket", "vote", "meeting", "todo", "sphfeed", ""])
def test_other_kinds_are_stored_with_no_event(msgtype: str) -> None:
    raw = {"msgid": "x", "action": "send", "from": "a", "roomid": "wr1", "msgtype": msgtype}
    incoming = normalize_archive(ArchiveRecord.model_validate(raw), raw)
    assert incoming.event is None and incoming.event_type == f"archive:{msgtype or 'send'}"
    assert json.loads(incoming.raw) == raw  # kept whole


def test_a_switch_record_has_no_event() -> None:
    raw = {"msgid": "s1", "action": "switch", "time": 1, "user": "u"}
    incoming = normalize_archive(ArchiveRecord.model_validate(raw), raw)
    assert incoming.event is None


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("看 https://a.example/x，很好。", ["https://a.example/x"]),
        ("（详见 http://b.example/y?q=1）", ["http://b.example/y?q=1"]),
        ("www.c.example. 和 www.c.example", ["www.c.example"]),
        ("版本 1.5 和 a.b 不是地址", []),
        ("HTTPS://UP.EXAMPLE/Z", ["HTTPS://UP.EXAMPLE/Z"]),
    ],
)
def test_addresses_in_text(text: str, urls: list[str]) -> None:
    assert urls_in(text) == urls


def _aibot(msgtype: str, body: Any, **extra: Any) -> Message:
    payload = {
        "msgid": f"a-{msgtype}",
        "chatid": "wrInternal",
        "chattype": "group",
        "from": {"userid": "zhangsan"},
        "msgtype": msgtype,
        msgtype: body,
        **extra,
    }
    event = normalize_aibot(payload, json.dumps(payload)).event
    assert isinstance(event, Message)
    return event


def test_aibot_quote_and_mixed() -> None:
    quoting = _aibot(
        "text",
        {"content": "@小助手 这个怎么报名"},
        quote={"msgtype": "text", "text": {"content": "周六有线下活动"}},
    )
    assert quoting.text == "这个怎么报名" and quoting.mentioned_bot
    assert quoting.quote == Quoted(msgtype="text", text="周六有线下活动")
    mixed = _aibot(
        "mixed",
        {
            "msg_item": [
                {"msgtype": "text", "text": {"content": "@小助手 看图"}},
                {"msgtype": "image", "image": {"url": "https://img.example/1"}},
            ]
        },
    )
    assert mixed.msgtype == "mixed" and mixed.text == "看图" and mixed.quote is None


def test_aibot_image_is_a_message_without_text() -> None:
    event = _aibot("image", {"url": "https://img.example/2"})
    assert event.msgtype == "image" and event.text == ""


def test_app_link_message() -> None:
    xml = (
        "<xml><ToUserName>ww1</ToUserName><FromUserName>lisi</FromUserName>"
        "<CreateTime>1764500000</CreateTime><MsgType>link</MsgType>"
        "<Title>报名表</Title><Description>周六活动</Description>"
        "<Url>https://form.example/1</Url><MsgId>77</MsgId><AgentID>1</AgentID></xml>"
    )
    event = normalize_callback(xml_to_dict(xml), xml).event
    assert isinstance(event, Message)
    assert event.msgtype == "link" and event.title == "报名表"
    assert event.text == "报名表\n周六活动" and event.urls == ["https://form.example/1"]


async def test_taking_a_message_back_is_not_activity() -> None:
    revoke = _archive("revoke", {"pre_msgid": "m-earlier"}, action="recall")
    said = _archive("text", {"content": "大家好"})
    assert revoke is not None and said is not None
    # record_message reads nothing from the context for this decision.
    assert await membership.record_message(revoke, None) == []  # type: ignore[arg-type]
    assert len(await membership.record_message(said, None)) == 1  # type: ignore[arg-type]
