"""One settings object for the whole service (SPEC §3).

Built once by the CLI and passed in; nothing imports a global instance.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.sources.archive_pull.keys import KeySpecError, PrivateKeys, load_key_spec

# Sandbox credentials are public on purpose: sandbox mode only ever talks to the
# built-in emulator, and `wecom-bot simulate` must be able to sign callbacks
# without any configuration. They are Tencent's published sample values.
SANDBOX_CORP_ID = "ww1436e0e65a779aee"
SANDBOX_CORP_SECRET = "sandbox-secret"
SANDBOX_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
SANDBOX_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
SANDBOX_AGENT_ID = 1000002
SANDBOX_API_PATH = "/sandbox/wecom"
# The address the sandbox's WeCom client uses for the in-process emulator (no network).
SANDBOX_API_BASE = "http://sandbox.invalid"
# The emulator's 会话内容存档 secret (its GetChatData stand-in checks it).
SANDBOX_ARCHIVE_SECRET = "sandbox-archive-secret"
# The emulator's 智能机器人 long-connection credentials (its aibot_subscribe checks them).
SANDBOX_AIBOT_ID = "sandbox-aibot"
SANDBOX_AIBOT_SECRET = "sandbox-aibot-secret"
DEFAULT_AIBOT_WS_URL = "wss://openws.work.weixin.qq.com"

KNOWN_DB_SCHEMES = (
    "sqlite+aiosqlite",
    "postgresql+asyncpg",
)


class ConfigError(Exception):
    """A misconfiguration, phrased as one line that names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    wecom_corp_id: str | None = None
    wecom_corp_secret: str | None = None
    wecom_agent_id: int | None = None
    wecom_token: str | None = None
    wecom_encoding_aes_key: str | None = None
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    database_url: str = "sqlite+aiosqlite:///./wecom-bot.db"
    sop_templates_dir: Path = Path("./sop_templates")
    admin_token: str | None = None
    bot_timezone: str = "Asia/Shanghai"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # SPEC §3: decrypted payloads of processed inbox rows are blanked after this many
    # days (privacy); sent/cancelled/failed outbox rows are deleted after this many.
    retention_raw_days: int = Field(default=30, ge=1)
    retention_sent_days: int = Field(default=90, ge=1)
    # The message log (no content) feeds monthly leaderboards and weekly health:
    # a year and a month of it by default.
    retention_log_days: int = Field(default=400, ge=31)
    # SPEC §10: with the secret, `serve` pulls 会话内容存档 itself (sandbox: the emulator's).
    wecom_archive_secret: str | None = None
    wecom_archive_private_keys: str | None = None  # VER=path[,VER=path], checked at start
    wecom_archive_proxy: str = ""  # the SDK's proxy, for a host on the trusted-IP list
    archive_pull_seconds: float = Field(default=60.0, gt=0)
    # SPEC §10: with both, `serve` holds the 智能机器人's long connection (sandbox: the
    # emulator's, with its own credentials).
    wecom_aibot_id: str | None = None
    wecom_aibot_secret: str | None = None
    wecom_aibot_ws_url: str = DEFAULT_AIBOT_WS_URL
    # A ping this often; one not acknowledged within the same time reconnects. The
    # replica's lease on the connection lasts three of these (renewed at each ping).
    aibot_heartbeat_seconds: float = Field(default=30.0, gt=0, le=600)

    # Operational knobs with sensible defaults; not part of the public contract.
    scheduler_tick_seconds: float = Field(default=1.0, gt=0)
    outbox_max_attempts: int = Field(default=12, ge=1)
    outbox_lease_seconds: float = Field(default=30.0, gt=0)  # > client timeout
    inbox_lease_seconds: float = Field(default=45.0, gt=0)  # > groupchat/get with retries
    inbox_max_attempts: int = Field(default=8, ge=1)
    # A background loop without a good round for this long makes /readyz answer 503.
    loop_stale_seconds: float = Field(default=60.0, gt=0)
    # Groups whose groupchat/get answer is kept in memory (least recently used evicted).
    group_cache_size: int = Field(default=5000, ge=1)
    # Where archive records come from with WECOM_ARCHIVE_SECRET set: Tencent's SDK, or
    # (tests, staging) the emulator's GetChatData stand-in at WECOM_API_BASE.
    archive_source: Literal["sdk", "emulator"] = "sdk"
    # One replica pulls at a time: its lease, renewed every page, taken over once expired.
    archive_lease_seconds: float = Field(default=60.0, gt=0)

    @field_validator("wecom_encoding_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) != 43:
            raise ValueError(f"must be exactly 43 characters, got {len(value)}")
        try:
            key = base64.b64decode(value + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("is not valid base64") from exc
        if len(key) != 32:
            raise ValueError("does not decode to a 32-byte AES key")
        return value

    @field_validator("wecom_archive_private_keys")
    @classmethod
    def _archive_keys(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            load_key_spec(value)  # fail at start, not at the first record
        except KeySpecError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _db_scheme(cls, value: str) -> str:
        # Accept the short forms people paste and map them to the async drivers.
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value[len("sqlite:///") :]
        elif value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in KNOWN_DB_SCHEMES:
            raise ValueError(
                f"unknown database scheme {scheme or value!r}; use sqlite+aiosqlite:/// or "
                "postgresql+asyncpg://"
            )
        return value

    @field_validator("bot_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("wecom_api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("wecom_aibot_ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with wss:// (or ws:// for a local fake)")
        return value

    @field_validator("wecom_aibot_id", "wecom_aibot_secret")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @model_validator(mode="after")
    def _complete_credentials(self) -> Settings:
        if bool(self.wecom_aibot_id) != bool(self.wecom_aibot_secret):
            given, absent = (
                ("WECOM_AIBOT_ID", "WECOM_AIBOT_SECRET")
                if self.wecom_aibot_id
                else ("WECOM_AIBOT_SECRET", "WECOM_AIBOT_ID")
            )
            raise ValueError(
                f"{given} is set, so {absent} must be set too (the 智能机器人's long "
                "connection needs both; unset both to run without it)"
            )
        if self.sandbox:
            return self
        if (
            self.wecom_archive_secret
            and self.archive_source == "sdk"
            and not self.wecom_archive_private_keys
        ):
            raise ValueError(
                "WECOM_ARCHIVE_SECRET is set, so WECOM_ARCHIVE_PRIVATE_KEYS must be set too "
                "(VER=path[,VER=path]: the RSA private key of each publickey_ver)"
            )
        missing = [
            name
            for name, value in (
                ("WECOM_CORP_SECRET", self.wecom_corp_secret),
                ("WECOM_TOKEN", self.wecom_token),
                ("WECOM_ENCODING_AES_KEY", self.wecom_encoding_aes_key),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"WECOM_CORP_ID is set, so {', '.join(missing)} must be set too "
                "(unset WECOM_CORP_ID for sandbox mode)"
            )
        return self

    @property
    def sandbox(self) -> bool:
        return not self.wecom_corp_id

    @property
    def archive_pulling(self) -> bool:
        """SPEC §10: pull the archive with its secret; in sandbox, the emulator's always."""
        return self.sandbox or bool(self.wecom_archive_secret)

    @property
    def archive_secret(self) -> str:
        return self.wecom_archive_secret or SANDBOX_ARCHIVE_SECRET

    @property
    def aibot_linking(self) -> bool:
        """SPEC §10: hold the 智能机器人's long connection with its credentials; in
        sandbox, the emulator's always."""
        return self.sandbox or bool(self.wecom_aibot_id and self.wecom_aibot_secret)

    @property
    def aibot_id(self) -> str:
        return self.wecom_aibot_id or SANDBOX_AIBOT_ID

    @property
    def aibot_secret(self) -> str:
        return self.wecom_aibot_secret or SANDBOX_AIBOT_SECRET

    def archive_keys(self) -> PrivateKeys:
        """The RSA private keys by publickey_ver (read from their files on each call)."""
        spec = self.wecom_archive_private_keys
        return load_key_spec(spec) if spec else {}

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.bot_timezone)

    @property
    def corp_id(self) -> str:
        return self.wecom_corp_id or SANDBOX_CORP_ID

    @property
    def corp_secret(self) -> str:
        return self.wecom_corp_secret or SANDBOX_CORP_SECRET

    @property
    def callback_token(self) -> str:
        return self.wecom_token or SANDBOX_TOKEN

    @property
    def aes_key(self) -> str:
        return self.wecom_encoding_aes_key or SANDBOX_AES_KEY

    @property
    def agent_id(self) -> int:
        return self.wecom_agent_id if self.wecom_agent_id is not None else SANDBOX_AGENT_ID

    def api_base_for(self, own_base_url: str) -> str:
        """Where the outbound client goes: the emulator mounted on our own app in sandbox."""
        if self.sandbox:
            return own_base_url.rstrip("/") + SANDBOX_API_PATH
        return self.wecom_api_base


_ENV_NAMES = {name: name.upper() for name in Settings.model_fields}


def describe_validation_error(exc: ValidationError) -> str:
    """First error as one human line naming the environment variable."""
    err = exc.errors()[0]
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else ""
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if field in _ENV_NAMES:
        return f"{_ENV_NAMES[field]}: {message}"
    return message


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and .env); raise ConfigError with one clear line."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    templates = settings.sop_templates_dir
    if not templates.is_dir():
        raise ConfigError(f"SOP_TEMPLATES_DIR: {templates} is not a readable directory")
    return settings


def generate_admin_token() -> str:
    return secrets.token_urlsafe(24)
