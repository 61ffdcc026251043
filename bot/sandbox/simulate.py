"""Build correctly signed and encrypted WeCom callbacks (for `simulate`, tests, bench)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from xml.sax.saxutils import escape

from bot.wecom.crypto import WeComCrypto

# Made-up newcomers for `simulate join` without --member.
SAMPLE_NAMES = ("小美", "大卫", "阿珍", "老周", "思思", "小林", "阿杰", "晓雨")


def made_up_names(count: int, start: int = 0) -> list[str]:
    """`count` distinct names: the sample names from `start` on, then 小美2, 大卫2, …"""
    names = []
    for i in range(start, start + count):
        base = SAMPLE_NAMES[i % len(SAMPLE_NAMES)]
        lap = (i - start) // len(SAMPLE_NAMES)
        names.append(base if lap == 0 else f"{base}{lap + 1}")
    return names


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def change_external_chat_xml(
    *,
    corp_id: str,
    chat_id: str,
    change_type: str = "update",
    update_detail: str | None = None,
    members: list[str] | None = None,
    join_scene: int | None = None,
    quit_scene: int | None = None,
    member_version: str | None = None,
    create_time: int | None = None,
) -> str:
    parts = [
        f"<ToUserName>{_cdata(corp_id)}</ToUserName>",
        f"<FromUserName>{_cdata('sys')}</FromUserName>",
        f"<CreateTime>{create_time if create_time is not None else int(time.time())}</CreateTime>",
        f"<MsgType>{_cdata('event')}</MsgType>",
        f"<Event>{_cdata('change_external_chat')}</Event>",
        f"<ChatId>{_cdata(chat_id)}</ChatId>",
        f"<ChangeType>{_cdata(change_type)}</ChangeType>",
    ]
    if update_detail:
        parts.append(f"<UpdateDetail>{_cdata(update_detail)}</UpdateDetail>")
    if join_scene is not None:
        parts.append(f"<JoinScene>{join_scene}</JoinScene>")
    if quit_scene is not None:
        parts.append(f"<QuitScene>{quit_scene}</QuitScene>")
    if members:
        parts.append(f"<MemChangeCnt>{len(members)}</MemChangeCnt>")
        items = "".join(f"<Item>{_cdata(m)}</Item>" for m in members)
        parts.append(f"<MemChangeList>{items}</MemChangeList>")
    version = member_version or secrets.token_hex(16)
    parts.append(f"<CurMemVer>{_cdata(version)}</CurMemVer>")
    return "<xml>" + "".join(parts) + "</xml>"


def app_text_xml(*, corp_id: str, sender: str, content: str, msg_id: int, agent_id: int) -> str:
    return (
        f"<xml><ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<FromUserName>{_cdata(sender)}</FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
        f"<Content>{_cdata(content)}</Content><MsgId>{msg_id}</MsgId>"
        f"<AgentID>{agent_id}</AgentID></xml>"
    )


def msgaudit_notify_xml(*, corp_id: str, agent_id: int, create_time: int | None = None) -> str:
    """会话内容存档's "new messages" event (notes §6): no content, only "pull now"."""
    return (
        f"<xml><ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<FromUserName>{_cdata('sys')}</FromUserName>"
        f"<CreateTime>{create_time if create_time is not None else int(time.time())}</CreateTime>"
        f"<MsgType>{_cdata('event')}</MsgType><AgentID>{agent_id}</AgentID>"
        f"<Event>{_cdata('msgaudit_notify')}</Event></xml>"
    )


def archive_text_record(
    *, chat_id: str, sender: str, content: str, msg_id: str, msgtime_ms: int | None = None
) -> dict[str, object]:
    """A group text message as DecryptData gives it (SPEC §6)."""
    return {
        "msgid": msg_id,
        "action": "send",
        "from": sender,
        "tolist": [],
        "roomid": chat_id,
        "msgtime": msgtime_ms if msgtime_ms is not None else int(time.time() * 1000),
        "msgtype": "text",
        "text": {"content": content},
    }


def aibot_text_json(
    *, chat_id: str | None, sender: str, content: str, msg_id: str, response_url: str = ""
) -> str:
    """A 智能机器人 text callback (notes §4.2); `response_url` is where its reply goes."""
    payload: dict[str, object] = {
        "msgid": msg_id,
        "aibotid": "sandbox-aibot",
        "chattype": "group" if chat_id else "single",
        "from": {"userid": sender},
        "response_url": response_url,
        "msgtype": "text",
        "text": {"content": content},
    }
    if chat_id:
        payload["chatid"] = chat_id
    return json.dumps(payload, ensure_ascii=False)


@dataclass(frozen=True)
class SignedRequest:
    params: dict[str, str]
    body: str


def sign_xml(crypto: WeComCrypto, plaintext: str, *, agent_id: str = "") -> SignedRequest:
    encrypted = crypto.encrypt(plaintext)
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(8)
    body = (
        f"<xml><ToUserName>{_cdata(crypto.receive_id)}</ToUserName>"
        f"<Encrypt>{_cdata(encrypted)}</Encrypt>"
        f"<AgentID>{_cdata(escape(agent_id))}</AgentID></xml>"
    )
    params = {
        "msg_signature": crypto.sign(timestamp, nonce, encrypted),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    return SignedRequest(params=params, body=body)


def sign_json(crypto: WeComCrypto, plaintext: str) -> SignedRequest:
    encrypted = crypto.encrypt(plaintext)
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(8)
    params = {
        "msg_signature": crypto.sign(timestamp, nonce, encrypted),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    return SignedRequest(params=params, body=json.dumps({"encrypt": encrypted}))
