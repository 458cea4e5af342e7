"""The device agent: poll, journal, execute, report; recover after a crash.

One instruction at a time, in the order the server lists them:

1. journaled with its raw JSON and its ``ack`` queued, in one transaction (an instruction
   already in the journal is never taken again, however often it is listed);
2. checked (expired, older than ``max_age``, symbol, volume) without touching the broker;
3. ``start`` journaled, the executor called, the outcome and its ``fill`` / ``error``
   report journaled;
4. reports go out in the order queued, each with an id derived from its instruction and
   step, so a resend after a lost answer or a restart is a duplicate (200), never a
   second record.

After a restart, instructions journaled but not finished are finished first: an
execution that was under way is reconciled with the executor's own positions, orders
and history (by the tag in their comment) and never repeated.

Protocol v1.1 (EA_PROTOCOL.md section 5): an ``open`` is sized, guarded and split into
legs from its 5.2 fields (sizing.py); between polls the agent watches its positions (a
close it did not order becomes a ``closed`` event) and its :class:`StopManager` manages
their stop losses (stops.py); ``close_all`` closes what it placed; its
:class:`StateReporter` sends the device state (state.py). An ``open`` without the 5.2
fields trades exactly as in v1.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp

from signalbridge_agent.client import REFUSED, ApiError, Credentials, DeviceClient, Unreachable
from signalbridge_agent.clock import ServerClock, WallClock
from signalbridge_agent.journal import (
    Entry,
    HoldingState,
    Journal,
    Owned,
    Report,
    ReportState,
    Stage,
)
from signalbridge_agent.protocol import (
    AnyInstruction,
    Cancel,
    Close,
    CloseAll,
    CloseReason,
    Code,
    Modify,
    Open,
    OrderType,
    SignalInstruction,
    SizingMode,
    Step,
    Unreadable,
    ack_body,
    closed_event,
    error_body,
    fill_body,
    instruction_id_of,
    parse_instruction,
    wire_decimal,
)
from signalbridge_agent.signing import self_test
from signalbridge_agent.sizing import check_guards, order_price, risk_lots, split_legs
from signalbridge_agent.state import StateReporter
from signalbridge_agent.stops import StopManager
from signalbridge_agent.trading import (
    Closed,
    Executor,
    Exit,
    Holding,
    HoldingKind,
    OpenOrder,
    Quote,
    SymbolData,
    SymbolSpec,
    TradeError,
    round_volume,
    tag_of,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How far back history is searched for an order sent before a crash.
_HISTORY_MARGIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    poll_wait: int = 20  # seconds the server may hold a poll (0-25); the server's own wait if less
    max_age: timedelta = timedelta(minutes=15)  # older instructions: error 90001, no trade
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    stop_within: float = 4.0  # seconds left for the last reports once told to stop
    manage_wait: int = 1  # the poll's wait while stop losses are managed (0-25)
    state_every: float = 60.0  # seconds between device states at the most
    symbols: tuple[str, ...] = ()  # described in the state beside those of the signals
    protocol: str = "1.1"  # "1": act as a v1 device (no state, no events; v1 instructions)

    def __post_init__(self) -> None:
        if not 0 <= self.poll_wait <= 25:
            raise ValueError("poll_wait must be 0-25 seconds")
        if not 0 <= self.manage_wait <= 25:
            raise ValueError("manage_wait must be 0-25 seconds")
        if self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        if not 0 < self.state_every <= 60:
            raise ValueError("state_every must be above 0 and at most 60 seconds")
        if self.protocol not in ("1", "1.1"):
            raise ValueError('protocol must be "1" or "1.1"')


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One position of an open: leg ``leg`` (None: a v1 open's one position)."""

    leg: int | None
    tag: str
    volume: Decimal
    take_profit: Decimal | None


