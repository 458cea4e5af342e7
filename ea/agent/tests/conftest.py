"""The agent's tests. Unit tests need only the agent; the end-to-end tests (test_e2e_*.py)
start the real side server with the project's own fixtures (tests/conftest.py: production
factories, a migrated SQLite file or PostgreSQL), so they run from the repository."""

from __future__ import annotations

try:
    from tests.conftest import (
        _isolated_env,
        bot,
        clean_database,
        clock,
        container,
        database_url,
        fake_api,
        postgres_ready,
        settings,
        settings_overrides,
        sqlite_template,
    )
except ImportError:  # the agent installed on its own, without the server's repository
    collect_ignore_glob = ["test_e2e_*.py"]
else:
    __all__ = [
        "_isolated_env",
        "bot",
        "clean_database",
        "clock",
        "container",
        "database_url",
        "fake_api",
        "postgres_ready",
        "settings",
        "settings_overrides",
        "sqlite_template",
    ]
