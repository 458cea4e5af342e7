"""The bot as a real child process (`python -m bot`) on the fake Bot API: a port, its env."""

from __future__ import annotations

import os
import socket

from tests.conftest import BOT_TOKEN, REPO_ROOT
from tests.fake_bot_api import FakeBotAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_env(fake_api: FakeBotAPI, database_url: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of a `python -m bot` on the repository's config.toml (the production
    defaults), serving on ``port`` and talking to ``fake_api``; ``extra`` adds or replaces
    variables."""
    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO_ROOT),
        "APP_CONFIG": str(REPO_ROOT / "config.toml"),
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM__API_BASE": fake_api.base_url,
        "DATABASE__URL": database_url,
        "SERVER__PORT": str(port),
        "MASTER_KEY": "m" * 43,
        "WEBHOOK_SECRET": "w" * 43,
        "PROVIDER_TOKEN": "p" * 43,
        **extra,
    }
