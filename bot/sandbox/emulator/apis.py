"""The WeCom server APIs the bot uses, as plain functions over EmulatorState.

Each takes (state, query, body), returns the fields to add to
{"errcode": 0, "errmsg": "ok"}, and raises ApiError with WeCom's errcode
otherwise. Fault injection, access-token checks and JSON parsing happen in
app.py, around these.

errcodes chosen where WeCom's exact answer is not documented (all are in
WeCom's global error-code list; the client treats every one as permanent):
- groupchat/get with an unknown chat_id: 40050 "chatid不存在".
- a missing or malformed required field: 40058 "不合法的参数" (also what WeCom
  answers for over-long content).
- appchat/send without chatid: 86001 "参数 chatid 不合法".
- unknown welcome template_id, or a full template library (100): 40058.
- get_groupmsg_send_result with an unknown msgid, or a limit outside 1..1000: 40058.
- finance/getchatdata with a wrong corpid or archive secret: 48002, the code the
  SDK's GetChatData is reported to return for a wrong secret; a limit outside
  1..1000: 40058 (the real SDK refuses it itself with 10000).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.messages import (
    APP_MESSAGE_RULES,
    APPCHAT_RULES,
    WEBHOOK_RULES,
    check_content,
    validate_message,
)
from bot.sandbox.emulator.state import EmulatorState, JSONDict, MassSend

Handler = Callable[[EmulatorState, Mapping[str, str], JSONDict], JSONDict]

MAX_CHAT_IDS = 2000  # add_msg_template chat_id_list
MAX_ATTACHMENTS = 9  # add_msg_template attachments
MAX_SEND_RESULTS = 1000  # get_groupmsg_send_result's limit (default 500)
MSG_TEMPLATE_TEXT_LIMIT = 4000
WELCOME_FIELDS = ("text", "image", "link", "miniprogram", "file", "video")
MAX_WELCOME_TEMPLATES = 100
MAX_CHAT_DATA = 1000  # GetChatData's limit
# The add doc says 3000 bytes, the edit doc 4000 (notes §10.1); mirror both.
WELCOME_TEXT_LIMIT_ADD = 3000
WELCOME_TEXT_LIMIT_EDIT = 4000


def gettoken(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    corpid = query.get("corpid")
    secret = query.get("corpsecret")
    if not corpid:
        raise ApiError(41002)
    if corpid != state.corp_id:
        raise ApiError(40013)
    if not secret:
        raise ApiError(41004)
    if secret != state.corp_secret:
        raise ApiError(40001)
    return {"access_token": state.issue_token(), "expires_in": state.token_ttl}


def webhook_send(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    key = query.get("key", "")
    if not key or key in state.invalid_webhook_keys:
        raise ApiError(93000)
    validate_message(body, WEBHOOK_RULES)
    if not state.webhook_allow(key):
        raise ApiError(45009)
    state.record("webhook/send", key, body)
    return {}


def appchat_send(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    chatid = body.get("chatid")
    if not isinstance(chatid, str) or not chatid:
        raise ApiError(86001)
    validate_message(body, APPCHAT_RULES)
    state.record("appchat/send", chatid, body)
    return {}


def appchat_update(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    """An app-created group's members change (the service removes members with it)."""
    chatid = body.get("chatid")
    if not isinstance(chatid, str) or not chatid:
        raise ApiError(86001)
    removed = body.get("del_user_list") or []
    if not isinstance(removed, list) or not all(isinstance(u, str) for u in removed):
        raise ApiError(40058)
    state.record("appchat/update", chatid, body)
    for userid in removed:
        with contextlib.suppress(KeyError):  # a group the emulator does not list
            state.remove_member(chatid, userid)
    return {}


