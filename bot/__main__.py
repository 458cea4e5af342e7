"""`python -m bot`: the bot (polling or webhook) and the side server in one process."""

from __future__ import annotations

import asyncio
import sys

from bot.config import ConfigError, load_settings
from bot.logging_setup import setup_logging


def main() -> int:
    try:
        settings = load_settings()
        settings.require_bot_token()
        if settings.telegram.mode == "webhook":
            settings.require_webhook()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging(settings.logging.level)
    # Imported only now: aiogram's types take seconds to load, the checks above do not.
    from bot.app import run

    try:
        asyncio.run(run(settings))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
