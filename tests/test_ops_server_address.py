"""`simulate`, `tick` and `sandbox sent` find the running `serve`; a port in use is one
line (issue 7, for the people who run it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.datafiles import server_record_path, write_server_record
from bot.server_address import find_server, url_for
from tests.conftest import SHIPPED_TEMPLATES, make_settings
from tests.procs import cli_env, free_port, run_cli, server


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    return tmp_path


def test_second_shell_finds_the_server_without_flags(workdir: Path) -> None:
    # PORT in the client's environment points elsewhere: only the record can find it.
    client_env = cli_env(workdir, PORT=free_port())
    record = workdir / "wecom-bot.db.server.json"
    with server(cli_env(workdir), workdir) as srv:
        assert json.loads(record.read_text())["url"] == srv.url
        listed = run_cli(["sandbox", "sent", "--json"], client_env, workdir)
        assert listed.returncode == 0, listed.stderr
        joined = run_cli(["simulate", "join", "--count", "1"], client_env, workdir)
        assert joined.returncode == 0 and "success" in joined.stdout, joined.stderr
        ticked = run_cli(["tick"], client_env, workdir)
        assert ticked.returncode == 0, ticked.stderr
        # --url and WECOM_BOT_URL name it explicitly, from anywhere.
        elsewhere = workdir / "elsewhere"
        elsewhere.mkdir()
        shutil.copytree(SHIPPED_TEMPLATES, elsewhere / "sop_templates")
        by_flag = run_cli(["sandbox", "sent", "--url", srv.url], cli_env(elsewhere), elsewhere)
        assert by_flag.returncode == 0, by_flag.stderr
        by_env = run_cli(["sandbox", "sent"], cli_env(elsewhere, WECOM_BOT_URL=srv.url), elsewhere)
        assert by_env.returncode == 0, by_env.stderr
    assert not record.exists()  # a clean shutdown (SIGTERM) removes it
    lost = run_cli(["sandbox", "sent"], client_env, workdir)
    assert lost.returncode != 0 and "Traceback" not in lost.stderr
    lines = [line for line in lost.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "--url" in lines[0] and "WECOM_BOT_URL" in lines[0] and str(record.name) in lines[0]
    lost_join = run_cli(["simulate", "join"], client_env, workdir)
    assert lost_join.returncode != 0 and "--url" in lost_join.stderr
    assert "Traceback" not in lost_join.stderr


def test_a_port_in_use_is_one_clear_line(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["serve", "--port", str(port)], cli_env(workdir), workdir, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "already in use" in lines[0] and f"127.0.0.1:{port}" in lines[0] and "PORT" in lines[0]
    assert not (workdir / "wecom-bot.db.server.json").exists()


def test_a_record_left_by_a_killed_server_is_ignored(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", port=8123, host="0.0.0.0"
    )
    path = server_record_path(settings)
    assert path == tmp_path / "bot.db.server.json"
    assert find_server(settings, None).url == "http://127.0.0.1:8123"  # nothing recorded
    write_server_record(path, "http://127.0.0.1:9001")  # this process: alive
    assert find_server(settings, None).url == "http://127.0.0.1:9001"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    path.write_text(json.dumps({"url": "http://127.0.0.1:9002", "pid": int(gone.stdout)}))
    found = find_server(settings, None)
    assert found.url == "http://127.0.0.1:8123" and found.source == "HOST/PORT"
    assert find_server(settings, "http://h:1/").url == "http://h:1"


def test_url_for_a_wildcard_bind_is_loopback() -> None:
    assert url_for("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert url_for("::", 80) == "http://[::1]:80"
    assert url_for("127.0.0.2", 81) == "http://127.0.0.2:81"
