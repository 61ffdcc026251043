"""The sandbox admin token survives restarts; `sandbox sent` prints whole texts (issue 7)."""

from __future__ import annotations

import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.app import create_app
from bot.config.settings import Settings
from bot.datafiles import admin_token_path, sandbox_admin_token
from bot.sandbox.sent_view import sent_lines
from tests.conftest import SHIPPED_TEMPLATES, make_settings
from tests.procs import cli_env, run_cli, server, wait_until

INSTANT = datetime(2026, 11, 30, 6, 5, tzinfo=UTC)


def _sandbox_settings(tmp_path: Path, **extra: object) -> Settings:
    return make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        sop_templates_dir=SHIPPED_TEMPLATES,
        **extra,
    )


def test_token_is_created_once_private_and_read_back(tmp_path: Path) -> None:
    settings = _sandbox_settings(tmp_path)
    token, path = sandbox_admin_token(settings)
    assert path == tmp_path / "bot.db.admin-token" == admin_token_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 24
    assert sandbox_admin_token(settings) == (token, path)
    assert not list(tmp_path.glob("*.tmp"))
    path.write_text("")  # emptied by hand: a new one, still private
    renewed, _ = sandbox_admin_token(settings)
    assert renewed and renewed != token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sandbox_admin_token(settings)[0] == renewed


def test_sandbox_apps_share_the_kept_token(tmp_path: Path) -> None:
    settings = _sandbox_settings(tmp_path)
    first = create_app(settings, start_background=False).state.admin_token
    second = create_app(settings, start_background=False).state.admin_token
    assert first and first == second
    configured = create_app(_sandbox_settings(tmp_path, admin_token="mine"))
    assert configured.state.admin_token == "mine"


def test_serve_prints_the_same_token_on_its_own_line_after_a_restart(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    env = cli_env(tmp_path)
    tokens = []
    for _ in range(2):
        with server(env, tmp_path) as srv:
            got = httpx.get(f"{srv.url}/admin/groups", headers={"Authorization": "Bearer x"})
            assert got.status_code == 401
            kept = (tmp_path / "wecom-bot.db.admin-token").read_text().strip()
            auth = {"Authorization": f"Bearer {kept}"}
            assert httpx.get(f"{srv.url}/admin/groups", headers=auth).status_code == 200
            tokens.append(kept)
        output = srv.log.read_text()
        srv.log.unlink()
        lines = output.splitlines()
        assert kept in lines  # alone on its line
        # ... and in no log line.
        assert [line for line in lines if kept in line] == [kept]
    assert tokens[0] == tokens[1]


def test_sent_view_prints_whole_texts(tmp_path: Path) -> None:
    long_text = "第一行\n" + "很长的欢迎词。" * 400 + "\n最后一行"
    records = [
        {
            "seq": 7,
            "at": INSTANT.timestamp(),
            "api": "webhook/send",
            "target": "key-1",
            "body": {"msgtype": "text", "text": {"content": long_text}},
        },
        {
            "seq": 8,
            "at": INSTANT.timestamp() + 1,
            "api": "x",
            "target": "t",
            "body": {"news": {"a": 1}},
        },
    ]
    lines = sent_lines(records, ZoneInfo("Asia/Shanghai"))
    assert lines[0] == "#7  2026-11-30T14:05:00+08:00  webhook/send → key-1"
    assert "\n".join(lines[1:4]) == long_text
    assert lines[5] == "#8  2026-11-30T14:05:01+08:00  x → t"
    assert lines[6] == '{"news": {"a": 1}}'


@pytest.mark.parametrize("as_json", [False, True])
def test_sandbox_sent_cli_prints_the_full_text(tmp_path: Path, as_json: bool) -> None:
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    env = cli_env(tmp_path)
    long_name = "名" * 300
    with server(env, tmp_path) as srv:
        joined = run_cli(
            ["simulate", "join", "--member", "wmLong", "--name", long_name], env, tmp_path
        )
        assert joined.returncode == 0, joined.stderr

        def shown() -> bool:
            args = ["sandbox", "sent", "--url", srv.url] + (["--json"] if as_json else [])
            out = run_cli(args, env, tmp_path)
            return out.returncode == 0 and long_name in out.stdout

        wait_until(shown, timeout=15, interval=0.5)
