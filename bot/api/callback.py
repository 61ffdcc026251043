"""WeCom callbacks: verify, decrypt, write to the inbox, answer `success` (SPEC §4).

Nothing is stored for a refused request; processing happens after the answer.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response

from bot.api.deps import MAX_CALLBACK_BYTES, RuntimeDep, read_limited_body
from bot.runtime import Runtime
from bot.sources.aibot import normalize_aibot
from bot.sources.callback_xml import is_archive_notify, normalize_callback
from bot.sources.normalized import Incoming
from bot.wecom.crypto import CryptoError, WeComCrypto
from bot.wecom.xml import XmlError, xml_to_dict

log = logging.getLogger(__name__)
TAGS: list[str | Enum] = ["callbacks"]


def _fail(runtime: Runtime, path: str, status: int, detail: str) -> HTTPException:
    runtime.metrics.callbacks.labels(path, str(status)).inc()
    return HTTPException(status_code=status, detail=detail)


def _crypto(runtime: Runtime, *, aibot: bool) -> WeComCrypto:
    settings = runtime.settings
    return _crypto_for(settings.callback_token, settings.aes_key, settings.corp_id, aibot)


@functools.lru_cache(maxsize=8)
def _crypto_for(token: str, aes_key: str, corp_id: str, aibot: bool) -> WeComCrypto:
    # Built once per configuration, not per callback (the key is decoded once).
    # 智能机器人 callbacks are encrypted with an empty receive-id.
    return WeComCrypto(token, aes_key, "" if aibot else corp_id)


def _verify_echo(
    runtime: Runtime,
    path: str,
    *,
    aibot: bool,
    sig: str | None,
    ts: str | None,
    nonce: str | None,
    echostr: str | None,
) -> PlainTextResponse:
    """URL verification: the decrypted echostr, as plain text (no quotes, no newline)."""
    if not sig or not ts or not nonce:
        raise _fail(runtime, path, 403, "missing signature parameters")
    if echostr is None:
        raise _fail(runtime, path, 400, "missing echostr")
    try:
        plain = _crypto(runtime, aibot=aibot).verify_and_decrypt(sig, ts, nonce, echostr)
    except CryptoError as exc:
        raise _fail(runtime, path, 403, f"verification failed: {exc}") from None
    runtime.metrics.callbacks.labels(path, "verified").inc()
    return PlainTextResponse(plain)


async def _signed_body(
    request: Request,
    runtime: Runtime,
    path: str,
    sig: str | None,
    ts: str | None,
    nonce: str | None,
) -> tuple[bytes, str, str, str]:
    """The body (413 past 1 MiB) and the signature parameters, known to be there."""
    try:
        body = await read_limited_body(request, MAX_CALLBACK_BYTES)
    except HTTPException as exc:
        runtime.metrics.callbacks.labels(path, str(exc.status_code)).inc()
        raise
    if not sig or not ts or not nonce:
        raise _fail(runtime, path, 403, "missing signature parameters")
    return body, sig, ts, nonce


MAX_CHAT_ID = 128


def runtime_of(request: Request) -> Runtime:
    # Not the RuntimeDep dependency on the two hot POST routes: FastAPI's solving of a
    # sub-dependency costs more per callback than the lookup itself (measured).
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _store(runtime: Runtime, path: str, incoming: Incoming) -> bool:
    if incoming.chat_id is not None and len(incoming.chat_id) > MAX_CHAT_ID:
        raise _fail(runtime, path, 400, f"chat id longer than {MAX_CHAT_ID} characters")
    stored = await runtime.writer.store(incoming)
    runtime.metrics.callbacks.labels(path, "stored" if stored else "duplicate").inc()
    if stored and incoming.event is not None:
        runtime.inbox.wake()
    return stored


async def verify_url(
    runtime: RuntimeDep,
    msg_signature: str | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
    echostr: str | None = None,
) -> PlainTextResponse:
    return _verify_echo(
        runtime,
        "/wecom/callback",
        aibot=False,
        sig=msg_signature,
        ts=timestamp,
        nonce=nonce,
        echostr=echostr,
    )


# The hot POST routes read their query parameters themselves: FastAPI's parameter
# solving cost more per callback than verifying the signature (measured). The
# parameters are still listed in /openapi.json.
SIGNED_QUERY = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in ("msg_signature", "timestamp", "nonce")
    ]
}


def _signature_params(request: Request) -> tuple[str | None, str | None, str | None]:
    query = request.query_params
    return query.get("msg_signature"), query.get("timestamp"), query.get("nonce")


async def receive(request: Request) -> PlainTextResponse:
    path = "/wecom/callback"
    runtime = runtime_of(request)
    body, msg_signature, timestamp, nonce = await _signed_body(
        request, runtime, path, *_signature_params(request)
    )
    try:
        envelope = xml_to_dict(body)
    except XmlError as exc:
        raise _fail(runtime, path, 400, str(exc)) from None
    encrypted = envelope.get("Encrypt")
    if not isinstance(encrypted, str) or not encrypted:
        raise _fail(runtime, path, 400, "no <Encrypt> element")
    crypto = _crypto(runtime, aibot=False)
    try:
        plaintext = crypto.verify_and_decrypt(msg_signature, timestamp, nonce, encrypted)
    except CryptoError as exc:
        raise _fail(runtime, path, 403, f"verification failed: {exc}") from None
    try:
        fields = xml_to_dict(plaintext)
    except XmlError as exc:
        raise _fail(runtime, path, 400, f"decrypted payload: {exc}") from None
    if is_archive_notify(fields):
        runtime.metrics.callbacks.labels(path, "archive_notify").inc()
        runtime.wake_archive()
        return PlainTextResponse("success")
    await _store(runtime, path, normalize_callback(fields, plaintext))
    return PlainTextResponse("success")


async def aibot_verify_url(
    runtime: RuntimeDep,
    msg_signature: str | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
    echostr: str | None = None,
) -> PlainTextResponse:
    return _verify_echo(
        runtime,
        "/wecom/aibot/callback",
        aibot=True,
        sig=msg_signature,
        ts=timestamp,
        nonce=nonce,
        echostr=echostr,
    )


async def aibot_receive(request: Request) -> Response:
    path = "/wecom/aibot/callback"
    runtime = runtime_of(request)
    body, msg_signature, timestamp, nonce = await _signed_body(
        request, runtime, path, *_signature_params(request)
    )
    try:
        envelope: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _fail(runtime, path, 400, "body is not JSON") from None
    encrypted = envelope.get("encrypt") if isinstance(envelope, dict) else None
    if not isinstance(encrypted, str) or not encrypted:
        raise _fail(runtime, path, 400, 'no "encrypt" field')
    try:
        plaintext = _crypto(runtime, aibot=True).verify_and_decrypt(
            msg_signature, timestamp, nonce, encrypted
        )
        payload = json.loads(plaintext)
    except CryptoError as exc:
        raise _fail(runtime, path, 403, f"verification failed: {exc}") from None
    except (ValueError, RecursionError):
        raise _fail(runtime, path, 400, "decrypted payload is not JSON") from None
    if not isinstance(payload, dict):
        raise _fail(runtime, path, 400, "decrypted payload is not a JSON object")
    await _store(runtime, path, normalize_aibot(payload, plaintext, received_at=runtime.clock()))
    # An empty answer ("空包") is allowed; the reply goes later through response_url.
    return Response(status_code=200)


def add_routes(app: FastAPI) -> None:
    """The callback routes, on the app's own router, ahead of the included routers.

    Not through `include_router`: FastAPI matches a request to an included router's
    route by walking every included router's routes first, which cost about an
    eighth of a callback's acknowledgement (measured: bench/README.md). These routes
    have no router-level prefix or dependency that flattening could lose."""
    text = PlainTextResponse
    routes: list[tuple[str, str, Callable[..., Any], type[Response]]] = [
        ("/wecom/callback", "GET", verify_url, text),
        ("/wecom/callback", "POST", receive, text),
        ("/wecom/aibot/callback", "GET", aibot_verify_url, text),
        ("/wecom/aibot/callback", "POST", aibot_receive, Response),
    ]
    for path, method, endpoint, response_class in routes:
        app.add_api_route(
            path,
            endpoint,
            methods=[method],
            response_class=response_class,
            openapi_extra=SIGNED_QUERY if method == "POST" else None,
            tags=TAGS,
        )
