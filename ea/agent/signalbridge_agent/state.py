"""The device state of EA_PROTOCOL.md 5.1: its JSON body (the account's figures, never its
number; only the positions this agent opened for instructions; the symbols it trades) and
:class:`StateReporter`, which sends it at start, when a trade event made it out of date
and at least every minute, and keeps the ``poll_wait`` the server answers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from signalbridge_agent import __version__
from signalbridge_agent.client import REFUSED, ApiError, DeviceClient, Unreachable
from signalbridge_agent.journal import Journal, Owned, encode
from signalbridge_agent.protocol import PROTOCOL, wire_decimal
from signalbridge_agent.trading import (
    Account,
    Executor,
    Holding,
    HoldingKind,
    SymbolData,
    TradeCall,
    TradeError,
)

logger = logging.getLogger(__name__)

EA_NAME = "signalbridge-agent"
STATE_PATH = "/api/v1/ea/state"
# Symbols described in a state at most (the server takes 100).
STATE_SYMBOLS = 100
# Positions listed in a state at most (the server takes 200): beyond that, the most
# recently opened ones (the server's counts then see 200, never a refused state).
STATE_POSITIONS = 200


class StateReporter:
    def __init__(
        self,
        executor: Executor,
        journal: Journal,
        client: DeviceClient,
        call: TradeCall,
        *,
        symbols: Sequence[str],
        every: float,
        refuse: Callable[[ApiError], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``symbols`` are described beside the signals' ones; ``every``: seconds between
        states at the most; ``refuse`` is told when the server refuses the credentials."""
        self.executor = executor
        self.journal = journal
        self.client = client
        self._call = call
        self.symbols = tuple(symbols)
        self.every = every
        self._refuse = refuse
        self._monotonic = monotonic
        self.due = True  # set by trade events: the server's picture is out of date
        self._sent_at: float | None = None  # monotonic time of the last attempt
        self._server_wait: int | None = None  # the poll_wait of the last answer

    def server_wait(self, default: int) -> int:
        """The server's ``poll_wait`` (``default`` before any); a 0, "work is pending",
        holds for one poll only."""
        wait = self._server_wait
        if wait is None:
            return default
        if wait == 0:
            self._server_wait = None
        return wait

    async def if_due(self) -> None:
        stale = self._sent_at is None or self._monotonic() - self._sent_at >= self.every
        if self.due or stale:
            await self.send()

    async def body(self) -> dict[str, Any]:
        """The state as the executor and the journal have it now."""
        account = await self._call(self.executor.account)
        positions: list[tuple[Owned, Holding]] = []
        for owned in self.journal.holdings():
            if owned.kind is not HoldingKind.POSITION:
                continue
            current = await self._call(self.executor.holding, owned.ticket)
            if current is not None and current.kind is HoldingKind.POSITION:
                positions.append((owned, current))
        positions = positions[-STATE_POSITIONS:]
        symbols: list[SymbolData] = []
        # agent.symbols first, then the signals' symbols, the most recent first.
        names = dict.fromkeys([*self.symbols, *reversed(self.journal.symbols())])
        for name in names:
            if len(symbols) == STATE_SYMBOLS:
                break
            try:
                symbols.append(await self._call(self.executor.symbol_data, name))
            except TradeError:
                logger.debug("symbol %s left out of the state: not on this account", name)
        return state_body(
            platform=self.executor.name,
            build=await self._call(self.executor.build),
            account=account,
            positions=positions,
            symbols=symbols,
        )

    async def send(self) -> bool:
        """``POST /api/v1/ea/state``; True when the server took it. A v1 server (404) is
        remembered: events are not queued for it, and it is asked again each minute."""
        self._sent_at = self._monotonic()
        self.due = False
        try:
            body = await self.body()
        except TradeError as exc:
            logger.warning("device state not sent: %s", exc.message)
            return False
        try:
            answer = await self.client.request("POST", STATE_PATH, encode(body))
        except Unreachable as exc:
            logger.warning("device state not sent (%s); will retry", exc)
            self.due = True
            return False
        except ApiError as exc:
            if exc.code in REFUSED:
                self._refuse(exc)
            elif exc.status in (404, 405):
                if self.journal.server_protocol() != "1":
                    logger.info(
                        "the server does not take device state (%s): trading as a v1 device",
                        exc.code,
                    )
                self.journal.set_server_protocol("1")
            else:
                logger.warning("device state refused: %s %s", exc, exc.fields or "")
                self.due = exc.retryable
            return False
        if self.journal.server_protocol() != "1.1":
            logger.info("the server speaks protocol 1.1: device state taken")
            self.journal.set_server_protocol("1.1")
        wait = answer.body.get("poll_wait") if isinstance(answer.body, dict) else None
        if isinstance(wait, int) and not isinstance(wait, bool) and 0 <= wait <= 25:
            self._server_wait = wait
        return True


def state_body(
    *,
    platform: str,
    build: int | None,
    account: Account,
    positions: Sequence[tuple[Owned, Holding]],
    symbols: Sequence[SymbolData],
) -> dict[str, Any]:
    ea: dict[str, Any] = {"name": EA_NAME, "version": __version__, "platform": platform}
    if build is not None:
        ea["build"] = build
    figures: dict[str, Any] = {
        "currency": account.currency,
        "balance": wire_decimal(account.balance),
        "equity": wire_decimal(account.equity),
        "margin_free": wire_decimal(account.margin_free),
        "leverage": account.leverage,
        "trade_allowed": account.trade_allowed,
    }
    if account.company:
        figures["company"] = account.company
    if account.server:
        figures["server"] = account.server
    return {
        "protocol": PROTOCOL,
        "ea": ea,
        "account": figures,
        "positions": [_position(owned, held) for owned, held in positions],
        "symbols": [_symbol(data) for data in symbols],
    }


def _position(owned: Owned, held: Holding) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ticket": held.ticket,
        "instruction_id": owned.instruction_id,
        "leg": owned.leg or 0,
        "symbol": held.symbol,
        "side": held.side.value,
        "volume": wire_decimal(held.volume),
        "open_price": wire_decimal(held.price),
        "profit": wire_decimal(held.profit),
    }
    if held.stop_loss is not None:
        body["stop_loss"] = wire_decimal(held.stop_loss)
    if held.take_profit is not None:
        body["take_profit"] = wire_decimal(held.take_profit)
    return body


def _symbol(data: SymbolData) -> dict[str, Any]:
    return {
        "name": data.name,
        "tick_size": wire_decimal(data.tick_size),
        "tick_value": wire_decimal(data.tick_value),
        "volume_min": wire_decimal(data.spec.volume_min),
        "volume_step": wire_decimal(data.spec.volume_step),
        "volume_max": wire_decimal(data.spec.volume_max),
    }
