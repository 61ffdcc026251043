"""Errors raised by the WeCom server-API client, classified by what the caller should do.

WeCom answers most failures with HTTP 200 and a non-zero ``errcode``; the
``errmsg`` text varies (it carries a hint id and the caller's IP), so every
decision is taken on ``errcode`` alone.
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["retry", "rate_limited", "auth", "permanent"]

# -1 系统繁忙, 45033 接口并发调用超过限制: transient, worth a retry with backoff.
RETRY_ERRCODES: frozenset[int] = frozenset({-1, 45033})
# 45009 接口调用超过限制: the webhook's 20/min window or a per-API quota; retrying
# at once only burns more of the window, so the caller pauses the channel instead.
RATE_LIMITED_ERRCODES: frozenset[int] = frozenset({45009})
# 40001 不合法的secret/credential, 40014 不合法的access_token, 42001 access_token已过期.
AUTH_ERRCODES: frozenset[int] = frozenset({40001, 40014, 42001})

# errcode of a TransportError that never got an HTTP answer (timeout, refused, reset).
TRANSPORT_ERRCODE = -2
# errcode when the answer is not a WeCom response at all (not a JSON object, or a
# required field missing): usually a wrong api_base, which no retry will fix.
MALFORMED_ERRCODE = -3


def classify(errcode: int) -> ErrorKind:
    if errcode in RETRY_ERRCODES:
        return "retry"
    if errcode in RATE_LIMITED_ERRCODES:
        return "rate_limited"
    if errcode in AUTH_ERRCODES:
        return "auth"
    # 93000 (invalid webhook url / content rejected) and everything unknown: retrying
    # the same request cannot help, and guessing "transient" risks duplicate sends.
    return "permanent"


class WeComError(Exception):
    """errcode != 0 from WeCom, or a transport failure (see TransportError)."""

    errcode: int
    errmsg: str
    kind: ErrorKind
    http_status: int | None
    path: str | None

    def __init__(
        self,
        errcode: int,
        errmsg: str,
        *,
        kind: ErrorKind | None = None,
        http_status: int | None = None,
        path: str | None = None,
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.kind = classify(errcode) if kind is None else kind
        self.http_status = http_status
        self.path = path
        where = f" {path}" if path else ""
        super().__init__(f"WeCom{where} errcode={errcode} ({self.kind}): {errmsg}")


class TransportError(WeComError):
    """Network error, timeout or HTTP 5xx: the request may or may not have been applied."""

    def __init__(
        self,
        errmsg: str,
        *,
        http_status: int | None = None,
        path: str | None = None,
    ) -> None:
        errcode = http_status if http_status is not None else TRANSPORT_ERRCODE
        super().__init__(errcode, errmsg, kind="retry", http_status=http_status, path=path)
