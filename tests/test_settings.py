"""Configuration per SPEC §3: defaults, sandbox, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.settings import SANDBOX_CORP_ID, ConfigError, Settings, load_settings
from tests.conftest import make_settings


def test_defaults_are_sandbox() -> None:
    settings = make_settings()
    assert settings.sandbox
    assert settings.corp_id == SANDBOX_CORP_ID
    assert settings.database_url == "sqlite+aiosqlite:///./wecom-bot.db"
    assert settings.bot_timezone == "Asia/Shanghai"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.wecom_api_base == "https://qyapi.weixin.qq.com"
    assert (settings.retention_raw_days, settings.retention_sent_days) == (30, 90)
    assert settings.group_cache_size == 5000


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WECOM_CORP_ID", "wwcorp")
    monkeypatch.setenv("WECOM_CORP_SECRET", "s")
    monkeypatch.setenv("WECOM_TOKEN", "t")
    monkeypatch.setenv("WECOM_ENCODING_AES_KEY", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    monkeypatch.setenv("SOP_TEMPLATES_DIR", str(tmp_path))
    monkeypatch.setenv("RETENTION_RAW_DAYS", "7")
    monkeypatch.setenv("RETENTION_SENT_DAYS", "60")
    monkeypatch.setenv("GROUP_CACHE_SIZE", "100")
    settings = load_settings(_env_file=None)
    assert not settings.sandbox
    assert (settings.retention_raw_days, settings.retention_sent_days) == (7, 60)
    assert settings.group_cache_size == 100
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1/test"


def test_no_setting_that_does_nothing() -> None:
    # REDIS_URL was accepted and ignored: an operator setting it would believe replicas
    # coordinate through Redis. They coordinate through the database; SPEC §3 has no Redis.
    assert "redis_url" not in Settings.model_fields


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WECOM_ENCODING_AES_KEY": "tooshort"}, "WECOM_ENCODING_AES_KEY: must be exactly 43"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL: unknown database scheme"),
        ({"BOT_TIMEZONE": "Mars/Olympus"}, "BOT_TIMEZONE: unknown IANA time zone"),
        ({"PORT": "99999"}, "PORT:"),
        ({"RETENTION_RAW_DAYS": "0"}, "RETENTION_RAW_DAYS:"),
        ({"RETENTION_SENT_DAYS": "soon"}, "RETENTION_SENT_DAYS:"),
        ({"GROUP_CACHE_SIZE": "0"}, "GROUP_CACHE_SIZE:"),
        ({"SOP_TEMPLATES_DIR": "/nonexistent/dir"}, "SOP_TEMPLATES_DIR:"),
        ({"WECOM_CORP_ID": "wwcorp"}, "WECOM_CORP_SECRET"),
    ],
)
def test_misconfiguration_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
