"""The RSA step of archive records and WECOM_ARCHIVE_PRIVATE_KEYS, with real generated keys."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from bot.config.settings import ConfigError, load_settings
from bot.sources.archive_pull.keys import (
    KeySpecError,
    RecordKeyError,
    check_decrypt_inputs,
    decrypt_random_key,
    load_key_spec,
    parse_key_spec,
)
from tests.conftest import SHIPPED_TEMPLATES
from tests.helpers import AES_KEY, TOKEN


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: str) -> bytes:
    private_format = {
        "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
        "pkcs8": serialization.PrivateFormat.PKCS8,
    }[fmt]
    return key.private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    )


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _encrypt(key: rsa.RSAPrivateKey, message_key: str) -> str:
    """What Tencent puts in encrypt_random_key: RSA PKCS#1 v1.5 with our public key."""
    return base64.b64encode(
        key.public_key().encrypt(message_key.encode(), padding.PKCS1v15())
    ).decode()


@pytest.mark.parametrize("fmt", ["pkcs1", "pkcs8"])
def test_a_record_key_round_trips_through_pkcs1_and_pkcs8_files(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, fmt: str
) -> None:
    path = _write(tmp_path, f"v3-{fmt}.pem", _pem(rsa_key, fmt))
    header = path.read_text().splitlines()[0]
    assert header == (
        "-----BEGIN RSA PRIVATE KEY-----" if fmt == "pkcs1" else "-----BEGIN PRIVATE KEY-----"
    )
    keys = load_key_spec(f"3={path}")
    message_key = secrets.token_urlsafe(24).replace("-", "a").replace("_", "b")
    assert decrypt_random_key(keys, 3, _encrypt(rsa_key, message_key)) == message_key


def test_an_unknown_publickey_ver_names_the_versions_configured(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    keys = load_key_spec(f"1={_write(tmp_path, 'v1.pem', _pem(rsa_key, 'pkcs8'))}")
    with pytest.raises(RecordKeyError, match=r"publickey_ver=4 \(configured: 1\)"):
        decrypt_random_key(keys, 4, _encrypt(rsa_key, "k" * 32))


def test_the_wrong_private_key_is_a_clear_per_record_error(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    """OpenSSL's implicit rejection "decrypts" with a wrong key to pseudo-random bytes;
    they must never reach DecryptData (its native code aborts on some)."""
    keys = load_key_spec(f"2={_write(tmp_path, 'v2.pem', _pem(other_key, 'pkcs1'))}")
    for _ in range(5):
        ciphertext = _encrypt(rsa_key, secrets.token_hex(16))
        with pytest.raises(RecordKeyError, match="wrong private key for publickey_ver=2"):
            decrypt_random_key(keys, 2, ciphertext)


def test_a_garbled_encrypt_random_key_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    keys = load_key_spec(f"1={_write(tmp_path, 'v1.pem', _pem(rsa_key, 'pkcs1'))}")
    with pytest.raises(RecordKeyError, match="not base64"):
        decrypt_random_key(keys, 1, "not*base64!")
    with pytest.raises(RecordKeyError, match=r"RSA decryption failed|not a message key"):
        decrypt_random_key(keys, 1, base64.b64encode(b"short").decode())


@pytest.mark.parametrize(
    ("key", "msg", "why"),
    [
        ("=", "bm90LWEtbXNnLWxvbmdlcg==", "printable ASCII"),
        ("a=", "bm90LWEtbXNnLWxvbmdlcg==", "printable ASCII"),
        ("====", "bm90LWEtbXNnLWxvbmdlcg==", "printable ASCII"),
        ("k" * 32, "", "shorter than 16"),
        ("k" * 32, "x", "shorter than 16"),
        ("k" * 32, "abcdefghijkl", "shorter than 16"),
        ("k" * 32, "this is not base64 at all!!", "not base64"),
        ("k" * 15, "bm90LWEtbXNnLWxvbmdlcg==", "printable ASCII"),
        ("ключ" * 8, "bm90LWEtbXNnLWxvbmdlcg==", "printable ASCII"),
    ],
)
def test_inputs_that_crash_decryptdata_are_refused(key: str, msg: str, why: str) -> None:
    with pytest.raises(RecordKeyError, match=why):
        check_decrypt_inputs(key, msg)


def test_sane_inputs_pass() -> None:
    check_decrypt_inputs("k" * 32, "bm90LWEtbXNnLWxvbmdlcg==")


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "no key given"),
        ("/keys/v1.pem", "is not VER=path"),
        ("1=", "is not VER=path"),
        ("x=/keys/v1.pem", "'x' is not a publickey_ver number"),
        ("0=/keys/v1.pem", "must be 1 or more"),
        ("1=/a.pem,1=/b.pem", "given twice"),
    ],
)
def test_key_spec_shapes(spec: str, why: str) -> None:
    with pytest.raises(KeySpecError, match=why):
        parse_key_spec(spec)


