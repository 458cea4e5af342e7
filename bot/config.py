"""Settings: non-secret keys from config.toml, secrets only from the environment or .env.

The TOML file is named by ``APP_CONFIG`` (default ``./config.toml``); any key can be
overridden by an environment variable with ``__`` between levels, e.g.
``TELEGRAM__ADMIN_IDS='[1, 2]'``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
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


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An http:// or https:// URL, kept without a trailing slash."""
HttpUrlOrUnset = Annotated[str, AfterValidator(lambda value: value and _http_url(value))]
"""An :data:`HttpUrl`, or "" for not set."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelegramSettings(Section):
    api_base: HttpUrl = "https://api.telegram.org"
    admin_ids: list[int] = Field(default_factory=list)
    mode: Literal["polling", "webhook"] = "polling"
    drop_pending_updates: bool = False
    polling_timeout: int = Field(default=25, ge=1, le=50)


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
    public_url: HttpUrl = "http://127.0.0.1:8080"


class WebhookSettings(Section):
    url: HttpUrlOrUnset = ""
    path: str = "/tg/webhook"
    delete_on_shutdown: bool = False
    max_connections: int = Field(default=40, ge=1, le=100)
    max_concurrency: int = Field(default=8, ge=1, le=1000)
    max_pending: int = Field(default=1000, ge=1, le=100_000)
    recover_after_s: int = Field(default=30, ge=1, le=3600)
    retention_days: int = Field(default=7, ge=1, le=365)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class InboxSettings(Section):
    """Retries of updates whose processing failed, in both modes (bot/intake/inbox.py)."""

    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff_s: float = Field(default=2.0, ge=0, le=3600)
    retry_backoff_max_s: float = Field(default=60.0, ge=0, le=86_400)


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
    prefix: str = Field(default="signalbridge", pattern=r"^[A-Za-z0-9_.:-]{1,40}$")


class DevicesSettings(Section):
    max_per_user: int = Field(default=5, ge=1, le=100)
    default_lot_size: Decimal = Field(default=Decimal("0.01"), gt=0)
    min_lot_size: Decimal = Field(default=Decimal("0.01"), gt=0)
    max_lot_size: Decimal = Field(default=Decimal("100"), gt=0)
    default_max_signal_age: int = Field(default=300, ge=1)
    min_max_signal_age: int = Field(default=5, ge=1)
    max_max_signal_age: int = Field(default=86_400, ge=1)
    online_window: int = Field(default=60, ge=5, le=3600)

    @model_validator(mode="after")
    def _defaults_within_bounds(self) -> Self:
        if not self.min_lot_size <= self.default_lot_size <= self.max_lot_size:
            raise ValueError("default_lot_size must lie between min_lot_size and max_lot_size")
        if not self.min_max_signal_age <= self.default_max_signal_age <= self.max_max_signal_age:
            raise ValueError(
                "default_max_signal_age must lie between min_max_signal_age and max_max_signal_age"
            )
        return self


class DeviceHealthSettings(Section):
    """Health alerts told to a device's owner (bot/execution/device_health.py)."""

    enabled: bool = True
    # How often the sweep looks at the devices (and stores what the side server counted).
    sweep_seconds: float = Field(default=15.0, gt=0, le=600)
    # A device added this long ago that never made a signed request.
    never_seen_minutes: int = Field(default=10, ge=1, le=7 * 24 * 60)
    # A device with instructions waiting and no signed request for this long.
    offline_seconds: int = Field(default=120, ge=30, le=86_400)
    # This many refused requests of one device within window_minutes raise the alert.
    bad_signature_count: int = Field(default=3, ge=1, le=10_000)
    stale_clock_count: int = Field(default=3, ge=1, le=10_000)
    window_minutes: int = Field(default=10, ge=1, le=24 * 60)
    # A cause that cleared and came back is told again only this long after it was last told.
    repeat_after_minutes: int = Field(default=60, ge=0, le=30 * 24 * 60)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


PLAN_CODE_RE = re.compile(r"^[a-z0-9_]{1,16}$")
# Telegram's bounds for one Stars invoice.
MAX_INVOICE_STARS = 10_000


class PlanSettings(Section):
    """A subscription plan sold for Telegram Stars."""

    code: str
    name: str = Field(min_length=1, max_length=32)
    stars: int = Field(ge=1, le=MAX_INVOICE_STARS)
    days: int = Field(ge=1, le=3660)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not PLAN_CODE_RE.match(value):
            raise ValueError("plan code must be 1-16 characters of a-z, 0-9 and _")
        return value


def _default_plans() -> list[PlanSettings]:
    return [
        PlanSettings(code="month", name="1 month", stars=250, days=30),
        PlanSettings(code="quarter", name="3 months", stars=650, days=90),
        PlanSettings(code="year", name="12 months", stars=2300, days=365),
    ]


