"""create_emulator_app: WeCom's paths under /cgi-bin/, plus the /_emulator/ control API.

Every WeCom endpoint goes through the same steps, in WeCom's order as far as
a client can tell: count the call, apply an injected fault, check the
access_token, parse the JSON body, run the API function, answer HTTP 200 with
errcode/errmsg.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline

from bot.sandbox.emulator import apis
from bot.sandbox.emulator.control import control_router
from bot.sandbox.emulator.errors import ApiError, error_body
from bot.sandbox.emulator.state import TOKEN_OK, EmulatorState, Fault, JSONDict

CONTROL_PREFIX = "/_emulator"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    api: str  # the name used in SentRecord.api and Fault.api
    handler: apis.Handler
    needs_token: bool = True


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/cgi-bin/gettoken", "gettoken", apis.gettoken, needs_token=False),
    Endpoint("POST", "/cgi-bin/webhook/send", "webhook/send", apis.webhook_send, False),
    Endpoint("POST", "/cgi-bin/appchat/send", "appchat/send", apis.appchat_send),
    Endpoint("POST", "/cgi-bin/appchat/update", "appchat/update", apis.appchat_update),
    Endpoint("POST", "/cgi-bin/message/send", "message/send", apis.message_send),
    Endpoint("POST", "/cgi-bin/externalcontact/groupchat/get", "groupchat/get", apis.groupchat_get),
    Endpoint(
        "POST", "/cgi-bin/finance/getchatdata", "finance/getchatdata", apis.get_chat_data, False
    ),
    Endpoint("POST", "/cgi-bin/aibot/response", "aibot/response", apis.aibot_response, False),
    Endpoint(
        "POST",
        "/cgi-bin/externalcontact/add_msg_template",
        "add_msg_template",
        apis.add_msg_template,
    ),
    Endpoint(
        "POST",
        "/cgi-bin/externalcontact/get_groupmsg_send_result",
        "get_groupmsg_send_result",
        apis.get_groupmsg_send_result,
    ),
    *(
        Endpoint(
            "POST",
            f"/cgi-bin/externalcontact/group_welcome_template/{verb}",
            f"group_welcome_template/{verb}",
            handler,
        )
        for verb, handler in (
            ("add", apis.welcome_template_add),
            ("edit", apis.welcome_template_edit),
            ("get", apis.welcome_template_get),
            ("del", apis.welcome_template_del),
        )
    ),
)


def create_emulator_app(state: EmulatorState | None = None) -> FastAPI:
    state = state if state is not None else EmulatorState()
    app = FastAPIOffline(  # its /docs works offline too
        title="WeCom emulator",
        description="A fake WeCom server API for sandbox mode and tests. Loopback only.",
    )
    app.state.emulator = state
    app.include_router(wecom_router(state))
    app.include_router(control_router(state), prefix=CONTROL_PREFIX)
    return app


def wecom_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(tags=["wecom"])
    for endpoint in ENDPOINTS:
        router.add_api_route(
            endpoint.path,
            _make_route(state, endpoint),
            methods=[endpoint.method],
            name=endpoint.api,
            summary=endpoint.api,
        )
    return router


def _make_route(
    state: EmulatorState, endpoint: Endpoint
) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        state.count_call(endpoint.api)
        client_ip = request.client.host if request.client else "unknown"
        fault = state.take_fault(endpoint.api)
        if fault is not None:
            faulty = await _apply_fault(fault, client_ip)
            if faulty is not None:
                return faulty
        try:
            if endpoint.needs_token:
                errcode = state.check_token(request.query_params.get("access_token"))
                if errcode != TOKEN_OK:
                    raise ApiError(errcode)
            body = await _json_body(request) if endpoint.method == "POST" else {}
            extra = endpoint.handler(state, request.query_params, body)
        except ApiError as exc:
            return JSONResponse(error_body(exc.errcode, exc.errmsg, client_ip))
        return JSONResponse({"errcode": 0, "errmsg": "ok", **extra})

    route.__name__ = "wecom_" + endpoint.api.replace("/", "_")
    return route


async def _apply_fault(fault: Fault, client_ip: str) -> Response | None:
    if fault.delay > 0:
        await asyncio.sleep(fault.delay)
    if fault.http_status != HTTPStatus.OK:
        # Gateways in front of WeCom answer errors with a bare status line, not JSON.
        return PlainTextResponse(_phrase(fault.http_status), status_code=fault.http_status)
    if fault.errcode != 0:
        return JSONResponse(error_body(fault.errcode, None, client_ip))
    return None


async def _json_body(request: Request) -> JSONDict:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(47001) from exc
    if not isinstance(data, dict):
        raise ApiError(47001)
    return data


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)
