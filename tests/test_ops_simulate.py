"""`simulate join --count N` makes N distinct member names (issue 7)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from bot.config.settings import SANDBOX_API_PATH
from bot.sandbox.simulate import SAMPLE_NAMES, made_up_names
from tests.conftest import SHIPPED_TEMPLATES
from tests.procs import cli_env, run_cli, server, wait_until


def test_made_up_names_are_distinct_for_any_count() -> None:
    assert made_up_names(3) == ["小美", "大卫", "阿珍"]
    names = made_up_names(30, start=5)
    assert len(set(names)) == 30
    assert set(names[: len(SAMPLE_NAMES)]) == set(SAMPLE_NAMES)
    assert names[len(SAMPLE_NAMES)] == f"{SAMPLE_NAMES[5]}2"
    assert made_up_names(0) == []


def test_simulate_join_count_gives_each_newcomer_their_own_name(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    env = cli_env(tmp_path)
    with server(env, tmp_path) as srv:
        joined = run_cli(["simulate", "join", "--count", "12", "--chat", "wrMany"], env, tmp_path)
        assert joined.returncode == 0, joined.stderr
        group = httpx.get(f"{srv.url}{SANDBOX_API_PATH}/_emulator/groups/wrMany").json()
    members = group["member_list"]
    names = [m["name"] for m in members]
    assert len(members) == 12 and len(set(names)) == 12
    assert not any(name.startswith("wm") for name in names)
    for member in members:  # the CLI says who is who
        assert f"{member['name']} ({member['userid']})" in joined.stdout


def test_simulate_message_is_archived_and_pulled_by_the_sandbox_puller(tmp_path: Path) -> None:
    """SPEC §10: `simulate message` produces an archive record that the same puller reads;
    the msgaudit_notify it sends brings it in long before the pull interval."""
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    env = cli_env(tmp_path, ARCHIVE_PULL_SECONDS="3600")
    with server(env, tmp_path) as srv:
        spoke = run_cli(
            [
                "simulate",
                "message",
                "--chat",
                "wrTalk",
                "--member",
                "wmAlice",
                "--text",
                "有没有资料",
            ],
            env,
            tmp_path,
        )
        assert spoke.returncode == 0, spoke.stderr
        assert "archived as seq" in spoke.stdout and "msgaudit_notify: success" in spoke.stdout
        archive = httpx.get(f"{srv.url}{SANDBOX_API_PATH}/_emulator/archive").json()
        [entry] = archive
        record = entry["record"]
        assert (record["roomid"], record["from"], record["msgtype"]) == (
            "wrTalk",
            "wmAlice",
            "text",
        )
        assert record["text"] == {"content": "有没有资料"}

        def pulled() -> bool:
            metrics = httpx.get(f"{srv.url}/metrics").text
            return 'wecom_archive_records_total{result="accepted"} 1.0' in metrics

        wait_until(pulled, timeout=10)
        mentioned = run_cli(
            ["simulate", "message", "--member", "wmAlice", "--text", "资料", "--at-bot"],
            env,
            tmp_path,
        )
        assert mentioned.returncode == 0, mentioned.stderr
        assert len(httpx.get(f"{srv.url}{SANDBOX_API_PATH}/_emulator/archive").json()) == 1


def test_an_ad_in_the_sandbox_gets_a_reminder_through_the_archive_puller(tmp_path: Path) -> None:
    """Issue 8: `simulate message` with an ad text, through the same archive puller,
    ends as the shipped default playbook's private reminder in `sandbox sent`."""
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "sop_templates")
    env = cli_env(tmp_path, ARCHIVE_PULL_SECONDS="3600")
    with server(env, tmp_path):
        spoke = run_cli(
            ["simulate", "message", "--member", "wmAd", "--text", "低价代理，加我微信了解"],
            env,
            tmp_path,
        )
        assert spoke.returncode == 0, spoke.stderr
        assert "note:" not in spoke.stdout  # a customer: the rules apply

        def reminded() -> bool:
            sent = run_cli(["sandbox", "sent"], env, tmp_path)
            return "不发广告" in sent.stdout and "申诉" in sent.stdout

        wait_until(reminded, timeout=20)
        staff = run_cli(
            ["simulate", "message", "--member", "zhangsan", "--text", "低价代理"], env, tmp_path
        )
        assert "note: zhangsan looks like one of the corp's own members" in staff.stdout
