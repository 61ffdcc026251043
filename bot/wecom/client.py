"""Async client for the WeCom server API (qyapi.weixin.qq.com, or the built-in emulator).

Policy (wecom-protocol.md, "Access token and errors"): cache the access token
until shortly before it expires; on 40001/40014/42001 drop it, fetch a new one
and retry once; retry -1, 45033, 5xx and network failures with exponential
backoff; never retry 45009 here, because the caller has to pause the whole
channel, not just this request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

import httpx

from bot.wecom.errors import MALFORMED_ERRCODE, ErrorKind, TransportError, WeComError

JSONDict = dict[str, Any]

log = logging.getLogger(__name__)

# WeCom may invalidate a token before expires_in ("企业微信可能会出于运营需要,提前使
# access_token失效"); refreshing five minutes early keeps long calls from straddling
# the expiry, and the 40014/42001 path covers the rest.
TOKEN_REFRESH_MARGIN = 300.0
DEFAULT_TOKEN_TTL = 7200

GETTOKEN_PATH = "/cgi-bin/gettoken"
AIBOT_RESPONSE_PATH = "/cgi-bin/aibot/response"
# errcode of a request the client refuses to make (a response_url off WeCom's host).
REFUSED_ERRCODE = -5


class AibotReplies(Protocol):
    """The 智能机器人 long connection, where this process holds it (bot/sources/aibot_link)."""

    async def respond(self, req_id: str, body: JSONDict) -> JSONDict: ...


class NoLongConnection:
    """This process holds no long connection: a reply on it cannot be sent from here."""

    async def respond(self, req_id: str, body: JSONDict) -> JSONDict:
        raise TransportError("this process holds no 智能机器人 long connection")


class WeComClient:
    def __init__(
        self,
        *,
        api_base: str,
        corp_id: str,
        corp_secret: str,
        agent_id: int | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff_base: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent_id = agent_id
        self._api_base = api_base.rstrip("/")
        self._corp_id = corp_id
        self._corp_secret = corp_secret
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self._retries = retries
        self._backoff_base = backoff_base
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()
        # Replies on the 智能机器人 long connection go through it (set by the runtime).
        self.aibot_link: AibotReplies = NoLongConnection()

    async def __aenter__(self) -> WeComClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- access token -------------------------------------------------------------

    async def access_token(self, *, force_refresh: bool = False) -> str:
        # One lock, checked inside: N concurrent callers with a cold cache cause
        # one gettoken, which matters because gettoken itself is rate limited.
        async with self._token_lock:
            if (
                not force_refresh
                and self._token is not None
                and self._clock() < self._token_expires_at
            ):
                return self._token
            started = self._clock()
            resp = await self._request(
                "GET",
                GETTOKEN_PATH,
                params={"corpid": self._corp_id, "corpsecret": self._corp_secret},
                json=None,
                retries=self._retries,
            )
            token = resp.get("access_token")
            if not isinstance(token, str) or not token:
                raise WeComError(
                    MALFORMED_ERRCODE,
                    "gettoken answered without an access_token",
                    kind="permanent",
                    path=GETTOKEN_PATH,
                )
            ttl = _int_or(resp.get("expires_in"), DEFAULT_TOKEN_TTL)
            # Measured from before the request so network time only shortens the cache.
            self._token = token
            self._token_expires_at = started + ttl - min(TOKEN_REFRESH_MARGIN, ttl / 2)
            return token

    def _drop_token(self, token: str) -> None:
        # Compare first: when several calls fail with the same stale token, only the
        # first drop matters; later ones must not throw away a token already renewed.
        if self._token == token:
            self._token = None

    # -- generic call ---------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: JSONDict | None = None,
        params: Mapping[str, Any] | None = None,
        with_token: bool = True,
        retries: int | None = None,
    ) -> JSONDict:
        budget = self._retries if retries is None else retries
        refreshed = False
        while True:
            query: dict[str, Any] = dict(params or {})
            token: str | None = None
            if with_token:
                # Outside the try: a failing gettoken (wrong secret answers 40001) must
                # not be mistaken for a stale token and trigger another gettoken.
                token = await self.access_token()
                query["access_token"] = token
            try:
                return await self._request(method, path, params=query, json=json, retries=budget)
            except WeComError as exc:
                if exc.kind != "auth" or token is None or refreshed:
                    raise
                log.info("wecom %s: errcode %s, refreshing access token", path, exc.errcode)
                refreshed = True
                self._drop_token(token)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        json: JSONDict | None,
        retries: int,
        url: str | None = None,
    ) -> JSONDict:
        attempt = 0
        while True:
            try:
                return await self._send_once(method, path, params=params, json=json, url=url)
            except WeComError as exc:
                if exc.kind != "retry" or attempt >= retries:
                    raise
                delay = self._backoff_base * 2**attempt
                # Never log params: they carry the access token, corpsecret or webhook key.
                log.warning(
                    "wecom %s: errcode %s, retry %d/%d in %.2fs",
                    path,
                    exc.errcode,
                    attempt + 1,
                    retries,
                    delay,
                )
                await asyncio.sleep(delay)
                attempt += 1

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        json: JSONDict | None,
        url: str | None = None,
    ) -> JSONDict:
        """`url`: a whole address to call instead of api_base + path (a response_url);
        `path` still names the call in errors and logs, which never show the address."""
        try:
            response = await self._http.request(
                method,
                url or self._api_base + path,
                # httpx replaces a URL's own query with `params`, even an empty one.
                params=params if url is None or params else None,
                json=json,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise TransportError(f"timeout ({type(exc).__name__})", path=path) from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", path=path) from exc
        return _decode(response, path)

    # -- typed helpers ----------------------------------------------------------------

    async def webhook_send(
        self, key: str, message: JSONDict, *, retries: int | None = None
    ) -> JSONDict:
        return await self.call(
            "POST",
            "/cgi-bin/webhook/send",
            json=message,
            params={"key": key},
            with_token=False,
            retries=retries,
        )

    async def appchat_send(self, message: JSONDict, *, retries: int | None = None) -> JSONDict:
        if not message.get("chatid"):
            raise ValueError("appchat/send needs a chatid in the message")
        return await self.call("POST", "/cgi-bin/appchat/send", json=message, retries=retries)

    async def appchat_update(self, body: JSONDict, *, retries: int | None = None) -> JSONDict:
        """Change an app-created group (add_user_list / del_user_list)."""
        if not body.get("chatid"):
            raise ValueError("appchat/update needs a chatid")
        return await self.call("POST", "/cgi-bin/appchat/update", json=body, retries=retries)

    async def message_send(self, message: JSONDict, *, retries: int | None = None) -> JSONDict:
        body = dict(message)
        if "agentid" not in body:
            if self.agent_id is None:
                raise ValueError("message/send needs an agentid: set WeComClient(agent_id=...)")
            body["agentid"] = self.agent_id
        return await self.call("POST", "/cgi-bin/message/send", json=body, retries=retries)

    async def groupchat_get(self, chat_id: str, *, need_name: bool = True) -> JSONDict:
        path = "/cgi-bin/externalcontact/groupchat/get"
        resp = await self.call(
            "POST", path, json={"chat_id": chat_id, "need_name": 1 if need_name else 0}
        )
        group = resp.get("group_chat")
        if not isinstance(group, dict):
            raise WeComError(
                MALFORMED_ERRCODE, "answer without group_chat", kind="permanent", path=path
            )
        return group

    async def add_msg_template(self, body: JSONDict, *, retries: int | None = None) -> JSONDict:
        return await self.call(
            "POST", "/cgi-bin/externalcontact/add_msg_template", json=body, retries=retries
        )

    async def get_groupmsg_send_result(
        self, msgid: str, userid: str, cursor: str = "", *, limit: int = 500
    ) -> JSONDict:
        """获取企业群发成员执行结果 (doc 93338): one page of what `userid` did with the
        mass send `msgid` (`send_list`, status 0 未发送 / 1 已发送 / 2 / 3 failed);
        page on with the answer's `next_cursor` while it is not empty."""
        if not msgid or not userid:
            raise ValueError("get_groupmsg_send_result needs a msgid and the sender's userid")
        body: JSONDict = {"msgid": msgid, "userid": userid, "limit": limit, "cursor": cursor}
        return await self.call(
            "POST", "/cgi-bin/externalcontact/get_groupmsg_send_result", json=body
        )

    async def aibot_response(
        self, url: str, message: JSONDict, *, retries: int | None = None
    ) -> JSONDict:
        """POST a reply to a 智能机器人 message's response_url (plain JSON, no token).

        Only to a URL on WECOM_API_BASE's scheme, host and port: the url comes in a
        callback payload, and nothing in a payload may make the service call elsewhere.
        A response_url takes one call within an hour, so any error WeCom answers (a used
        or expired url) is final; transport errors and WeCom's "busy" codes retry."""
        self._check_response_url(url)
        try:
            return await self._request(
                "POST",
                AIBOT_RESPONSE_PATH,
                params={},
                json=message,
                retries=self._retries if retries is None else retries,
                url=url,
            )
        except WeComError as exc:
            if exc.kind in ("retry", "rate_limited"):
                raise
            raise WeComError(
                exc.errcode,
                exc.errmsg,
                kind="permanent",
                http_status=exc.http_status,
                path=AIBOT_RESPONSE_PATH,
            ) from None

    def _check_response_url(self, url: str) -> None:
        base = httpx.URL(self._api_base)
        try:
            given = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            given = None
        if given is None or not given.is_absolute_url or given.scheme not in ("http", "https"):
            raise WeComError(
                REFUSED_ERRCODE,
                "response_url is not an http(s) address; not called",
                kind="permanent",
                path=AIBOT_RESPONSE_PATH,
            )
        if (given.scheme, given.host, given.port) != (base.scheme, base.host, base.port):
            raise WeComError(
                REFUSED_ERRCODE,
                f"response_url points at {given.host!r}, not WECOM_API_BASE's host "
                f"{base.host!r}; not called",
                kind="permanent",
                path=AIBOT_RESPONSE_PATH,
            )

    async def aibot_respond(self, req_id: str, body: JSONDict) -> JSONDict:
        """Reply on the 智能机器人 long connection (aibot_respond_msg echoing `req_id`)."""
        return await self.aibot_link.respond(req_id, body)

    async def group_welcome_template_add(self, body: JSONDict) -> str:
        path = "/cgi-bin/externalcontact/group_welcome_template/add"
        resp = await self.call("POST", path, json=body)
        template_id = resp.get("template_id")
        if not isinstance(template_id, str) or not template_id:
            raise WeComError(
                MALFORMED_ERRCODE, "answer without template_id", kind="permanent", path=path
            )
        return template_id

    async def group_welcome_template_edit(self, template_id: str, body: JSONDict) -> None:
        await self.call(
            "POST",
            "/cgi-bin/externalcontact/group_welcome_template/edit",
            json={**body, "template_id": template_id},
        )

    async def group_welcome_template_del(self, template_id: str) -> None:
        await self.call(
            "POST",
            "/cgi-bin/externalcontact/group_welcome_template/del",
            json={"template_id": template_id},
        )


def _decode(response: httpx.Response, path: str) -> JSONDict:
    status = response.status_code
    if status >= 500:
        # Proxies and WeCom's gateway answer 5xx with HTML or nothing; the body is noise.
        raise TransportError(f"HTTP {status}", http_status=status, path=path)
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if status == 200:
            raise WeComError(
                MALFORMED_ERRCODE,
                "answer is not a JSON object",
                kind="permanent",
                http_status=status,
                path=path,
            )
        data = {}
    errcode = _int_or(data.get("errcode"), 0)
    if errcode != 0:
        raise WeComError(errcode, str(data.get("errmsg", "")), http_status=status, path=path)
    if not 200 <= status < 300:
        kind: ErrorKind = "rate_limited" if status == 429 else "permanent"
        raise WeComError(status, f"HTTP {status}", kind=kind, http_status=status, path=path)
    return data


def _int_or(value: Any, default: int) -> int:
    # WeCom sends numbers, but a proxy or a hand-written fake may send "7200".
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
