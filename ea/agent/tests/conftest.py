"""The agent's tests. Unit tests need only the agent; the end-to-end tests (test_e2e_*.py)
start the real side server with the project's own fixtures (tests/conftest.py: production
factories, a migrated SQLite file or PostgreSQL), so they run from the repository."""

from __future__ import annotations

from typing import Any

import pytest

try:
    from aiohttp.test_utils import TestClient

    from bot.container import Container
    from tests.conftest import (
        _isolated_env,
        bot,
        chat,
        clean_database,
        clock,
        container,
        database_url,
        dp,
        fake_api,
        postgres_ready,
        settings,
        settings_overrides,
        sqlite_template,
    )
    from webhook_server import create_app
except ImportError:  # the agent installed on its own, without the server's repository
    collect_ignore_glob = ["test_e2e_*.py"]
else:

    @pytest.fixture
    async def server(container: Container, aiohttp_client: Any) -> TestClient[Any, Any]:
        """The real side server the end-to-end tests' agents talk to."""
        client: TestClient[Any, Any] = await aiohttp_client(create_app(container))
        return client

    __all__ = [
        "_isolated_env",
        "bot",
        "chat",
        "clean_database",
        "clock",
        "container",
        "database_url",
        "dp",
        "fake_api",
        "postgres_ready",
        "server",
        "settings",
        "settings_overrides",
        "sqlite_template",
    ]