class CredentialsRefused(Exception):
    """The server answered invalid_signature or missing_credentials: stop and say so."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


class _Stopped(Exception):
    pass


class Backoff:
    """Exponential waits with jitter between retries, reset after a success."""

    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high
        self.failures = 0

    def next(self) -> float:
        delay = min(self.high, self.low * 2.0**self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.0)  # noqa: S311 (jitter, not a secret)

    def reset(self) -> None:
        self.failures = 0


class Agent:
    def __init__(
        self,
        credentials: Credentials,
        executor: Executor,
        journal: Journal,
        *,
        settings: AgentSettings | None = None,
        wall_clock: WallClock = time.time,
        session: aiohttp.ClientSession | None = None,
        after_execute: Callable[[str], None] | None = None,
    ) -> None:
        """``after_execute(instruction_id)`` runs after each executor call returns and
        before its outcome is journaled: where a crash is worst (tests crash there)."""
        self.credentials = credentials
        self.executor = executor
        self.journal = journal
        self.settings = settings or AgentSettings()
        self.clock = ServerClock(wall_clock)
        self.client = DeviceClient(credentials, self.clock, session=session)
        self._after_execute = after_execute
        self._trade = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trade")
        self._stopping = asyncio.Event()
        self._send_wake = asyncio.Event()
        self._all_sent = asyncio.Event()  # set while no report waits to be sent
        self._refused: ApiError | None = None
        self._cycle = asyncio.Event()
        self.cycles = 0
        self.stops = StopManager(
            executor,
            journal,
            self._call,
            self.clock,
            queued=self._reports_queued,
            moved=self._state_changed,
        )
        self.states = StateReporter(
            executor,
            journal,
            self.client,
            self._call,
            symbols=self.settings.symbols,
            every=self.settings.state_every,
            refuse=self._refuse,
        )

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Stop polling, send what is queued (for up to ``stop_within``), return from run."""
        if not self._stopping.is_set():
            logger.info("stopping")
        self._stopping.set()

    async def run(self) -> None:
        """Until :meth:`stop`; raises CredentialsRefused when the server refuses us."""
        self_test()
        clean = False
        try:
            await self._call(self.executor.start)
            logger.info(
                "agent started: device %s, server %s, executor %s, journal %s",
                self.credentials.device_id,
                self.credentials.server_url,
                self.executor.name,
                self.journal.path,
            )
            if self.settings.protocol == "1":
                self.journal.set_server_protocol("1")  # no state, no events
            else:
                await self.send_state()
            await self.recover()
            sender = asyncio.create_task(self._send_forever())
            try:
                await self._poll_forever()
                clean = True
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            if self._refused is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.flush(), self.settings.stop_within)
        finally:
            with contextlib.suppress(Exception):
                await self._call(self.executor.stop)
            self._trade.shutdown(wait=False)
            await self.client.close()
            if clean:
                left = len(self.journal.queued())
                logger.info("stopped; %d reports wait for the next start", left)
        if self._refused is not None:
            raise CredentialsRefused(self._refused)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """An executor call, on the one trade thread (MetaTrader5 wants a single thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._trade, functools.partial(fn, *args))

    async def _until_stopped(self, work: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise _Stopped
        return task.result()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(_Stopped):
            await self._until_stopped(asyncio.sleep(seconds))

    def _reports_queued(self) -> None:
        self._all_sent.clear()
        self._send_wake.set()
        self._state_changed()

    def _state_changed(self) -> None:
        """Something happened: the server's picture of the device is out of date."""
        self.states.due = True

    async def _until_sent(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for the queued reports to be accepted; the whole time
        when nothing is queued."""
        if self._all_sent.is_set():
            await self._pause(seconds)
            return
        with contextlib.suppress(_Stopped, TimeoutError):
            await self._until_stopped(asyncio.wait_for(self._all_sent.wait(), seconds))

    async def next_cycle(self) -> int:
        """Wait until the poll under way (or the next one) has been handled."""
        await self._cycle.wait()
        return self.cycles

    def _refuse(self, error: ApiError) -> None:
        logger.error(
            "the server refuses this device's credentials (%s): %s Check the Device ID and "
            "the Secret (was the key rotated or the device revoked?)",
            error.code,
            error.message,
        )
        self._refused = error
        self.stop()

    # ------------------------------------------------------------------ polling

    async def _poll_forever(self) -> None:
        backoff = Backoff(self.settings.backoff_min, self.settings.backoff_max)
        repeats = Backoff(self.settings.backoff_min, self.settings.backoff_max)
        while not self._stopping.is_set():
            if self.settings.protocol != "1":
                await self.states.if_due()
            if self._refused is not None:
                break
            try:
                polled = await self._until_stopped(self.client.poll(self.poll_wait()))
            except _Stopped:
                break
            except Unreachable as exc:
                delay = backoff.next()
                logger.warning("server unreachable (%s); polling again in %.0f s", exc, delay)
                await self._pause(delay)
                continue
            except ApiError as exc:
                if exc.code in REFUSED:
                    self._refuse(exc)
                    break
                delay = backoff.next()
                logger.warning("poll failed: %s; polling again in %.0f s", exc, delay)
                await self._pause(delay)
                continue
            backoff.reset()
            taken = [await self.process(raw) for raw in polled]
            if polled and not any(taken):
                # Listed again only because our reports have not reached the server yet:
                # let them go first instead of polling in a tight loop.
                await self._until_sent(repeats.next())
            else:
                repeats.reset()
            await self.watch()
            self.cycles += 1
            self._cycle.set()
            self._cycle = asyncio.Event()

    async def process(self, raw: Any) -> bool:
        """Take one instruction of a poll's answer: journal, ack, execute, report. False
        when it was not taken (journaled before, or no usable id)."""
        instruction_id = instruction_id_of(raw)
        if instruction_id is None:
            logger.error(
                "instruction without a usable id skipped (cannot report on it): %.200r", raw
            )
            return False
        if self.journal.known(instruction_id):
            logger.debug("instruction %s is journaled already; not taken again", instruction_id)
            return False
        signal_id = raw.get("signal_id") if isinstance(raw.get("signal_id"), str) else None
        action = raw.get("action") if isinstance(raw.get("action"), str) else None
        try:
            instruction = parse_instruction(raw)
        except Unreadable as exc:
            logger.error(
                "instruction %s unreadable: %s (error 90008, no trade)", instruction_id, exc.problem
            )
            self.journal.receive(
                instruction_id,
                raw,
                signal_id=signal_id,
                action=action,
                reports=[
                    _error(
                        instruction_id, Code.UNREADABLE, f"unreadable instruction: {exc.problem}"
                    )
                ],
                done=True,
            )
            self._reports_queued()
            return True
        self.journal.receive(
            instruction_id,
            raw,
            signal_id=None if isinstance(instruction, CloseAll) else instruction.signal_id,
            action=instruction.action.value,
            reports=[Report("ack", ack_body(instruction_id, Step.ACK, None, None))],
        )
        self._reports_queued()
        if isinstance(instruction, CloseAll):
            logger.info("instruction %s received: close_all", instruction_id)
        else:
            logger.info(
                "instruction %s received: %s %s (signal %s)",
                instruction_id,
                instruction.action.value,
                instruction.symbol,
                instruction.signal_id,
            )
        await self.execute(instruction)
        return True

    # ------------------------------------------------------------------ executing

    async def execute(self, instruction: AnyInstruction) -> None:
        stale = self._stale(instruction)
        if stale is not None:
            self._fail(instruction.id, TradeError(int(Code.STALE), stale))
            return
        try:
            if isinstance(instruction, Open):
                await self._open(instruction)
            elif isinstance(instruction, Modify):
                await self._modify(instruction, await self._targets(instruction))
            elif isinstance(instruction, Close):
                await self._close(instruction)
            elif isinstance(instruction, CloseAll):
                await self._close_all(instruction)
            else:
                await self._cancel(instruction)
        except TradeError as exc:
            self._fail(instruction.id, exc)

    def _stale(self, instruction: AnyInstruction) -> str | None:
        now = self.clock.now()
        if isinstance(instruction, Open) and now >= instruction.expires_at:
            return f"expired at {instruction.expires_at.isoformat()}; not executed"
        if now - instruction.issued_at > self.settings.max_age:
            seconds = int(self.settings.max_age.total_seconds())
            return (
                f"issued at {instruction.issued_at.isoformat()}, older than the {seconds} s "
                "this agent accepts; not executed"
            )
        return None

    def _fail(self, instruction_id: str, error: TradeError) -> None:
        logger.warning("instruction %s: error %d: %s", instruction_id, error.code, error.message)
        self.journal.finish(
            instruction_id,
            {"error": error.code, "message": error.message},
            [_error(instruction_id, error.code, error.message)],
        )
        self._reports_queued()

    def _executed(self, instruction_id: str) -> None:
        if self._after_execute is not None:
            self._after_execute(instruction_id)

    async def _spec(self, symbol: str) -> SymbolSpec:
        return await self._call(self.executor.symbol_spec, symbol)

    async def _open(self, instruction: Open) -> None:
        if not instruction.v11:
            await self._open_v1(instruction)
            return
        data = await self._call(self.executor.symbol_data, instruction.symbol)
        market = instruction.order_type is OrderType.MARKET
        quote = await self._call(self.executor.quote, instruction.symbol) if market else None
        if instruction.guards is not None and quote is not None:
            check_guards(
                instruction.guards, instruction.side, quote, data.point, instruction.symbol
            )
        volume = await self._sized(instruction, data, quote)
        plan = self._legs(instruction, volume, data.spec)
        self.journal.start(
            instruction.id,
            {
                "tag": plan[0].tag,
                "volume": str(volume),
                "legs": [
                    {
                        "leg": leg.leg,
                        "tag": leg.tag,
                        "volume": str(leg.volume),
                        "take_profit": None if leg.take_profit is None else str(leg.take_profit),
                    }
                    for leg in plan
                ],
            },
        )
        await self._open_legs(instruction, plan)

    async def _open_v1(self, instruction: Open) -> None:
        spec = await self._spec(instruction.symbol)
        volume = round_volume(instruction.volume, spec)
        if volume is None:
            raise TradeError(
                int(Code.VOLUME_BELOW_MINIMUM),
                f"volume {instruction.volume} is below {instruction.symbol}'s minimum "
                f"{spec.volume_min} (step {spec.volume_step})",
            )
        order = self._order(
            instruction,
            LegPlan(
                None,
                tag_of(instruction.id),
                volume,
                instruction.take_profit[0] if instruction.take_profit else None,
            ),
        )
        self.journal.start(instruction.id, {"tag": order.tag, "volume": str(volume)})
        holding = await self._call(self.executor.open, order)
        self._executed(instruction.id)
        self._opened(instruction, holding)

    def _order(self, instruction: Open, leg: LegPlan) -> OpenOrder:
        return OpenOrder(
            tag=leg.tag,
            symbol=instruction.symbol,
            side=instruction.side,
            order_type=instruction.order_type,
            entry=instruction.entry,
            stop_loss=instruction.stop_loss,
            take_profit=leg.take_profit,
            volume=leg.volume,
        )

    async def _sized(self, instruction: Open, data: SymbolData, quote: Quote | None) -> Decimal:
        """The open's whole volume from its ``sizing`` (5.2); 90003 below the minimum."""
        sizing = instruction.sizing
        if sizing is not None and sizing.mode is not SizingMode.FIXED:
            computable = data.tick_size > 0 and data.tick_value > 0
            if instruction.stop_loss is not None and computable:
                account = await self._call(self.executor.account)
                price = order_price(
                    instruction.side, instruction.order_type, instruction.entry, quote
                )
                lots = risk_lots(sizing, account, data, price, instruction.stop_loss)
                logger.info(
                    "instruction %s sized %s lots of %s (%s)",
                    instruction.id,
                    wire_decimal(lots),
                    instruction.symbol,
                    _sizing_words(instruction),
                )
                return lots
            logger.warning(
                "instruction %s: %s %s; trading the server's volume %s",
                instruction.id,
                sizing.mode.value,
                "without a stop loss"
                if computable
                else f"but {instruction.symbol} has no tick value",
                wire_decimal(instruction.volume),
            )
        fixed = sizing.lots if sizing is not None else None
        asked = fixed if fixed is not None else instruction.volume
        volume = round_volume(asked, data.spec)
        if volume is None:
            raise TradeError(
                int(Code.VOLUME_BELOW_MINIMUM),
                f"volume {asked} is below {instruction.symbol}'s minimum "
                f"{data.spec.volume_min} (step {data.spec.volume_step})",
            )
        return volume

    def _legs(self, instruction: Open, volume: Decimal, spec: SymbolSpec) -> list[LegPlan]:
        if not instruction.legs:
            take_profit = instruction.take_profit[0] if instruction.take_profit else None
            return [LegPlan(0, tag_of(instruction.id), volume, take_profit)]
        parts = split_legs(volume, instruction.legs, spec)
        if len(parts) < len(instruction.legs):
            logger.info(
                "instruction %s: %s lots cannot give %d legs the minimum %s each; %d kept",
                instruction.id,
                wire_decimal(volume),
                len(instruction.legs),
                wire_decimal(spec.volume_min),
                len(parts),
            )
        return [
            LegPlan(i, tag_of(instruction.id, i), part, instruction.legs[i].take_profit)
            for i, part in enumerate(parts)
        ]

    async def _open_legs(self, instruction: Open, plan: list[LegPlan]) -> None:
        """One position (or pending order) per leg, each journaled with its report as soon
        as the executor answered; a leg journaled already (before a restart) is skipped."""
        done = {o.leg for o in self.journal.of_instruction(instruction.id)}
        for leg in plan:
            if leg.leg in done:
                continue
            holding = await self._call(self.executor.open, self._order(instruction, leg))
            self._executed(instruction.id)
            self._leg_opened(instruction, leg.leg, holding)
        tickets = [o.ticket for o in self.journal.of_instruction(instruction.id)]
        self.journal.finish(instruction.id, {"tickets": tickets}, [])
        self._reports_queued()

    def _leg_opened(self, instruction: Open, leg: int | None, holding: Holding) -> Owned:
        owned, report = self._opening(instruction, leg, holding)
        self.journal.own([owned], [report])
        self._reports_queued()
        return owned

    def _opening(
        self, instruction: Open, leg: int | None, holding: Holding
    ) -> tuple[Owned, Report]:
        """The journal's record of a new position or pending order, and its report."""
        owned = Owned(
            ticket=holding.ticket,
            signal_id=instruction.signal_id,
            instruction_id=instruction.id,
            kind=holding.kind,
            symbol=holding.symbol,
            side=holding.side,
            volume=holding.volume,
            state=HoldingState.OPEN if holding.is_open else HoldingState.GONE,
            leg=leg,
        )
        legged = f" (leg {leg})" if instruction.legs else ""
        if holding.kind is HoldingKind.POSITION:
            report = self._opened_fill(instruction.id, holding, leg)
            logger.info(
                "instruction %s filled%s: %s %s %s @ %s, ticket %d",
                instruction.id,
                legged,
                holding.side.value,
                wire_decimal(holding.volume),
                holding.symbol,
                wire_decimal(holding.price),
                holding.ticket,
            )
        else:
            message = (
                f"{holding.side.value} {instruction.order_type.value} "
                f"{wire_decimal(holding.volume)} {holding.symbol} @ {wire_decimal(holding.price)} "
                f"placed{legged}"
            )
            step = Step.PLACED.value if not leg else f"{Step.PLACED.value}-{leg}"
            report = Report("ack", ack_body(instruction.id, step, holding.ticket, message))
            logger.info("instruction %s: %s, ticket %d", instruction.id, message, holding.ticket)
        return owned, report

    def _opened(self, instruction: Open, holding: Holding) -> None:
        owned, report = self._opening(instruction, None, holding)
        self.journal.finish(
            instruction.id,
            {"ticket": holding.ticket, "kind": holding.kind.value},
            [report],
            [owned],
        )
        self._reports_queued()

    def _opened_fill(self, instruction_id: str, position: Holding, leg: int | None) -> Report:
        """The fill of an open: the position as the executor has it."""
        body = fill_body(
            instruction_id,
            Step.FILL.value if not leg else f"{Step.FILL.value}-{leg}",
            ticket=position.ticket,
            price=position.price,
            volume=position.volume,
            profit=None,
            executed_at=self.clock.now(),
            leg=leg,
        )
        return Report("fill", body)

    async def _current(self, signal_id: str | None) -> list[tuple[Owned, Holding]]:
        """The tickets (of the signal; None: all) that the journal says are ours and the
        executor still has; a position gone since is reported as closed (5.4), a pending
        order gone is marked so."""
        found: list[tuple[Owned, Holding]] = []
        gone: list[Owned] = []
        for owned in self.journal.holdings(signal_id):
            current = await self._call(self.executor.holding, owned.ticket)
            if current is not None:
                found.append((owned, current))
            elif owned.kind is HoldingKind.POSITION:
                await self._ended(owned)
            else:
                gone.append(replace(owned, state=HoldingState.GONE))
        if gone:
            self.journal.own(gone)
            for owned in gone:
                logger.info(
                    "ticket %d of signal %s is no longer open", owned.ticket, owned.signal_id
                )
        return found

    async def _targets(self, instruction: Modify) -> list[tuple[Owned, Holding]]:
        targets = await self._current(instruction.signal_id)
        if not targets:
            raise _nothing(instruction)
        return targets

    async def _modify(self, instruction: Modify, targets: list[tuple[Owned, Holding]]) -> None:
        """The stop loss to every leg; ``take_profit[i]`` to leg i where the list has one
        (other legs keep theirs). A v1 position takes ``take_profit[0]`` (none: removed)."""
        self.journal.start(instruction.id, {"tickets": [h.ticket for _, h in targets]})
        levels: list[tuple[Holding, Decimal | None]] = []
        for owned, holding in targets:
            take_profit = _take_profit_for(owned, holding, instruction.take_profit)
            levels.append((holding, take_profit))
            if holding.stop_loss == instruction.stop_loss and holding.take_profit == take_profit:
                continue
            await self._call(self.executor.modify, holding, instruction.stop_loss, take_profit)
        self._executed(instruction.id)
        if len(targets) == 1 or all(owned.leg is None for owned, _ in targets):
            take_profit = levels[0][1]
            words = f"stop loss {_level(instruction.stop_loss)}, take profit {_level(take_profit)}"
            message = f"{words} set on {_tickets([h for _, h in targets])}"
        else:
            each = ", ".join(f"ticket {h.ticket} take profit {_level(tp)}" for h, tp in levels)
            message = f"stop loss {_level(instruction.stop_loss)} set on {each}"
        self._done(instruction.id, targets[0][1].ticket, message)

    def _done(
        self, instruction_id: str, ticket: int, message: str, owned: list[Owned] | None = None
    ) -> None:
        logger.info("instruction %s done: %s", instruction_id, message)
        self.journal.finish(
            instruction_id,
            {"done": message},
            [Report("ack", ack_body(instruction_id, Step.DONE, ticket, message))],
            owned or [],
        )
        self._reports_queued()

    async def _close(self, instruction: Close) -> None:
        current = await self._current(instruction.signal_id)
        positions = [(o, h) for o, h in current if h.kind is HoldingKind.POSITION]
        orders = [(o, h) for o, h in current if h.kind is HoldingKind.ORDER]
        if not positions:
            if orders and instruction.fraction == 1:
                await self._delete(instruction.id, orders, "nothing was filled")
                return
            raise _nothing(instruction)
        plan: dict[str, str] = {}
        parts: list[tuple[Owned, Holding, Decimal]] = []
        too_small: TradeError | None = None
        for owned, holding in positions:
            try:
                volume = await self._close_volume(holding, instruction.fraction)
            except TradeError as exc:
                # 5.2: a leg whose part rounds below the minimum is left alone.
                too_small = too_small or exc
                continue
            plan[str(holding.ticket)] = str(holding.volume)
            parts.append((owned, holding, volume))
        if not parts:
            assert too_small is not None
            raise too_small
        tag = tag_of(instruction.id)
        self.journal.start(instruction.id, {"tag": tag, "before": plan})
        closes = [
            await self._call(self.executor.close, holding, volume, tag)
            for _, holding, volume in parts
        ]
        self._executed(instruction.id)
        self._closed(instruction, [(o, h.volume) for o, h, _ in parts], closes)

    async def _close_volume(self, holding: Holding, fraction: Decimal) -> Decimal:
        if fraction == 1:
            return holding.volume
        spec = await self._spec(holding.symbol)
        part = round_volume(holding.volume * fraction, spec)
        if part is None:
            raise TradeError(
                int(Code.VOLUME_BELOW_MINIMUM),
                f"{fraction} of {holding.volume} lots rounds below {holding.symbol}'s minimum "
                f"{spec.volume_min}; nothing closed",
            )
        if holding.volume - part < spec.volume_min:
            return holding.volume  # what would be left could not stay open on its own
        return part

    def _closed(
        self,
        instruction: Close,
        before: list[tuple[Owned, Decimal]],
        closes: list[Closed],
    ) -> None:
        reports: list[Report] = []
        owned: list[Owned] = []
        for number, ((mine, volume), closed) in enumerate(zip(before, closes, strict=True)):
            left = volume - closed.volume
            owned.append(
                replace(
                    mine,
                    volume=left,
                    state=HoldingState.OPEN if left > 0 else HoldingState.CLOSED,
                )
            )
            step = Step.FILL.value if number == 0 else f"{Step.FILL.value}-{number + 1}"
            reports.append(
                Report(
                    "fill",
                    fill_body(
                        instruction.id,
                        step,
                        ticket=closed.ticket,
                        price=closed.price,
                        volume=closed.volume,
                        profit=closed.profit,
                        executed_at=closed.executed_at,
                        leg=mine.leg,
                    ),
                )
            )
            logger.info(
                "instruction %s closed %s of ticket %d @ %s, profit %s",
                instruction.id,
                wire_decimal(closed.volume),
                closed.ticket,
                wire_decimal(closed.price),
                wire_decimal(closed.profit),
            )
        self.journal.finish(instruction.id, {"closed": [c.ticket for c in closes]}, reports, owned)
        self._reports_queued()

    async def _close_all(self, instruction: CloseAll) -> None:
        """5.3: every position and pending order of this agent's, nothing else; each
        position closed is a ``closed`` event with reason close_all (the ack went already)."""
        current = await self._current(None)
        tag = tag_of(instruction.id)
        self.journal.start(instruction.id, {"tag": tag, "tickets": [h.ticket for _, h in current]})
        await self._close_every(instruction, tag, current)

    async def _close_every(
        self, instruction: CloseAll, tag: str, current: list[tuple[Owned, Holding]]
    ) -> None:
        closed = deleted = 0
        for owned, holding in current:
            if holding.kind is HoldingKind.ORDER:
                await self._call(self.executor.cancel, holding)
                self._executed(instruction.id)
                self.journal.own([replace(owned, state=HoldingState.GONE)])
                deleted += 1
                continue
            done = await self._call(self.executor.close, holding, holding.volume, tag)
            self._executed(instruction.id)
            self._position_closed(
                owned,
                _by_close_all(done),
            )
            closed += 1
        logger.info(
            "instruction %s done: close_all closed %d positions, deleted %d pending orders",
            instruction.id,
            closed,
            deleted,
        )
        self.journal.finish(instruction.id, {"closed": closed, "deleted": deleted}, [])
        self._reports_queued()

    async def _cancel(self, instruction: Cancel) -> None:
        current = await self._current(instruction.signal_id)
        orders = [(o, h) for o, h in current if h.kind is HoldingKind.ORDER]
        if not orders:
            if current:
                raise TradeError(
                    int(Code.NOTHING_OF_OURS),
                    f"no pending order of signal {instruction.signal_id}: it was filled, "
                    f"{_tickets([h for _, h in current])} stays open",
                )
            raise _nothing(instruction)
        await self._delete(instruction.id, orders, "pending order deleted")

    async def _delete(
        self, instruction_id: str, orders: list[tuple[Owned, Holding]], what: str
    ) -> None:
        self.journal.start(instruction_id, {"tickets": [h.ticket for _, h in orders]})
        for _, holding in orders:
            await self._call(self.executor.cancel, holding)
        self._executed(instruction_id)
        gone = [replace(o, state=HoldingState.GONE) for o, _ in orders]
        self._done(
            instruction_id, orders[0][1].ticket, f"{what}: {_tickets([h for _, h in orders])}", gone
        )

    # ------------------------------------------------------------------ pending orders

    async def watch(self) -> None:
        """Between polls: pending orders that triggered, positions gone without an
        instruction of ours, the stop losses to manage and the moves to report."""
        await self.watch_orders()
        await self.watch_positions()
        await self.manage()

    async def watch_orders(self) -> None:
        """Pending orders that triggered since the last look are reported as fills."""
        for owned in self.journal.holdings():
            if owned.kind is not HoldingKind.ORDER:
                continue
            current = await self._call(self.executor.holding, owned.ticket)
            if current is not None and current.kind is HoldingKind.ORDER:
                continue
            if current is None:
                since = self.clock.now() - _HISTORY_MARGIN
                traced = await self._call(
                    self.executor.find_by_tag, tag_of(owned.instruction_id, owned.leg or 0), since
                )
                if traced is not None and traced.kind is HoldingKind.POSITION:
                    # Triggered and closed (take profit, stop loss) between two looks.
                    self._order_filled(owned, traced)
                    await self._ended(replace(owned, kind=HoldingKind.POSITION))
                    continue
                message = f"pending order {owned.ticket} was deleted or expired outside the agent"
                logger.warning("instruction %s: %s", owned.instruction_id, message)
                self.journal.own([replace(owned, state=HoldingState.GONE)])
                self.journal.queue([_error(owned.instruction_id, Code.NOTHING_OF_OURS, message)])
            else:
                self._order_filled(owned, current)
            self._reports_queued()

    def _order_filled(self, owned: Owned, current: Holding) -> None:
        logger.info(
            "pending order %d of instruction %s filled @ %s",
            owned.ticket,
            owned.instruction_id,
            wire_decimal(current.price),
        )
        self.journal.own(
            [replace(owned, kind=HoldingKind.POSITION, volume=current.volume)],
            reports=[self._opened_fill(owned.instruction_id, current, owned.leg)],
        )
        self._reports_queued()

    async def watch_positions(self) -> None:
        """Every own position the executor no longer has is reported as ``closed``."""
        for owned in self.journal.holdings():
            if owned.kind is not HoldingKind.POSITION:
                continue
            current = await self._call(self.executor.holding, owned.ticket)
            if current is None:
                await self._ended(owned)
            elif current.volume != owned.volume and current.kind is HoldingKind.POSITION:
                self.journal.own([replace(owned, volume=current.volume)])  # part closed by hand

    async def _ended(self, owned: Owned) -> None:
        """A position gone without an instruction of ours: its exit from the history."""
        since = self.clock.now() - _HISTORY_MARGIN
        found = await self._call(self.executor.exit_of, owned.ticket, since)
        if found is None:
            logger.info(
                "ticket %d of signal %s is no longer open; its closing deal is not in the "
                "history yet",
                owned.ticket,
                owned.signal_id,
            )
            return
        logger.info(
            "ticket %d of signal %s closed outside the agent (%s) @ %s, profit %s",
            owned.ticket,
            owned.signal_id,
            found.reason.value,
            wire_decimal(found.price),
            wire_decimal(found.profit),
        )
        self._position_closed(owned, found)

    def _position_closed(self, owned: Owned, found: Exit) -> None:
        """The position is gone: journaled with its ``closed`` event, in one transaction
        (the event's id comes from the ticket, so it is queued once whatever happens)."""
        reports: list[Report] = []
        if self.journal.events_wanted():
            body = closed_event(
                owned.instruction_id,
                leg=owned.leg,
                ticket=owned.ticket,
                reason=found.reason,
                price=found.price,
                volume=found.volume,
                profit=found.profit,
                executed_at=found.executed_at or self.clock.now(),
            )
            reports.append(Report("event", body))
        closed = replace(
            owned, state=HoldingState.CLOSED, volume=Decimal(0), exit_reason=found.reason.value
        )
        self.journal.own([closed], reports)
        self._reports_queued()

    # ------------------------------------------------------------------ management, state

    async def manage(self) -> None:
        """Breakeven and trailing between polls, and the moves due to be reported."""
        await self.stops.manage()

    def poll_wait(self) -> int:
        """The ``wait`` of the next poll: the server's ``poll_wait`` (at most ours; a 0,
        "work is pending", for one poll only), and no more than ``manage_wait`` while stop
        losses are managed between polls."""
        wait = min(self.settings.poll_wait, self.states.server_wait(self.settings.poll_wait))
        if self.stops.managing:
            wait = min(wait, self.settings.manage_wait)
        return wait

    async def state(self) -> dict[str, Any]:
        """The device state of 5.1, as the executor and the journal have it now."""
        return await self.states.body()

    async def send_state(self) -> bool:
        """``POST /api/v1/ea/state``; True when the server took it."""
        return await self.states.send()

    # ------------------------------------------------------------------ recovery

    async def recover(self) -> None:
        """Finish what the journal shows unfinished; resend what was not accepted."""
        for entry in self.journal.unfinished():
            instruction = parse_instruction(entry.raw)  # it was read once already
            if entry.stage is Stage.RECEIVED:
                logger.info("instruction %s: journaled before the restart, executing now", entry.id)
                await self.execute(instruction)
            else:
                await self._reconcile(instruction, entry)
        queued = len(self.journal.queued())
        if queued:
            logger.info("%d reports from before the restart will be sent again", queued)
        self._reports_queued()

    async def _reconcile(self, instruction: AnyInstruction, entry: Entry) -> None:
        plan = entry.plan or {}
        since = (entry.started_at or entry.received_at) - _HISTORY_MARGIN
        try:
            if isinstance(instruction, Open) and "legs" in plan:
                await self._reconcile_legs(instruction, plan, since)
            elif isinstance(instruction, Open):
                found = await self._call(self.executor.find_by_tag, tag_of(instruction.id), since)
                if found is not None:
                    logger.info(
                        "instruction %s was executed before the restart (ticket %d); reporting it",
                        instruction.id,
                        found.ticket,
                    )
                    self._opened(instruction, found)
                    return
                logger.info("instruction %s was not executed before the restart", instruction.id)
                await self.execute(instruction)
            elif isinstance(instruction, Modify):
                targets = await self._current(instruction.signal_id)
                if not targets:
                    raise _nothing(instruction)
                await self._modify(instruction, targets)
            elif isinstance(instruction, Close):
                await self._reconcile_close(instruction, plan, since)
            elif isinstance(instruction, CloseAll):
                await self._reconcile_close_all(instruction, plan, since)
            else:
                await self._reconcile_cancel(instruction, plan)
        except TradeError as exc:
            self._fail(instruction.id, exc)

    async def _reconcile_legs(self, instruction: Open, plan: dict[str, Any], since: Any) -> None:
        """A v1.1 open cut short: the legs journaled stand, a leg the executor has (by its
        tag) is reported, the others are opened now."""
        legs = [
            LegPlan(
                int(item["leg"]),
                str(item["tag"]),
                Decimal(item["volume"]),
                None if item.get("take_profit") is None else Decimal(item["take_profit"]),
            )
            for item in plan["legs"]
        ]
        done = {o.leg for o in self.journal.of_instruction(instruction.id)}
        for leg in legs:
            if leg.leg in done:
                continue
            found = await self._call(self.executor.find_by_tag, leg.tag, since)
            if found is not None:
                logger.info(
                    "instruction %s leg %d was executed before the restart (ticket %d); "
                    "reporting it",
                    instruction.id,
                    leg.leg,
                    found.ticket,
                )
                owned = self._leg_opened(instruction, leg.leg, found)
                if found.kind is HoldingKind.POSITION and not found.is_open:
                    await self._ended(owned)  # and closed since: its exit is an event too
        await self._open_legs(instruction, legs)

    async def _reconcile_close_all(
        self, instruction: CloseAll, plan: dict[str, Any], since: Any
    ) -> None:
        """The tickets of the plan still open are closed now; one closed before the
        restart has its closing deal (by the close_all's tag) reported."""
        tag = str(plan.get("tag") or tag_of(instruction.id))
        wanted = {int(t) for t in plan.get("tickets") or ()}
        for owned in self.journal.holdings():
            if owned.ticket not in wanted or owned.kind is not HoldingKind.POSITION:
                continue
            done = await self._call(self.executor.closed_part, owned.ticket, tag, since)
            if done is not None:
                self._position_closed(
                    owned,
                    _by_close_all(done),
                )
        current = [(o, h) for o, h in await self._current(None) if o.ticket in wanted]
        await self._close_every(instruction, tag, current)

    async def _reconcile_close(self, instruction: Close, plan: dict[str, Any], since: Any) -> None:
        tag = str(plan.get("tag") or tag_of(instruction.id))
        before = {
            int(ticket): Decimal(volume)
            for ticket, volume in dict(plan.get("before") or {}).items()
        }
        mine = {o.ticket: o for o in self.journal.holdings(instruction.signal_id)}
        done: list[tuple[Owned, Decimal]] = []
        closes: list[Closed] = []
        for ticket, volume in before.items():
            owned = mine.get(ticket)
            if owned is None:
                continue
            closed = await self._call(self.executor.closed_part, ticket, tag, since)
            if closed is None:
                current = await self._call(self.executor.holding, ticket)
                if current is None or current.volume < volume:
                    raise TradeError(
                        int(Code.NOTHING_OF_OURS),
                        f"position {ticket} changed before the restart but its closing deal is "
                        "not in the history; check the terminal",
                    )
                part = await self._close_volume(current, instruction.fraction)
                closed = await self._call(self.executor.close, current, part, tag)
                self._executed(instruction.id)
            else:
                logger.info(
                    "instruction %s: ticket %d was closed before the restart",
                    instruction.id,
                    ticket,
                )
            done.append((owned, volume))
            closes.append(closed)
        if not closes:
            raise _nothing(instruction)
        self._closed(instruction, done, closes)

    async def _reconcile_cancel(self, instruction: Cancel, plan: dict[str, Any]) -> None:
        tickets = [int(t) for t in plan.get("tickets") or ()]
        mine = {o.ticket: o for o in self.journal.holdings(instruction.signal_id)}
        orders: list[Owned] = []
        for ticket in tickets:
            owned = mine.get(ticket)
            if owned is None:
                continue
            current = await self._call(self.executor.holding, ticket)
            if current is not None and current.kind is HoldingKind.ORDER:
                await self._call(self.executor.cancel, current)
                self._executed(instruction.id)
            orders.append(owned)
        if not orders:
            raise _nothing(instruction)
        gone = [replace(o, state=HoldingState.GONE) for o in orders]
        deleted = ", ".join(f"ticket {o.ticket}" for o in orders)
        self._done(instruction.id, orders[0].ticket, f"pending order deleted: {deleted}", gone)

    # ------------------------------------------------------------------ reports

    async def _send_forever(self) -> None:
        backoff = Backoff(self.settings.backoff_min, self.settings.backoff_max)
        while True:
            self._send_wake.clear()
            if await self.flush():
                backoff.reset()
                if not self._send_wake.is_set():
                    self._all_sent.set()
                await self._send_wake.wait()
            elif self._refused is not None:
                return
            else:
                await self._wait_wake(backoff.next())

    async def _wait_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._send_wake.wait(), seconds)

    async def flush(self) -> bool:
        """Send every queued report, oldest first; False when one must wait for a retry."""
        for item in self.journal.queued():
            try:
                answer = await self.client.report(item.kind, item.body)
            except Unreachable as exc:
                logger.warning("report %s not sent (%s); will retry", item.report_id, exc)
                return False
            except ApiError as exc:
                if exc.code in REFUSED:
                    self._refuse(exc)
                    return False
                if exc.retryable:
                    logger.warning("report %s not taken (%s); will retry", item.report_id, exc)
                    return False
                # 400/404/409/422: sending it again cannot help; keep it for the owner to see.
                logger.error("report %s refused for good: %s", item.report_id, exc)
                self.journal.answered(item.seq, ReportState.REJECTED, None, str(exc))
                continue
            body = answer.body if isinstance(answer.body, dict) else {}
            record_id = str(body.get("id") or "")
            duplicate = bool(body.get("duplicate"))
            self.journal.answered(
                item.seq,
                ReportState.ACCEPTED,
                record_id,
                f"{answer.status} duplicate" if duplicate else str(answer.status),
            )
            logger.info(
                "report %s accepted as %s%s",
                item.report_id,
                record_id,
                " (a resend: the server had it already)" if duplicate else "",
            )
        return True