def test_key_spec_with_several_versions() -> None:
    assert parse_key_spec(" 1=/k/v1.pem , 4=/k/v4.pem,") == {
        1: Path("/k/v1.pem"),
        4: Path("/k/v4.pem"),
    }


def _configured(tmp_path: Path, **env: str) -> None:
    load_settings(
        _env_file=None,
        wecom_corp_id="wwTest",
        wecom_corp_secret="s",
        wecom_token=TOKEN,
        wecom_encoding_aes_key=AES_KEY,
        sop_templates_dir=SHIPPED_TEMPLATES,
        wecom_archive_secret="archive-secret",
        **env,
    )


def test_settings_load_good_keys(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    one = _write(tmp_path, "v1.pem", _pem(rsa_key, "pkcs1"))
    two = _write(tmp_path, "v2.pem", _pem(rsa_key, "pkcs8"))
    settings = load_settings(
        _env_file=None,
        sop_templates_dir=SHIPPED_TEMPLATES,
        wecom_archive_secret="archive-secret",
        wecom_archive_private_keys=f"1={one},2={two}",
    )
    assert sorted(settings.archive_keys()) == [1, 2]
    assert "BEGIN" not in repr(settings)  # the keys themselves are never in the settings


@pytest.mark.parametrize(
    "problem",
    ["missing file", "not pem", "encrypted", "not rsa", "bad spec", "no keys"],
)
def test_bad_archive_keys_stop_serve_with_one_line_naming_the_variable(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, problem: str
) -> None:
    values: dict[str, str] = {}
    if problem == "missing file":
        values["wecom_archive_private_keys"] = f"1={tmp_path / 'nope.pem'}"
        expected = "cannot read"
    elif problem == "not pem":
        values["wecom_archive_private_keys"] = f"1={_write(tmp_path, 'x.pem', b'hello')}"
        expected = "is not an unencrypted PEM private key"
    elif problem == "encrypted":
        locked = rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        values["wecom_archive_private_keys"] = f"1={_write(tmp_path, 'l.pem', locked)}"
        expected = "is not an unencrypted PEM private key"
    elif problem == "not rsa":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        values["wecom_archive_private_keys"] = (
            f"1={_write(tmp_path, 'ec.pem', _pem(ec_key, 'pkcs8'))}"
        )
        expected = "not an RSA key"
    elif problem == "bad spec":
        values["wecom_archive_private_keys"] = "one=/x.pem"
        expected = "is not a publickey_ver number"
    else:
        expected = "WECOM_ARCHIVE_SECRET is set, so WECOM_ARCHIVE_PRIVATE_KEYS must be set too"
    with pytest.raises(ConfigError) as caught:
        _configured(tmp_path, **values)
    line = str(caught.value)
    assert "\n" not in line and expected in line
    assert "WECOM_ARCHIVE_PRIVATE_KEYS" in line


def test_the_emulator_source_needs_no_keys(tmp_path: Path) -> None:
    _configured(tmp_path, archive_source="emulator")
