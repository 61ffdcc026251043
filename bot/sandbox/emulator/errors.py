"""WeCom-shaped error answers: HTTP 200, a non-zero errcode, and an errmsg that carries noise.

The errmsg imitates the real one ("..., hint: [...], from ip: ..., more info at
...?e=CODE") so that a client reading errmsg instead of errcode breaks here
first.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

ERRMSG: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40050: "chatid not found",
    40056: "invalid agentid",
    40058: "invalid Request Parameter",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41006: "media_id missing",
    41011: "agentid missing",
    41016: "title missing",
    41033: "description missing",
    42001: "access_token expired",
    44004: "empty content",
    45008: "too many articles",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    81013: "user & party & tag all invalid",
    86001: "invalid chatid",
    93000: "invalid webhook url",
}


class ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSG.get(errcode, "error")
        super().__init__(f"{errcode}: {self.errmsg}")


def error_body(errcode: int, errmsg: str | None, client_ip: str) -> dict[str, Any]:
    text = errmsg or ERRMSG.get(errcode, "error")
    hint = f"{int(time.time())}{secrets.randbelow(10**9):09d}"
    return {
        "errcode": errcode,
        "errmsg": (
            f"{text}, hint: [{hint}], from ip: {client_ip}, "
            f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        ),
    }
