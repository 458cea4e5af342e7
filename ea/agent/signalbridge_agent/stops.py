"""The stop-loss manager: breakeven and trailing (EA_PROTOCOL.md 5.2 ``management``)
applied by the agent between polls on its own positions, and their ``sl_moved`` events.

Each move is journaled before the executor call (the level intended) and after it (the
level set); after a crash the broker's stop loss tells whether an intended move happened.
The last level set is reported at most once per position per 10 s (the latest one), under
a report id numbered in the journal, so a resend is a duplicate and nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from signalbridge_agent.clock import ServerClock
from signalbridge_agent.journal import Journal, Owned, Report
from signalbridge_agent.management import (
    SL_REPORT_INTERVAL_S,
    breakeven_level,
    trailing_level,
)
from signalbridge_agent.protocol import (
    CloseReason,
    Open,
    TrailingStart,
    Unreadable,
    parse_instruction,
    sl_moved_event,
    wire_decimal,
)
from signalbridge_agent.trading import (
    Executor,
    Holding,
    HoldingKind,
    Quote,
    SymbolData,
    TradeCall,
    TradeError,
)

logger = logging.getLogger(__name__)


class StopManager:
    def __init__(
        self,
        executor: Executor,
        journal: Journal,
        call: TradeCall,
        clock: ServerClock,
        *,
        queued: Callable[[], None],
        moved: Callable[[], None],
    ) -> None:
        """``call`` runs executor calls on the trade thread; ``queued`` is told when events
        were queued, ``moved`` when a stop loss moved (the device state is out of date)."""
        self.executor = executor
        self.journal = journal
        self._call = call
        self.clock = clock
        self._queued = queued
        self._moved = moved
        self.managing = False  # some open position has stop-loss management
        self._opens: dict[str, Open | None] = {}  # the journal's opens, parsed once

    def _open_of(self, instruction_id: str) -> Open | None:
        if instruction_id not in self._opens:
            entry = self.journal.entry(instruction_id)
            parsed = None
            if entry is not None:
                with contextlib.suppress(Unreadable):
                    read = parse_instruction(entry.raw)
                    parsed = read if isinstance(read, Open) else None
            self._opens[instruction_id] = parsed
        return self._opens[instruction_id]

    async def manage(self) -> None:
        """Breakeven and trailing on the positions of opens that ask for them, then the
        stop-loss moves due to be reported."""
        managing = False
        data: dict[str, SymbolData] = {}
        quotes: dict[str, Quote] = {}
        for owned in self.journal.holdings():
            opened = self._open_of(owned.instruction_id)
            if owned.kind is not HoldingKind.POSITION or opened is None:
                continue
            if opened.management is None:
                continue
            managing = True
            try:
                if owned.symbol not in data:
                    data[owned.symbol] = await self._call(self.executor.symbol_data, owned.symbol)
                    quotes[owned.symbol] = await self._call(self.executor.quote, owned.symbol)
                current = await self._call(self.executor.holding, owned.ticket)
            except TradeError as exc:
                logger.warning("ticket %d not managed now: %s", owned.ticket, exc.message)
                continue
            if current is None or current.kind is not HoldingKind.POSITION:
                continue
            await self._manage_one(opened, owned, current, data[owned.symbol], quotes[owned.symbol])
        self.managing = managing
        self._report_moves()

    async def _manage_one(
        self, opened: Open, owned: Owned, current: Holding, data: SymbolData, quote: Quote
    ) -> None:
        assert opened.management is not None
        rules = opened.management
        state = self.journal.managed(owned.ticket)
        if state.sl_intent is not None:
            # A move was under way when the agent stopped: the broker knows if it happened.
            moved = current.stop_loss == state.sl_intent
            state = replace(
                state, sl_intent=None, sl_moved=state.sl_intent if moved else state.sl_moved
            )
            self.journal.manage(state)
        level: Decimal | None = None
        breakeven_now = False
        be = rules.breakeven
        if (
            be is not None
            and not state.breakeven_done
            and owned.leg != be.after_leg
            and self._leg_hit_target(opened.id, be.after_leg)
        ):
            breakeven_now = True
            level = breakeven_level(be, owned.side, current.price, data.point, current.stop_loss)
        trail = rules.trailing
        if trail is not None and (
            trail.start is TrailingStart.AT_OPEN or state.breakeven_done or breakeven_now
        ):
            trailed = trailing_level(
                trail,
                owned.side,
                quote,
                data.point,
                level if level is not None else current.stop_loss,
            )
            if trailed is not None:
                level = trailed
        if level is None:
            if breakeven_now:  # already at or beyond breakeven
                self.journal.manage(replace(state, breakeven_done=True))
            return
        self.journal.manage(replace(state, sl_intent=level))
        try:
            await self._call(self.executor.modify, current, level, current.take_profit)
        except TradeError as exc:
            logger.warning(
                "ticket %d: stop loss not moved to %s (%d: %s); trying again later",
                owned.ticket,
                wire_decimal(level),
                exc.code,
                exc.message,
            )
            self.journal.manage(replace(state, sl_intent=None))
            return
        logger.info(
            "ticket %d of signal %s: stop loss %s → %s (%s)",
            owned.ticket,
            owned.signal_id,
            _level(current.stop_loss),
            wire_decimal(level),
            "breakeven" if breakeven_now else "trailing",
        )
        self.journal.manage(
            replace(
                state,
                sl_intent=None,
                sl_moved=level,
                breakeven_done=state.breakeven_done or breakeven_now,
            )
        )
        self._moved()

    def _leg_hit_target(self, instruction_id: str, leg: int) -> bool:
        return any(
            o.leg == leg and o.exit_reason == CloseReason.TP.value
            for o in self.journal.of_instruction(instruction_id)
        )

    def _report_moves(self) -> None:
        """An ``sl_moved`` event for each position whose last level is not reported yet,
        at most one per position per 10 s: the level it has then."""
        now = self.clock.now()
        for owned in self.journal.holdings():
            state = self.journal.managed(owned.ticket)
            if state.sl_moved is None or state.sl_moved == state.sl_reported:
                continue
            if (
                state.sl_reported_at is not None
                and (now - state.sl_reported_at).total_seconds() < SL_REPORT_INTERVAL_S
            ):
                continue
            number = state.sl_reports + 1
            body = sl_moved_event(
                owned.instruction_id,
                leg=owned.leg,
                ticket=owned.ticket,
                number=number,
                stop_loss=state.sl_moved,
                executed_at=now,
            )
            reports = [Report("event", body)] if self.journal.events_wanted() else []
            self.journal.manage(
                replace(state, sl_reported=state.sl_moved, sl_reported_at=now, sl_reports=number),
                reports,
            )
            self._queued()


def _level(value: Decimal | None) -> str:
    return "none" if value is None else wire_decimal(value)
