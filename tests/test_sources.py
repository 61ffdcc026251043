"""Raw callbacks, archive records and aibot payloads become normalized events."""

from __future__ import annotations

import pytest

from bot.sources.aibot import normalize_aibot
from bot.sources.archive import ArchiveRecord, normalize_archive
from bot.sources.callback_xml import normalize_callback
from bot.wecom.xml import XmlError, xml_to_dict
from handlers.core.events import (
    GroupCreated,
    GroupDismissed,
    GroupUpdated,
    MemberJoined,
    MemberLeft,
    Message,
    event_from_json,
)

DOC_SAMPLE = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[sys]]></FromUserName>
  <CreateTime>1403610513</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[change_external_chat]]></Event>
  <ChatId><![CDATA[CHAT_ID]]></ChatId>
  <ChangeType><![CDATA[update]]></ChangeType>
  <UpdateDetail><![CDATA[add_member]]></UpdateDetail>
  <JoinScene>1</JoinScene>
  <QuitScene>0</QuitScene>
  <MemChangeCnt>10</MemChangeCnt>
  <MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList>
  <LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer>
  <CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer>
</xml>"""


def _normalize(xml: str):  # type: ignore[no-untyped-def]
    return normalize_callback(xml_to_dict(xml), xml)


def test_doc_sample_add_member() -> None:
    incoming = _normalize(DOC_SAMPLE)
    event = incoming.event
    assert isinstance(event, MemberJoined)
    assert [m.id for m in event.members] == ["Jack", "Rose"]
    assert event.chat_id == "CHAT_ID"
    assert event.event_join_scene == 1
    assert event.member_version == "71217227bbd112ecfe3a49c482195cb4"
    assert incoming.dedup_key.startswith("sha:")


def test_single_item_member_list() -> None:
    xml = DOC_SAMPLE.replace("<Item>Jack</Item><Item>Rose</Item>", "<Item>wmOnly</Item>")
    event = _normalize(xml).event
    assert isinstance(event, MemberJoined) and [m.id for m in event.members] == ["wmOnly"]


def test_del_member_create_dismiss_and_rename() -> None:
    left = _normalize(DOC_SAMPLE.replace("add_member", "del_member")).event
    assert isinstance(left, MemberLeft) and left.member_ids == ["Jack", "Rose"]
    assert left.quit_scene == 0
    created = _normalize(DOC_SAMPLE.replace("[update]", "[create]")).event
    assert isinstance(created, GroupCreated)
    dismissed = _normalize(DOC_SAMPLE.replace("[update]", "[dismiss]")).event
    assert isinstance(dismissed, GroupDismissed)
    renamed = _normalize(DOC_SAMPLE.replace("add_member", "change_name")).event
    assert isinstance(renamed, GroupUpdated) and renamed.detail == "change_name"


def test_same_payload_same_key_different_payload_different_key() -> None:
    assert _normalize(DOC_SAMPLE).dedup_key == _normalize(DOC_SAMPLE).dedup_key
    other = DOC_SAMPLE.replace("1403610513", "1403610514")
    assert _normalize(other).dedup_key != _normalize(DOC_SAMPLE).dedup_key


def test_app_text_message_dedups_by_msgid() -> None:
    xml = (
        "<xml><ToUserName>corp</ToUserName><FromUserName>zhangsan</FromUserName>"
        "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
        "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
    )
    incoming = _normalize(xml)
    assert incoming.dedup_key == "msg:1456453720"
    assert isinstance(incoming.event, Message)
    assert incoming.event.sender == "zhangsan" and incoming.event.text == "你好"


def test_unknown_event_is_kept_without_an_event() -> None:
    xml = (
        "<xml><ToUserName>c</ToUserName><FromUserName>sys</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>event</MsgType><Event>msgaudit_notify</Event></xml>"
    )
    incoming = _normalize(xml)
    assert incoming.event is None and incoming.event_type == "msgaudit_notify"


def test_event_round_trips_through_json() -> None:
    event = _normalize(DOC_SAMPLE).event
    assert event is not None
    assert event_from_json(event.model_dump(mode="json")) == event


@pytest.mark.parametrize(
    "payload",
    [
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        "<xml><Encrypt>&lol2;</Encrypt></xml>",
        '<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><xml/>',
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>',
        "<xml><unclosed></xml>",
        "not xml at all",
    ],
)
def test_dangerous_or_malformed_xml_is_refused(payload: str) -> None:
    with pytest.raises(XmlError):
        xml_to_dict(payload)


def test_archive_text_record() -> None:
    raw = {
        "msgid": "1234_567",
        "action": "send",
        "from": "wmABC",
        "tolist": [],
        "roomid": "wrXYZ",
        "msgtime": 1732320000123,
        "msgtype": "text",
        "text": {"content": "有没有私域运营的资料"},
    }
    incoming = normalize_archive(ArchiveRecord.model_validate(raw), raw)
    assert incoming.dedup_key == "archive:1234_567"
    assert isinstance(incoming.event, Message)
    assert incoming.event.chat_id == "wrXYZ" and incoming.event.sender == "wmABC"
    assert incoming.event.text == "有没有私域运营的资料"
    assert incoming.event.occurred_at.year == 2024


def test_archive_unknown_msgtype_has_no_event() -> None:
    raw = {
        "msgid": "9",
        "action": "send",
        "from": "a",
        "roomid": "wr1",
        "msgtime": 1,
        "msgtype": "redpacket",
        "redpacket": {},
    }
    incoming = normalize_archive(ArchiveRecord.model_validate(raw), raw)
    assert incoming.event is None and incoming.event_type == "archive:redpacket"


def test_aibot_mention_is_stripped() -> None:
    payload = {
        "msgid": "CAIQ16",
        "aibotid": "AIBOTID",
        "chatid": "CHATID",
        "chattype": "group",
        "from": {"userid": "USERID"},
        "response_url": "https://example.invalid/r",
        "msgtype": "text",
        "text": {"content": "@RobotA 有没有私域资料"},
    }
    incoming = normalize_aibot(payload, "{}")
    assert isinstance(incoming.event, Message)
    assert incoming.event.text == "有没有私域资料" and incoming.event.mentioned_bot
    assert incoming.event.response_url == "https://example.invalid/r"
    assert incoming.dedup_key == "aibot:CAIQ16"
