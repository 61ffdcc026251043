"""No access token or secret in any log line (issue 7): the filter, and the real access
logs of the emulator and of `serve`."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.config.settings import SANDBOX_CORP_ID, SANDBOX_CORP_SECRET
from bot.logs import LOG_FORMAT, LocalTimeFormatter, RedactSecrets, redact
from tests.conftest import SHIPPED_TEMPLATES
from tests.procs import cli_env, free_port, server, wait_until


@pytest.mark.parametrize(
    ("line", "secret", "kept"),
    [
        (
            '"GET /cgi-bin/gettoken?corpid=ww1&corpsecret=S3cr3t HTTP/1.1" 200',
            "S3cr3t",
            "corpid=ww1",
        ),
        ("POST /cgi-bin/message/send?access_token=TOK-1 HTTP/1.1", "TOK-1", "message/send"),
        ("POST /cgi-bin/webhook/send?key=robot-key&debug=1", "robot-key", "debug=1"),
        ("GET /wecom/callback?msg_signature=sig&echostr=ECHO%2B1", "ECHO%2B1", "msg_signature=sig"),
        ("generated ADMIN_TOKEN=adm-9", "adm-9", "ADMIN_TOKEN="),
        ('answer {"access_token": "tok-2", "expires_in": 7200}', "tok-2", '"expires_in": 7200'),
        ("params {'corpsecret': 'sec-3', 'corpid': 'ww'}", "sec-3", "'corpid': 'ww'"),
        ("Authorization: Bearer abc.DEF-123", "abc.DEF-123", "Authorization: Bearer"),
    ],
)
def test_redact_replaces_the_value_with_stars(line: str, secret: str, kept: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned and "***" in cleaned and kept in cleaned


def test_innocent_lines_are_untouched() -> None:
    for line in ("token_type=x monkey=1", "tokens: 3, keys: 2", "send to wrGroup 200"):
        assert redact(line) == line


def _handler() -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LocalTimeFormatter(LOG_FORMAT, ZoneInfo("Asia/Shanghai")))
    handler.addFilter(RedactSecrets())
    return handler, stream


def test_filter_covers_arguments_exceptions_and_propagated_records() -> None:
    handler, stream = _handler()
    root = logging.getLogger("redaction-test")
    root.addHandler(handler)
    root.propagate = False
    child = logging.getLogger("redaction-test.uvicorn.access")  # propagates to the handler
    try:
        child.warning(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5",
            "GET",
            "/cgi-bin/gettoken?corpid=ww&corpsecret=arg-secret",
            "1.1",
            200,
        )
        try:
            raise RuntimeError("POST https://qyapi/cgi-bin/appchat/send?access_token=exc-token")
        except RuntimeError:
            root.exception("send failed for key=%s", "exc-key")
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    for secret in ("arg-secret", "exc-token", "exc-key"):
        assert secret not in text
    assert "corpsecret=***" in text and "access_token=***" in text and "Traceback" in text


def test_standalone_emulator_access_log_shows_no_credentials(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "emulator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.sandbox.emulator", "--port", str(port)],
            env=cli_env(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/docs", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=15)
        got = httpx.get(
            f"{base}/cgi-bin/gettoken",
            params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_CORP_SECRET},
        )
        token = got.json()["access_token"]
        httpx.post(
            f"{base}/cgi-bin/message/send",
            params={"access_token": token},
            json={"touser": "u1", "msgtype": "text", "agentid": 1, "text": {"content": "hi"}},
        )
        httpx.post(
            f"{base}/cgi-bin/webhook/send",
            params={"key": "robot-key-77"},
            json={"msgtype": "text", "text": {"content": "hi"}},
        )
        wait_until(lambda: log.read_text().count("/cgi-bin/") >= 3, timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lines = [line for line in log.read_text().splitlines() if "/cgi-bin/" in line]
    text = "\n".join(lines)
    assert token not in text and "robot-key-77" not in text
    assert f"corpsecret={SANDBOX_CORP_SECRET}" not in text
    assert "access_token=***" in text and "key=***" in text and "corpsecret=***" in text


def test_serve_access_log_shows_no_echostr_or_admin_token(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    with server(cli_env(tmp_path), tmp_path) as srv:
        httpx.get(
            f"{srv.url}/wecom/callback",
            params={"msg_signature": "x", "timestamp": "1", "nonce": "n", "echostr": "ECHO-55"},
        )
        httpx.get(f"{srv.url}/admin/groups", params={"token": "query-token-66"})
        wait_until(lambda: "echostr=***" in srv.log.read_text(), timeout=10)
    text = srv.log.read_text()
    admin_token = (tmp_path / "wecom-bot.db.admin-token").read_text().strip()
    assert "ECHO-55" not in text and "query-token-66" not in text
    log_lines = [line for line in text.splitlines() if line != admin_token]
    assert not any(admin_token in line for line in log_lines)