class CheckoutSettings(Section):
    plans: list[PlanSettings] = Field(default_factory=_default_plans)
    support_contact: str = ""

    @field_validator("plans")
    @classmethod
    def _unique_codes(cls, value: list[PlanSettings]) -> list[PlanSettings]:
        codes = [plan.code for plan in value]
        if len(set(codes)) != len(codes):
            raise ValueError("plan codes must be unique")
        return value

    def plan(self, code: str) -> PlanSettings | None:
        return next((plan for plan in self.plans if plan.code == code), None)


class TierSettings(Section):
    """An affiliate tier: reached with ``min_active_referrals`` active referrals."""

    name: str = Field(min_length=1, max_length=32)
    min_active_referrals: int = Field(ge=0)
    # Commission per lot of a referred user's fill, in minor units of the accounting currency.
    per_lot_minor: int = Field(ge=0)
    # Share of a referred user's payment, in basis points (1500 = 15 %).
    payment_share_bps: int = Field(ge=0, le=10_000)


def _default_tiers() -> list[TierSettings]:
    rows = (("Bronze", 0, 100, 1000), ("Silver", 5, 150, 1500), ("Gold", 20, 200, 2000))
    return [
        TierSettings(
            name=name, min_active_referrals=minimum, per_lot_minor=per_lot, payment_share_bps=bps
        )
        for name, minimum, per_lot, bps in rows
    ]


PayoutMethod = Literal["usdt_trc20", "bank_transfer"]


def _default_payout_methods() -> list[PayoutMethod]:
    return ["usdt_trc20", "bank_transfer"]


class AffiliatesSettings(Section):
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3,5}$")
    minor_digits: int = Field(default=2, ge=0, le=6)
    minor_units_per_1000_stars: int = Field(default=1300, ge=0)
    hold_days: int = Field(default=14, ge=0, le=365)
    active_window_days: int = Field(default=30, ge=1, le=365)
    tiers: list[TierSettings] = Field(default_factory=_default_tiers)
    payout_minimum_minor: int = Field(default=5000, ge=1)
    payout_methods: list[PayoutMethod] = Field(
        default_factory=_default_payout_methods, min_length=1
    )

    @field_validator("tiers")
    @classmethod
    def _ordered_tiers(cls, value: list[TierSettings]) -> list[TierSettings]:
        if not value or value[0].min_active_referrals != 0:
            raise ValueError("the first tier must have min_active_referrals = 0")
        minimums = [tier.min_active_referrals for tier in value]
        if any(b <= a for a, b in itertools.pairwise(minimums)):
            raise ValueError("tiers must be listed by strictly increasing min_active_referrals")
        if len({tier.name for tier in value}) != len(value):
            raise ValueError("tier names must be unique")
        return value

    @field_validator("payout_methods")
    @classmethod
    def _unique_methods(cls, value: list[PayoutMethod]) -> list[PayoutMethod]:
        if len(set(value)) != len(value):
            raise ValueError("payout methods must be unique")
        return value


class SignalsSettings(Section):
    # Seconds a signal waits for approvals when the provider gives no expires_in.
    default_expiry_seconds: int = Field(default=900, ge=10, le=7 * 86400)
    min_expiry_seconds: int = Field(default=30, ge=1)
    max_expiry_seconds: int = Field(default=7 * 86400, ge=60)
    require_subscription: bool = False
    # At most one edit per chat message per this many seconds (bursts are merged).
    edit_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    expiry_poll_seconds: float = Field(default=1.0, gt=0, le=60)

    @field_validator("max_expiry_seconds")
    @classmethod
    def _bounds(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_expiry_seconds")
        if low is not None and value < low:
            raise ValueError("must not be below signals.min_expiry_seconds")
        return value


class SendingSettings(Section):
    global_per_second: float = Field(default=30, gt=0)
    per_chat_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    max_retries: int = Field(default=5, ge=0, le=50)
    max_retry_after_seconds: int = Field(default=120, ge=1)
    connect_retry_delay_seconds: float = Field(default=1.0, ge=0, le=60)
    broadcast_concurrency: int = Field(default=50, ge=1, le=10_000)
    per_chat_burst: int = Field(default=3, ge=1, le=20)


class OutboxSettings(Section):
    """Messages owed to users, kept in the database until Telegram accepted them."""

    notice_ttl_hours: float = Field(default=24, gt=0, le=24 * 30)
    retry_base_seconds: float = Field(default=1.0, gt=0, le=600)
    retry_max_seconds: float = Field(default=300, gt=0, le=86_400)
    lease_seconds: int = Field(default=60, ge=5, le=3600)
    batch_size: int = Field(default=200, ge=1, le=5000)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    retention_days: int = Field(default=7, ge=1, le=365)


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
    inbox: InboxSettings = InboxSettings()
    redis: RedisSettings = RedisSettings()
    devices: DevicesSettings = DevicesSettings()
    device_health: DeviceHealthSettings = DeviceHealthSettings()
    logging: LoggingSettings = LoggingSettings()
    checkout: CheckoutSettings = CheckoutSettings()
    affiliates: AffiliatesSettings = AffiliatesSettings()
    signals: SignalsSettings = SignalsSettings()
    sending: SendingSettings = SendingSettings()
    outbox: OutboxSettings = OutboxSettings()
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
