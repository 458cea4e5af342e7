"""Configuration: the device's credentials from the environment or a TOML file, and the
agent's and executors' settings from the file. Every problem names its key; a secret is
never repeated in a message."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from signalbridge_agent.agent import AgentSettings
from signalbridge_agent.client import Credentials
from signalbridge_agent.paper import DEFAULT_SYMBOL, PaperAccount, PaperSymbol, Quote
from signalbridge_agent.trading import SymbolSpec

ENV_SERVER_URL = "SIGNALBRIDGE_SERVER_URL"
ENV_DEVICE_ID = "SIGNALBRIDGE_DEVICE_ID"
ENV_SECRET = "SIGNALBRIDGE_SECRET"  # noqa: S105 (the variable's name)
ENV_SECRET_FILE = "SIGNALBRIDGE_SECRET_FILE"  # noqa: S105
ENV_MT5_PASSWORD = "SIGNALBRIDGE_MT5_PASSWORD"  # noqa: S105

DEVICE_ID_RE = re.compile(r"^dev_[A-Za-z0-9]{16,32}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


class ConfigError(Exception):
    """A missing or malformed setting; the message names it."""


@dataclass(frozen=True, slots=True)
class PaperConfig:
    quotes: dict[str, Quote] = field(default_factory=dict)
    symbols: dict[str, PaperSymbol] = field(default_factory=dict)
    default_symbol: PaperSymbol | None = DEFAULT_SYMBOL
    account: PaperAccount = field(default_factory=PaperAccount)


@dataclass(frozen=True, slots=True)
class Mt5Config:
    magic: int = 0
    deviation: int = 10
    terminal_path: str | None = None
    login: int | None = None
    password: str | None = field(default=None, repr=False)
    server: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    credentials: Credentials
    journal: Path
    settings: AgentSettings
    log_level: str
    paper: PaperConfig
    mt5: Mt5Config


def load(
    path: Path | None, environ: Mapping[str, str] | None = None, *, journal: Path | None = None
) -> Config:
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from None
    device = _table(data, "device")
    agent = _table(data, "agent")
    credentials = _credentials(device, env)
    journal_path = journal or Path(
        str(agent.get("journal") or f"signalbridge-agent-{credentials.device_id}.sqlite3")
    )
    symbols = agent.get("symbols", [])
    if not isinstance(symbols, list) or not all(isinstance(x, str) and x for x in symbols):
        raise ConfigError("agent.symbols must be a list of symbol names")
    settings = AgentSettings(
        poll_wait=_int(agent, "agent.poll_wait", 20, low=0, high=25),
        max_age=timedelta(seconds=_int(agent, "agent.max_age_seconds", 900, low=1)),
        manage_wait=_int(agent, "agent.manage_wait", 1, low=0, high=25),
        symbols=tuple(symbols),
        protocol=_protocol(agent),
    )
    level = str(agent.get("log_level", "info")).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("agent.log_level must be debug, info, warning or error")
    return Config(
        credentials=credentials,
        journal=journal_path,
        settings=settings,
        log_level=level,
        paper=_paper(_table(data, "paper")),
        mt5=_mt5(_table(data, "mt5"), env),
    )


def _protocol(agent: Mapping[str, Any]) -> str:
    value = agent.get("protocol", "1.1")
    if value not in ("1", "1.1"):
        raise ConfigError('agent.protocol must be "1.1" (the default) or "1"')
    return str(value)


def _table(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _credentials(device: Mapping[str, Any], env: Mapping[str, str]) -> Credentials:
    url = env.get(ENV_SERVER_URL) or str(device.get("server_url") or "")
    device_id = env.get(ENV_DEVICE_ID) or str(device.get("device_id") or "")
    secret = env.get(ENV_SECRET) or str(device.get("secret") or "")
    secret_file = env.get(ENV_SECRET_FILE) or device.get("secret_file")
    if not secret and secret_file:
        try:
            secret = Path(str(secret_file)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the secret file {secret_file}: {exc.strerror}"
            ) from None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
        raise ConfigError(
            f"the server URL ({ENV_SERVER_URL} or device.server_url) must be like "
            "https://bot.example.com: the address the bot's credentials message shows"
        )
    if not DEVICE_ID_RE.match(device_id):
        raise ConfigError(
            f"the Device ID ({ENV_DEVICE_ID} or device.device_id) must be dev_ followed by "
            "16-32 letters and digits, as the bot showed it"
        )
    if not SECRET_RE.match(secret):
        raise ConfigError(
            f"the Secret ({ENV_SECRET}, {ENV_SECRET_FILE}, device.secret or device.secret_file) "
            "must be the 32-64 characters of [A-Za-z0-9_-] the bot showed"
        )
    return Credentials(url.rstrip("/"), device_id, secret)


def _int(
    table: Mapping[str, Any], key: str, default: int, *, low: int, high: int | None = None
) -> int:
    value = table.get(key.rsplit(".", 1)[-1], default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"{low}-{high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{key} must be a whole number, {bounds}")
    return value


def _decimal(value: Any, key: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{key} must be a decimal number") from None
    if not number.is_finite() or number <= 0:
        raise ConfigError(f"{key} must be a positive decimal number")
    return number


def _symbol(table: Mapping[str, Any], key: str) -> PaperSymbol:
    if not isinstance(table, dict):
        raise ConfigError(f"{key} must be a table")
    base = DEFAULT_SYMBOL
    spec = SymbolSpec(
        _decimal(table.get("volume_min", base.spec.volume_min), f"{key}.volume_min"),
        _decimal(table.get("volume_step", base.spec.volume_step), f"{key}.volume_step"),
        _decimal(table.get("volume_max", base.spec.volume_max), f"{key}.volume_max"),
    )
    if spec.volume_min > spec.volume_max:
        raise ConfigError(f"{key}.volume_min is above {key}.volume_max")
    size = _decimal(table.get("contract_size", base.contract_size), f"{key}.contract_size")
    tick_size = _decimal(table.get("tick_size", base.tick_size), f"{key}.tick_size")
    tick_value = table.get("tick_value")
    point = table.get("point")
    return PaperSymbol(
        spec,
        size,
        tick_size,
        None if tick_value is None else _decimal(tick_value, f"{key}.tick_value"),
        None if point is None else _decimal(point, f"{key}.point"),
    )


def _paper(table: Mapping[str, Any]) -> PaperConfig:
    quotes: dict[str, Quote] = {}
    for symbol, quote in dict(table.get("quotes") or {}).items():
        key = f"paper.quotes.{symbol}"
        if not isinstance(quote, dict):
            raise ConfigError(f"{key} must be a table with bid and ask")
        bid = _decimal(quote.get("bid"), f"{key}.bid")
        ask = _decimal(quote.get("ask"), f"{key}.ask")
        if ask < bid:
            raise ConfigError(f"{key}.ask is below its bid")
        quotes[symbol] = Quote(bid, ask)
    symbols = {
        name: _symbol(spec, f"paper.symbols.{name}")
        for name, spec in dict(table.get("symbols") or {}).items()
    }
    only_listed = table.get("only_listed_symbols", False)
    if not isinstance(only_listed, bool):
        raise ConfigError("paper.only_listed_symbols must be true or false")
    currency = table.get("currency", "USD")
    if not isinstance(currency, str) or not 1 <= len(currency) <= 8:
        raise ConfigError("paper.currency must be a currency code such as USD")
    account = PaperAccount(
        balance=_decimal(table.get("balance", "10000.00"), "paper.balance"),
        currency=currency,
        leverage=_int(table, "paper.leverage", 100, low=1),
    )
    return PaperConfig(quotes, symbols, None if only_listed else DEFAULT_SYMBOL, account)


def _mt5(table: Mapping[str, Any], env: Mapping[str, str]) -> Mt5Config:
    login = table.get("login")
    if login is not None and (isinstance(login, bool) or not isinstance(login, int)):
        raise ConfigError("mt5.login must be the account number")
    path = table.get("terminal_path")
    server = table.get("server")
    return Mt5Config(
        magic=_int(table, "mt5.magic", 0, low=0),
        deviation=_int(table, "mt5.deviation", 10, low=0),
        terminal_path=str(path) if path else None,
        login=login,
        password=env.get(ENV_MT5_PASSWORD) or None,
        server=str(server) if server else None,
    )
