"""The configuration contract: TOML, environment overrides, secrets, one-line errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.envfile import ensure_env_file
from tests.conftest import REPO_ROOT

VALID_TOKEN = "123456789:" + "A" * 35


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_config_toml_states_the_defaults(tmp_path: Path) -> None:
    # An operator reads config.toml for what a key does when left out: it must not drift.
    shipped = load_settings(REPO_ROOT / "config.toml")
    assert shipped.model_dump() == load_settings(write_config(tmp_path, "")).model_dump()


def test_every_key_in_config_toml_is_commented() -> None:
    lines = (REPO_ROOT / "config.toml").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert lines[index - 1].lstrip().startswith("#"), f"key without comment: {line!r}"


def test_environment_overrides_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM__ADMIN_IDS", "[1, 22]")
    monkeypatch.setenv("TELEGRAM__API_BASE", "http://127.0.0.1:9999/")
    monkeypatch.setenv("SERVER__PORT", "9090")
    monkeypatch.setenv("BOT_TOKEN", VALID_TOKEN)
    settings = load_settings(REPO_ROOT / "config.toml")
    assert settings.telegram.admin_ids == [1, 22]
    assert settings.telegram.api_base == "http://127.0.0.1:9999"
    assert settings.server.port == 9090
    assert settings.require_bot_token() == VALID_TOKEN


def test_app_config_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_config(tmp_path, "[server]\nport = 8181\n")
    monkeypatch.setenv("APP_CONFIG", str(path))
    assert load_settings().server.port == 8181


def test_secrets_come_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"BOT_TOKEN={VALID_TOKEN}\nPROVIDER_TOKEN=abc\n")
    settings = load_settings(write_config(tmp_path, ""))
    assert settings.require_bot_token() == VALID_TOKEN
    assert settings.require_secret("provider_token") == "abc"
    assert "abc" not in repr(settings)


@pytest.mark.parametrize(
    ("body", "env", "expected"),
    [
        ("[telegram\nmode=1", {}, "TOML syntax error"),
        ('[telegram]\nmode = "carrier-pigeon"\n', {}, "telegram.mode (TELEGRAM__MODE"),
        ("", {"TELEGRAM__ADMIN_IDS": '["abc"]'}, "telegram.admin_ids (TELEGRAM__ADMIN_IDS"),
        ('[database]\nurl = "mysql://x"\n', {}, "database.url (DATABASE__URL"),
        ("", {"TELEGRAM__API_BASE": "api.telegram.org"}, "telegram.api_base (TELEGRAM__API"),
        ('[webhook]\nurl = "ftp://bot.example"\n', {}, "webhook.url (WEBHOOK__URL"),
        ("[server]\nprot = 1\n", {}, "server.prot"),
        ('bot_token = "1:2"\n', {}, "bot_token is a secret"),
    ],
)
def test_bad_settings_give_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: str, env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, body))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_missing_and_malformed_bot_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(write_config(tmp_path, ""))
    with pytest.raises(ConfigError, match="@BotFather"):
        settings.require_bot_token()
    monkeypatch.setenv("BOT_TOKEN", "not-a-token")
    with pytest.raises(ConfigError, match="BOT_TOKEN is malformed"):
        load_settings(write_config(tmp_path, "")).require_bot_token()


def run_bot(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in {"PATH", "HOME"}}
    clean.update({"APP_CONFIG": str(REPO_ROOT / "config.toml"), **env})
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "BOT_TOKEN is not set: create a bot with @BotFather"),
        ({"BOT_TOKEN": "12345"}, "BOT_TOKEN is malformed"),
        ({"BOT_TOKEN": VALID_TOKEN, "TELEGRAM__MODE": "smoke"}, "telegram.mode"),
        ({"BOT_TOKEN": VALID_TOKEN, "TELEGRAM__ADMIN_IDS": "[x]"}, "telegram.admin_ids"),
        ({"BOT_TOKEN": VALID_TOKEN, "DATABASE__URL": "mysql://db"}, "database.url"),
    ],
)
def test_process_exits_2_with_one_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = run_bot(tmp_path, env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_env_file_created_once_with_mode_600(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    added = ensure_env_file(path)
    assert added == ["MASTER_KEY", "WEBHOOK_SECRET", "PROVIDER_TOKEN"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert "# BOT_TOKEN=" in first
    assert ensure_env_file(path) == []
    assert path.read_text() == first
    values = dict(
        line.split("=", 1) for line in first.splitlines() if line and not line.startswith("#")
    )
    assert len(set(values.values())) == 3
    assert all(len(value) >= 40 for value in values.values())


def test_env_file_command_says_so_in_one_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bot.envfile"]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0
    assert first.stdout.count("\n") == 1 and "created .env (mode 600)" in first.stdout
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 0 and second.stdout == ""
