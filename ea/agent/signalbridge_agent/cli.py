"""``signalbridge-agent --executor paper|mt5``: run the device agent until SIGINT/SIGTERM.

Exit status: 0 stopped cleanly; 2 a setting is missing or wrong; 3 the signing self-test
failed or the server refuses the credentials; 4 the executor could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from signalbridge_agent import __version__
from signalbridge_agent.agent import Agent, CredentialsRefused
from signalbridge_agent.config import Config, ConfigError, load
from signalbridge_agent.journal import Journal, JournalMismatch
from signalbridge_agent.paper import PaperExecutor, QuoteTable
from signalbridge_agent.signing import SelfTestFailed, self_test
from signalbridge_agent.trading import Executor, TradeError

logger = logging.getLogger("signalbridge_agent")

EXIT_CONFIG = 2
EXIT_REFUSED = 3
EXIT_EXECUTOR = 4


def build_executor(kind: str, config: Config) -> Executor:
    if kind == "paper":
        return PaperExecutor(
            config.journal,
            QuoteTable(dict(config.paper.quotes)),
            symbols=config.paper.symbols,
            default_symbol=config.paper.default_symbol,
            account=config.paper.account,
        )
    from signalbridge_agent.mt5 import Mt5Executor

    if not config.mt5.magic:
        raise ConfigError("mt5.magic is required: the number that marks this agent's trades")
    return Mt5Executor(
        magic=config.mt5.magic,
        deviation=config.mt5.deviation,
        terminal_path=config.mt5.terminal_path,
        login=config.mt5.login,
        password=config.mt5.password,
        server=config.mt5.server,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signalbridge-agent",
        description="Take signalbridge instructions and execute them on paper or in MetaTrader 5.",
    )
    parser.add_argument("--executor", choices=("paper", "mt5"), required=True)
    parser.add_argument("--config", type=Path, help="a TOML file (see ea/agent/README.md)")
    parser.add_argument("--journal", type=Path, help="the journal file (default: per device)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _logging(level: str) -> None:
    handler = logging.StreamHandler()
    formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


async def _serve(agent: Agent) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, agent.stop)
        except NotImplementedError:  # Windows: no signal handlers on the event loop
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(agent.stop))
    try:
        await agent.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, ValueError):
                loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _logging("INFO")
    try:
        self_test()
    except SelfTestFailed as exc:
        logger.error("refusing to start: %s", exc)
        return EXIT_REFUSED
    try:
        config = load(args.config, journal=args.journal)
        _logging(config.log_level)
        executor = build_executor(args.executor, config)
        journal = Journal(config.journal, config.credentials.device_id)
    except (ConfigError, JournalMismatch, ValueError) as exc:
        logger.error("refusing to start: %s", exc)
        return EXIT_CONFIG
    agent = Agent(config.credentials, executor, journal, settings=config.settings)
    try:
        asyncio.run(_serve(agent))
    except CredentialsRefused:
        return EXIT_REFUSED
    except TradeError as exc:
        logger.error("the %s executor failed: %s", executor.name, exc.message)
        return EXIT_EXECUTOR
    finally:
        journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
