"""The baseline for bench/callback_throughput.py: a bare FastAPI endpoint that does the
same verify + decrypt + parse as /wecom/callback, and nothing else (no inbox, no DB)."""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from bot.wecom.crypto import WeComCrypto
from bot.wecom.xml import xml_to_dict

crypto = WeComCrypto(
    os.environ["WECOM_TOKEN"], os.environ["WECOM_ENCODING_AES_KEY"], os.environ["WECOM_CORP_ID"]
)
app = FastAPI()


@app.post("/wecom/callback", response_class=PlainTextResponse)
async def callback(request: Request, msg_signature: str, timestamp: str, nonce: str) -> str:
    envelope = xml_to_dict(await request.body())
    plaintext = crypto.verify_and_decrypt(msg_signature, timestamp, nonce, envelope["Encrypt"])
    xml_to_dict(plaintext)
    return "success"
