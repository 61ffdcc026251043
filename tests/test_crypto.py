"""Our WXBizMsgCrypt against Tencent's official vectors and against wechatpy, both ways."""

from __future__ import annotations

import pytest
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from bot.wecom.crypto import (
    DecryptError,
    ReceiveIdError,
    SignatureError,
    WeComCrypto,
    signature,
)
from bot.wecom.xml import xml_to_dict

# Tencent's sample (sbzhu/weworkapi_python callback/Sample.py), notes §1.3.
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"
VERIFY_SIG = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
VERIFY_TS = "1476416373"
VERIFY_NONCE = "47744683"
VERIFY_ECHO = (
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
)
REQ_SIG = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
REQ_TS = "1476422779"
REQ_NONCE = "1597212914"
REQ_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGz"
    "BhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3J"
    "WcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQH"
    "E7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuP"
    "DGOCI8jmnKiypE+"
)
REQ_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)
# JSON callback vector (callback_json/Sample.py), notes §1.5.
JSON_SIG = "e3647471e395139e2308c1fa963f2d648a00b90e"
JSON_TS = "1409659813"
JSON_NONCE = "1372623149"
JSON_ENCRYPT = (
    "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv"
    "3EjVQ68C0cjw9frBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQ"
    "pzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4tw"
    "jWp39KPfOdRte6P1T4JU="
)
# Legacy 企业号 vector, notes §1.5.
LEGACY = {
    "token": "QDG6eK",
    "key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "corp": "wx5823bf96d3bd56c7",
    "sig": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "ts": "1409659589",
    "nonce": "263014780",
    "echo": (
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    ),
}


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def test_official_verify_url_vector(crypto: WeComCrypto) -> None:
    assert signature(TOKEN, VERIFY_TS, VERIFY_NONCE, VERIFY_ECHO) == VERIFY_SIG
    assert crypto.verify_and_decrypt(VERIFY_SIG, VERIFY_TS, VERIFY_NONCE, VERIFY_ECHO) == (
        "1288432023552776189"
    )


def test_official_xml_message_vector(crypto: WeComCrypto) -> None:
    plain = crypto.verify_and_decrypt(REQ_SIG, REQ_TS, REQ_NONCE, REQ_ENCRYPT)
    assert plain == REQ_PLAIN
    assert xml_to_dict(plain)["Content"] == "你好"


def test_official_json_vector(crypto: WeComCrypto) -> None:
    plain = crypto.verify_and_decrypt(JSON_SIG, JSON_TS, JSON_NONCE, JSON_ENCRYPT)
    assert '"Content": "hello"' in plain
    assert len(plain.encode()) == 176


def test_legacy_vector() -> None:
    legacy = WeComCrypto(LEGACY["token"], LEGACY["key"], LEGACY["corp"])
    assert (
        legacy.verify_and_decrypt(LEGACY["sig"], LEGACY["ts"], LEGACY["nonce"], LEGACY["echo"])
        == "1616140317555161061"
    )


def test_wrong_signature_is_refused(crypto: WeComCrypto) -> None:
    with pytest.raises(SignatureError):
        crypto.verify_and_decrypt("0" * 40, REQ_TS, REQ_NONCE, REQ_ENCRYPT)


def test_wrong_receive_id_is_refused() -> None:
    with pytest.raises(ReceiveIdError):
        WeComCrypto(TOKEN, AES_KEY, "").decrypt(REQ_ENCRYPT)
    with pytest.raises(ReceiveIdError):
        WeComCrypto(TOKEN, AES_KEY, "wwSOMEONEELSE").decrypt(REQ_ENCRYPT)


@pytest.mark.parametrize("garbage", ["not base64!!", "", "QUJD", "A" * 64])
def test_garbage_ciphertext_is_a_decrypt_error(crypto: WeComCrypto, garbage: str) -> None:
    with pytest.raises((DecryptError, ReceiveIdError)):
        crypto.decrypt(garbage)


def test_round_trip_with_fixed_random_prefix(crypto: WeComCrypto) -> None:
    text = "<xml><Content>群里有人吗 🙂</Content></xml>"
    first = crypto.encrypt(text, random_prefix=b"0123456789abcdef")
    assert first == crypto.encrypt(text, random_prefix=b"0123456789abcdef")
    assert crypto.decrypt(first) == text
    assert crypto.encrypt(text) != first  # random prefix by default


def test_wechatpy_decrypts_ours() -> None:
    ours = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
    theirs = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    plain = "<xml><ToUserName>x</ToUserName><Content>企业微信</Content></xml>"
    encrypted = ours.encrypt(plain)
    sig = ours.sign("1700000000", "nonce1", encrypted)
    envelope = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    assert theirs.decrypt_message(envelope, sig, "1700000000", "nonce1") == plain


def test_we_decrypt_wechatpys() -> None:
    ours = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
    theirs = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    plain = "<xml><Content>来自 wechatpy 的消息</Content></xml>"
    reply = theirs.encrypt_message(plain, "nonce2", "1700000001")
    fields = xml_to_dict(reply)
    assert (
        ours.verify_and_decrypt(
            fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]
        )
        == plain
    )


def test_wechatpy_rejects_our_bad_signature() -> None:
    ours = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
    theirs = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    encrypted = ours.encrypt("<xml/>")
    envelope = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    with pytest.raises(InvalidSignatureException):
        theirs.decrypt_message(envelope, "f" * 40, "1", "n")


def test_bad_key_rejected_at_construction() -> None:
    with pytest.raises(ValueError):
        WeComCrypto(TOKEN, "short", CORP_ID)