def _error(instruction_id: str, code: int, message: str) -> Report:
    return Report("error", error_body(instruction_id, code, message))


def _nothing(instruction: SignalInstruction) -> TradeError:
    return TradeError(
        int(Code.NOTHING_OF_OURS),
        f"no open position or pending order of this agent for signal {instruction.signal_id}",
    )


def _level(value: Decimal | None) -> str:
    return "none" if value is None else wire_decimal(value)


def _tickets(holdings: list[Holding]) -> str:
    return ", ".join(f"ticket {h.ticket}" for h in holdings)


def _take_profit_for(
    owned: Owned, holding: Holding, take_profit: tuple[Decimal, ...]
) -> Decimal | None:
    """A modify's take profit for one position: leg i takes ``take_profit[i]`` where the
    list has one and keeps its own otherwise; a v1 position takes the first (none: none)."""
    if owned.leg is None:
        return take_profit[0] if take_profit else None
    return take_profit[owned.leg] if owned.leg < len(take_profit) else holding.take_profit


def _sizing_words(instruction: Open) -> str:
    sizing = instruction.sizing
    assert sizing is not None
    if sizing.mode is SizingMode.RISK_MONEY:
        return f"risking {sizing.amount}"
    return f"risking {sizing.percent}% of the {sizing.of.value}"


def _by_close_all(done: Closed) -> Exit:
    """A position a close_all closed, as its ``closed`` event tells it."""
    return Exit(
        done.ticket, CloseReason.CLOSE_ALL, done.price, done.volume, done.profit, done.executed_at
    )
