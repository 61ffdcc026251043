"""The RSA step of 会话内容存档 records: our job, not the SDK's (docs/decisions/archive-sdk.md).

Each record's `encrypt_random_key` is RSA-2048 PKCS#1 v1.5 ciphertext (base64) made
with the admin console's public key number `publickey_ver`; the plaintext is the key
DecryptData takes. Keys come from WECOM_ARCHIVE_PRIVATE_KEYS as `VER=path[,VER=path]`.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PrivateKeys = dict[int, rsa.RSAPrivateKey]

# What a DecryptData key may look like. Tencent's native code aborts the whole process
# on some malformed keys ("=", "a=", …); a wrong private key gives pseudo-random bytes
# (OpenSSL's implicit rejection), so the plaintext is checked before it goes anywhere.
_SANE_KEY = re.compile(r"[\x21-\x3c\x3e-\x7e]{16,512}")  # printable ASCII, no "="
MIN_CHAT_MSG = 16  # DecryptData aborts on an encrypt_chat_msg under 13 characters


class KeySpecError(ValueError):
    """WECOM_ARCHIVE_PRIVATE_KEYS is malformed, or a key file cannot be used."""


class RecordKeyError(Exception):
    """One record's key cannot be recovered (unknown version, wrong key, bad data)."""


def parse_key_spec(spec: str) -> dict[int, Path]:
    """`3=/keys/v3.pem,4=/keys/v4.pem` → {3: Path, 4: Path}."""
    paths: dict[int, Path] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        version, sep, path = part.partition("=")
        if not sep or not path.strip():
            raise KeySpecError(f"{part!r} is not VER=path (e.g. 1=/etc/wecom/archive_v1.pem)")
        try:
            number = int(version.strip())
        except ValueError:
            raise KeySpecError(f"{version.strip()!r} is not a publickey_ver number") from None
        if number < 1:
            raise KeySpecError(f"publickey_ver must be 1 or more, got {number}")
        if number in paths:
            raise KeySpecError(f"publickey_ver {number} is given twice")
        paths[number] = Path(path.strip()).expanduser()
    if not paths:
        raise KeySpecError("no key given; expected VER=path[,VER=path]")
    return paths


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """A PEM RSA private key, PKCS#1 ('BEGIN RSA PRIVATE KEY') or PKCS#8, unencrypted."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise KeySpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        reason = str(exc).split("\n", 1)[0] or type(exc).__name__
        raise KeySpecError(f"{path} is not an unencrypted PEM private key ({reason})") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for odd files
        raise KeySpecError(f"{path} is not a usable private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeySpecError(f"{path} holds a {type(key).__name__.lstrip('_')}, not an RSA key")
    return key


def load_key_spec(spec: str) -> PrivateKeys:
    return {version: load_private_key(path) for version, path in parse_key_spec(spec).items()}


def decrypt_random_key(keys: PrivateKeys, publickey_ver: int, encrypt_random_key: str) -> str:
    """The DecryptData key of one record, checked sane; RecordKeyError says why not."""
    key = keys.get(publickey_ver)
    if key is None:
        known = ", ".join(str(v) for v in sorted(keys)) or "none"
        raise RecordKeyError(
            f"no private key for publickey_ver={publickey_ver} (configured: {known}); "
            "add it to WECOM_ARCHIVE_PRIVATE_KEYS"
        )
    try:
        ciphertext = base64.b64decode(encrypt_random_key, validate=True)
    except (binascii.Error, ValueError):
        raise RecordKeyError("encrypt_random_key is not base64") from None
    try:
        plain = key.decrypt(ciphertext, padding.PKCS1v15())
    except ValueError:
        raise RecordKeyError(
            f"RSA decryption failed (wrong private key for publickey_ver={publickey_ver}?)"
        ) from None
    text = plain.decode("ascii", errors="replace")
    if not _SANE_KEY.fullmatch(text):
        # Implicit rejection: a wrong key "decrypts" to pseudo-random bytes.
        raise RecordKeyError(
            f"the RSA output is not a message key (wrong private key for "
            f"publickey_ver={publickey_ver}?)"
        )
    return text


def check_decrypt_inputs(encrypt_key: str, encrypt_chat_msg: str) -> None:
    """Refuse what would crash Tencent's DecryptData, before it gets there."""
    if not _SANE_KEY.fullmatch(encrypt_key):
        raise RecordKeyError("the message key is not 16-512 printable ASCII characters without '='")
    if len(encrypt_chat_msg) < MIN_CHAT_MSG:
        raise RecordKeyError(f"encrypt_chat_msg is shorter than {MIN_CHAT_MSG} characters")
    try:
        base64.b64decode(encrypt_chat_msg, validate=True)
    except (binascii.Error, ValueError):
        raise RecordKeyError("encrypt_chat_msg is not base64") from None
