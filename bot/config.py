"""Settings: non-secret keys from config.toml, secrets only from the environment or .env.

The TOML file is named by ``APP_CONFIG`` (default ``./config.toml``); any key can be
overridden by an environment variable with ``__`` between levels, e.g.
``TELEGRAM__ADMIN_IDS='[1, 2]'``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources import DotEnvSettingsSource

SECRET_KEYS = ("bot_token", "master_key", "webhook_secret", "provider_token")
BOT_TOKEN_RE = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{30,64}$")
# Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and - as a webhook secret_token.
WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
SUPPORTED_DB_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line naming the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelegramSettings(Section):
    api_base: str = "https://api.telegram.org"
    admin_ids: list[int] = Field(default_factory=list)
    mode: Literal["polling", "webhook"] = "polling"
    drop_pending_updates: bool = False
    polling_timeout: int = Field(default=25, ge=1, le=50)

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///data/signalbridge.sqlite3"
    echo: bool = False
    pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith(SUPPORTED_DB_SCHEMES):
            raise ValueError(
                "unsupported database URL; use sqlite+aiosqlite:///path "
                "or postgresql+asyncpg://user@host/db"
            )
        return value


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class WebhookSettings(Section):
    url: str = ""
    path: str = "/tg/webhook"
    delete_on_shutdown: bool = False
    max_connections: int = Field(default=40, ge=1, le=100)
    max_concurrency: int = Field(default=8, ge=1, le=1000)
    max_pending: int = Field(default=1000, ge=1, le=100_000)
    recover_after_s: int = Field(default=30, ge=1, le=3600)
    retention_days: int = Field(default=7, ge=1, le=365)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an https:// URL")
        return value.rstrip("/")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class RateLimitSettings(Section):
    enabled: bool = True
    capacity: int = Field(default=10, ge=1, le=10_000)
    refill_per_minute: float = Field(default=10, gt=0, le=60_000)


class MetricsSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class RedisSettings(Section):
    url: str = ""


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # Secrets: environment or .env only (checked in load_settings).
    bot_token: SecretStr | None = None
    master_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    provider_token: SecretStr | None = None

    telegram: TelegramSettings = TelegramSettings()
    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    webhook: WebhookSettings = WebhookSettings()
    redis: RedisSettings = RedisSettings()
    logging: LoggingSettings = LoggingSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: explicit arguments (the TOML data), then environment, then .env.
        # The TOML data is passed as init arguments by load_settings, below the env.
        return (env_settings, dotenv_settings, init_settings)

    def require_bot_token(self) -> str:
        if self.bot_token is None or not self.bot_token.get_secret_value().strip():
            raise ConfigError(
                "BOT_TOKEN is not set: create a bot with @BotFather in Telegram "
                "(/newbot), then put BOT_TOKEN=<token> in .env or the environment"
            )
        token = self.bot_token.get_secret_value().strip()
        if not BOT_TOKEN_RE.match(token):
            raise ConfigError(
                "BOT_TOKEN is malformed: expected <digits>:<35 characters> as @BotFather gives it"
            )
        return token

    def require_secret(self, name: str) -> str:
        value: SecretStr | None = getattr(self, name)
        if value is None or not value.get_secret_value():
            raise ConfigError(f"{name.upper()} is not set: run `make run` once to create .env")
        return value.get_secret_value()

    def require_webhook(self) -> tuple[str, str]:
        """The full webhook URL and the secret token; ConfigError naming what is missing."""
        if not self.webhook.url:
            raise ConfigError(
                "config error: webhook.url (WEBHOOK__URL or config.toml): required in webhook "
                "mode: the public https:// base URL Telegram posts updates to"
            )
        secret = self.require_secret("webhook_secret")
        if not WEBHOOK_SECRET_RE.match(secret):
            raise ConfigError(
                "WEBHOOK_SECRET is malformed: Telegram accepts 1-256 characters of "
                "A-Z, a-z, 0-9, _ and -"
            )
        return self.webhook.url + self.webhook.path, secret

    @property
    def is_sqlite(self) -> bool:
        return self.database.url.startswith("sqlite")


def config_path() -> Path:
    return Path(os.environ.get("APP_CONFIG", "config.toml"))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"APP_CONFIG: config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    for key in SECRET_KEYS:
        if key in data:
            raise ConfigError(
                f"{path}: {key} is a secret; set {key.upper()} in the environment or .env instead"
            )
    return data


def _describe(exc: ValidationError, path: Path) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    key = ".".join(loc) or "settings"
    env_name = "__".join(part.upper() for part in loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config.toml)"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"config error: {key} ({env_name} or {path}): {message}{suffix}"


def load_settings(path: Path | None = None) -> Settings:
    """Read config.toml and the environment; raise ConfigError with one line on a problem."""
    path = path or config_path()
    data = _read_toml(path)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except SettingsError as exc:
        raise ConfigError(_describe_unparsable(exc)) from None


def _describe_unparsable(exc: SettingsError) -> str:
    """Name the environment variable whose JSON value could not be parsed."""
    values = dict(DotEnvSettingsSource(Settings).env_vars)
    values.update({key.lower(): value for key, value in os.environ.items()})
    for name, value in values.items():
        if "__" not in name or not value or value.lstrip()[:1] not in "[{":
            continue
        try:
            json.loads(value)
        except ValueError:
            key = name.replace("__", ".")
            return f"config error: {key} ({name.upper()}): not valid JSON: {value[:40]!r}"
    return f"config error: {exc}"