def message_send(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    agentid = body.get("agentid")
    if agentid is None or agentid == "":
        raise ApiError(41011)
    if str(agentid) != str(state.agent_id):
        raise ApiError(40056)
    target = next((str(body[k]) for k in ("touser", "toparty", "totag") if body.get(k)), "")
    if not target:
        raise ApiError(81013)
    validate_message(body, APP_MESSAGE_RULES)
    state.record("message/send", target, body)
    return {
        "invaliduser": "",
        "invalidparty": "",
        "invalidtag": "",
        "unlicenseduser": "",
        "msgid": _new_id(),
    }


def groupchat_get(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    chat_id = body.get("chat_id")
    if not isinstance(chat_id, str) or not chat_id:
        raise ApiError(40058, "chat_id missing")
    group = state.get_group(chat_id)
    if group is None:
        raise ApiError(40050)
    # need_name defaults to 0 in WeCom: names are only returned when asked for.
    if str(body.get("need_name", 0)).lower() not in ("1", "true"):
        for member in group["member_list"]:
            member.pop("name", None)
    return {"group_chat": group}


def add_msg_template(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    chat_type = body.get("chat_type", "single")
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "invalid chat_type")
    sender = body.get("sender") or ""
    if chat_type == "group" and not sender:
        raise ApiError(40058, "sender required when chat_type is group")
    chat_ids = body.get("chat_id_list") or []
    if not isinstance(chat_ids, list) or len(chat_ids) > MAX_CHAT_IDS:
        raise ApiError(40058, "invalid chat_id_list")
    attachments = body.get("attachments") or []
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise ApiError(40058, "invalid attachments")
    text = body.get("text")
    if not text and not attachments:
        raise ApiError(44004)
    if text:
        if not isinstance(text, Mapping):
            raise ApiError(40058, "invalid text")
        check_content(text, "text.content", MSG_TEMPLATE_TEXT_LIMIT)
    # WeCom lists what it could not reach; for groups, a chat the emulator doesn't know.
    fail_list = [c for c in chat_ids if c not in state.groups] if chat_type == "group" else []
    # The target is who it reaches: the chats, the customers, else the member asked to pick.
    customers = body.get("external_userid") or []
    if chat_type == "group" and chat_ids:
        target = ",".join(map(str, chat_ids))
    elif chat_type != "group" and isinstance(customers, list) and customers:
        target = ",".join(map(str, customers))
    else:
        target = str(sender)
    state.record("add_msg_template", target, body)
    msgid = _new_id()
    reached = [str(c) for c in chat_ids if c not in fail_list] if chat_type == "group" else []
    if chat_type != "group" and isinstance(customers, list):
        reached = [str(c) for c in customers]
    state.add_mass_send(MassSend(msgid, str(sender), str(chat_type), reached))
    return {"fail_list": fail_list, "msgid": msgid}


def get_groupmsg_send_result(
    state: EmulatorState, query: Mapping[str, str], body: JSONDict
) -> JSONDict:
    """What the sender did with a mass send: one row per chat (group) or customer
    (single), paged by an opaque cursor. Another member's userid sees no rows."""
    msgid, userid = body.get("msgid"), body.get("userid")
    if not isinstance(msgid, str) or not msgid:
        raise ApiError(40058, "msgid missing")
    if not isinstance(userid, str) or not userid:
        raise ApiError(40058, "userid missing")
    limit = body.get("limit", MAX_SEND_RESULTS)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_SEND_RESULTS:
        raise ApiError(40058, f"limit must be 1..{MAX_SEND_RESULTS}")
    cursor = body.get("cursor") or ""
    if not isinstance(cursor, str) or (cursor and not cursor.isdigit()):
        raise ApiError(40058, "invalid cursor")
    mass_send = state.mass_sends.get(msgid)
    if mass_send is None:
        raise ApiError(40058, "unknown msgid")
    targets = mass_send.targets if mass_send.sender == userid else []
    start = int(cursor or 0)
    page = targets[start : start + limit]
    group = mass_send.chat_type == "group"
    rows = [
        {
            "external_userid": "" if group else target,
            "chat_id": target if group else "",
            "userid": mass_send.sender,
            "status": mass_send.status,
            "send_time": mass_send.send_time,
        }
        for target in page
    ]
    more = start + limit < len(targets)
    return {"next_cursor": str(start + limit) if more else "", "send_list": rows}


def welcome_template_add(
    state: EmulatorState, query: Mapping[str, str], body: JSONDict
) -> JSONDict:
    content = _welcome_content(body, WELCOME_TEXT_LIMIT_ADD)
    if len(state.welcome_templates) >= MAX_WELCOME_TEMPLATES:
        raise ApiError(40058, f"welcome template library is full ({MAX_WELCOME_TEMPLATES})")
    template_id = _new_id()
    state.welcome_templates[template_id] = content
    state.record("group_welcome_template/add", template_id, body)
    return {"template_id": template_id}


def welcome_template_edit(
    state: EmulatorState, query: Mapping[str, str], body: JSONDict
) -> JSONDict:
    template_id = _known_template(state, body)
    state.welcome_templates[template_id] = _welcome_content(body, WELCOME_TEXT_LIMIT_EDIT)
    state.record("group_welcome_template/edit", template_id, body)
    return {}


def welcome_template_get(
    state: EmulatorState, query: Mapping[str, str], body: JSONDict
) -> JSONDict:
    return dict(state.welcome_templates[_known_template(state, body)])


def welcome_template_del(
    state: EmulatorState, query: Mapping[str, str], body: JSONDict
) -> JSONDict:
    template_id = _known_template(state, body)
    del state.welcome_templates[template_id]
    state.record("group_welcome_template/del", template_id, body)
    return {}


def get_chat_data(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    """The 会话内容存档 SDK's GetChatData, over HTTP.

    Tencent's SDK speaks a private protocol (libWeWorkFinanceSdk_C.so), so this path
    is the emulator's own. It authenticates like the SDK's Init (corpid and the
    archive secret, no access_token) and answers GetChatData's JSON: records after
    `seq`, at most `limit`, in seq order. Each entry carries the record already
    decrypted (`record`) instead of `encrypt_random_key`/`encrypt_chat_msg`:
    DecryptData's format is Tencent's secret too.
    """
    if body.get("corpid") != state.corp_id or body.get("secret") != state.archive_secret:
        raise ApiError(48002)
    seq, limit = body.get("seq", 0), body.get("limit", MAX_CHAT_DATA)
    if not isinstance(seq, int) or seq < 0:
        raise ApiError(40058, "invalid seq")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_CHAT_DATA:
        raise ApiError(40058, f"limit must be 1..{MAX_CHAT_DATA}")
    return {"chatdata": [entry.to_dict() for entry in state.archive_after(seq, limit)]}


AIBOT_REPLY_LIMIT = 20480  # a stream's content limit (notes §4.5); markdown likewise here


def aibot_response(state: EmulatorState, query: Mapping[str, str], body: JSONDict) -> JSONDict:
    """A reply to a 智能机器人 message through its response_url: plain JSON, no
    access_token, one call per response_code within an hour (notes §4.6). The real
    errcode for a used or expired url is not documented; 40058 stands in for it."""
    problem, target = state.use_response_code(query.get("response_code", ""))
    if problem is not None:
        raise ApiError(40058, problem)
    msgtype = body.get("msgtype")
    if msgtype not in ("markdown", "template_card"):
        raise ApiError(40008)
    payload = body.get(msgtype)
    if not isinstance(payload, Mapping):
        raise ApiError(40058, f"{msgtype} missing")
    if msgtype == "markdown":
        check_content(payload, "markdown.content", AIBOT_REPLY_LIMIT)
    state.record("aibot/response", target or query.get("response_code", ""), body)
    return {}


def _known_template(state: EmulatorState, body: JSONDict) -> str:
    template_id = body.get("template_id")
    if not isinstance(template_id, str) or template_id not in state.welcome_templates:
        raise ApiError(40058, "invalid template_id")
    return template_id


def _welcome_content(body: JSONDict, text_limit: int) -> JSONDict:
    content: dict[str, Any] = {k: body[k] for k in WELCOME_FIELDS if body.get(k)}
    if not content:
        raise ApiError(40058, "text, image, link, miniprogram, file and video are all empty")
    text = content.get("text")
    if text is not None:
        if not isinstance(text, Mapping):
            raise ApiError(40058, "invalid text")
        check_content(text, "text.content", text_limit)
    return content


def _new_id() -> str:
    return "msg" + secrets.token_urlsafe(18)
