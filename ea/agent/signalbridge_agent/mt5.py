"""The MetaTrader 5 executor: trades through the ``MetaTrader5`` package (Windows only).

The package is imported where it is used, so the agent installs and its paper executor
runs anywhere. Everything this executor sends carries its magic number and the
instruction's tag as the comment, and it looks only at positions, orders and deals with
that magic number: the account's other trades are never touched.

Calls are type-checked against ``metatrader5-stubs``; the calls those stubs lack
(``symbol_info``, ``history_deals_get``, ``account_info``) are typed below by the fields
read from them. Sizing (5.2) takes ``trade_tick_size``, ``trade_tick_value`` and ``point``
of ``symbol_info``; a position's exit reason comes from its closing deal's ``reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

from signalbridge_agent.protocol import CloseReason, Code, OrderType, Side
from signalbridge_agent.trading import (
    Account,
    Closed,
    Exit,
    Holding,
    HoldingKind,
    OpenOrder,
    Quote,
    SymbolData,
    SymbolSpec,
    TradeError,
)

if TYPE_CHECKING:
    from MetaTrader5 import OrderSendResult, TradeOrder, TradePosition, TradeRequest

logger = logging.getLogger(__name__)

# SYMBOL_FILLING_* flags of symbol_info().filling_mode (MQL5's SYMBOL_FILLING_MODE).
_FILLING_FOK = 1
_FILLING_IOC = 2


class SymbolInfo(Protocol):
    visible: bool
    trade_mode: int
    filling_mode: int
    digits: int
    volume_min: float
    volume_step: float
    volume_max: float
    point: float
    trade_tick_size: float
    trade_tick_value: float


class AccountInfo(Protocol):
    currency: str
    balance: float
    equity: float
    margin_free: float
    leverage: int
    trade_allowed: bool
    trade_expert: bool
    company: str
    server: str


class TradeDeal(Protocol):
    ticket: int
    order: int
    position_id: int
    magic: int
    entry: int
    volume: float
    price: float
    profit: float
    comment: str
    type: int
    symbol: str
    reason: int


# DEAL_REASON_* of a closing deal (MQL5's ENUM_DEAL_REASON) → the event's reason.
_DEAL_REASONS = {
    0: CloseReason.MANUAL,  # DEAL_REASON_CLIENT: the desktop terminal
    1: CloseReason.MANUAL,  # DEAL_REASON_MOBILE
    2: CloseReason.MANUAL,  # DEAL_REASON_WEB
    3: CloseReason.EXPERT,  # DEAL_REASON_EXPERT: another EA or script
    4: CloseReason.SL,
    5: CloseReason.TP,
    6: CloseReason.STOP_OUT,
}


def _module() -> ModuleType:
    import MetaTrader5

    return MetaTrader5


def _symbol_info(symbol: str) -> SymbolInfo | None:
    call = cast(Callable[[str], SymbolInfo | None], _module().symbol_info)
    return call(symbol)


def _account_info() -> AccountInfo | None:
    call = cast(Callable[[], AccountInfo | None], _module().account_info)
    return call()


def _deals_of_position(ticket: int) -> Sequence[TradeDeal]:
    call = cast(Callable[..., Sequence[TradeDeal] | None], _module().history_deals_get)
    return call(position=ticket) or ()


def _deals_between(start: datetime, end: datetime) -> Sequence[TradeDeal]:
    call = cast(Callable[..., Sequence[TradeDeal] | None], _module().history_deals_get)
    return call(start, end) or ()


def _decimal(value: float) -> Decimal:
    """A float of the terminal as the decimal it stands for (repr is the shortest form)."""
    return Decimal(repr(value))


def _level(value: Decimal | None) -> float:
    return 0.0 if value is None else float(value)  # MetaTrader: 0 means no level


def _optional(value: float) -> Decimal | None:
    return None if value == 0 else _decimal(value)


class Mt5Executor:
    name = "mt5"

    def __init__(
        self,
        *,
        magic: int,
        deviation: int = 10,
        terminal_path: str | None = None,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
    ) -> None:
        """``magic`` marks this agent's trades; ``deviation`` is the slippage allowed on
        market orders, in points; the terminal arguments are passed to ``initialize``
        (without them the running terminal and its logged-in account are used)."""
        if not 0 < magic < 2**63:
            raise ValueError("magic must be a positive integer")
        self.magic = magic
        self.deviation = deviation
        self._terminal_path = terminal_path
        self._login = login
        self._password = password
        self._server = server

    def __repr__(self) -> str:  # never the password
        return f"Mt5Executor(magic={self.magic}, login={self._login}, server={self._server!r})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        try:
            import MetaTrader5 as mt5
        except ImportError:
            raise TradeError(
                int(Code.TRADING_NOT_ALLOWED),
                "the MetaTrader5 package is not installed; it exists for Windows only: "
                'pip install "signalbridge-agent[mt5]"',
            ) from None

        options: dict[str, Any] = {}
        if self._login is not None:
            options["login"] = self._login
        if self._password is not None:
            options["password"] = self._password
        if self._server is not None:
            options["server"] = self._server
        started = (
            mt5.initialize(self._terminal_path, **options)
            if self._terminal_path
            else mt5.initialize(**options)
        )
        if not started:
            code, description = mt5.last_error()
            raise TradeError(
                int(Code.TRADING_NOT_ALLOWED),
                f"MetaTrader 5 did not start ({code}: {description})",
            )
        info = mt5.terminal_info()
        if info is not None and not info.trade_allowed:
            logger.warning("Algo Trading is off in the terminal: trades will fail until it is on")

    def stop(self) -> None:
        import MetaTrader5 as mt5

        mt5.shutdown()

    # ------------------------------------------------------------------ symbols

    def _info(self, symbol: str) -> SymbolInfo:
        import MetaTrader5 as mt5

        info = _symbol_info(symbol)
        if info is None:
            raise TradeError(int(Code.SYMBOL_UNAVAILABLE), f"{symbol} is not on this account")
        if not info.visible:
            if not mt5.symbol_select(symbol, True):
                raise TradeError(
                    int(Code.SYMBOL_UNAVAILABLE), f"{symbol} cannot be selected in Market Watch"
                )
            info = _symbol_info(symbol) or info
        if info.trade_mode == mt5.SYMBOL_TRADE_MODE_DISABLED:
            raise TradeError(int(Code.TRADING_NOT_ALLOWED), f"trading {symbol} is disabled")
        return info

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        info = self._info(symbol)
        return SymbolSpec(
            _decimal(info.volume_min), _decimal(info.volume_step), _decimal(info.volume_max)
        )

    def symbol_data(self, symbol: str) -> SymbolData:
        info = self._info(symbol)
        return SymbolData(
            name=symbol,
            spec=SymbolSpec(
                _decimal(info.volume_min), _decimal(info.volume_step), _decimal(info.volume_max)
            ),
            tick_size=_decimal(info.trade_tick_size),
            tick_value=_decimal(info.trade_tick_value),
            point=_decimal(info.point),
        )

    def quote(self, symbol: str) -> Quote:
        import MetaTrader5 as mt5

        self._info(symbol)
        tick = mt5.symbol_info_tick(symbol)
        if tick is None:
            raise TradeError(int(Code.SYMBOL_UNAVAILABLE), f"{symbol} has no price now")
        return Quote(_decimal(tick.bid), _decimal(tick.ask))

    def account(self) -> Account:
        import MetaTrader5 as mt5

        info = _account_info()
        if info is None:
            code, description = mt5.last_error()
            raise TradeError(
                int(Code.TRADING_NOT_ALLOWED),
                f"MetaTrader 5 has no account information ({code}: {description})",
            )
        terminal = mt5.terminal_info()
        allowed = bool(
            info.trade_allowed
            and info.trade_expert
            and terminal is not None
            and terminal.trade_allowed
        )
        return Account(
            currency=info.currency,
            balance=_decimal(info.balance),
            equity=_decimal(info.equity),
            margin_free=_decimal(info.margin_free),
            leverage=int(info.leverage),
            trade_allowed=allowed,
            company=info.company or None,
            server=info.server or None,
        )

    def build(self) -> int | None:
        import MetaTrader5 as mt5

        terminal = mt5.terminal_info()
        return None if terminal is None else int(terminal.build)

    def _check_trading(self) -> None:
        import MetaTrader5 as mt5

        info = mt5.terminal_info()
        if info is None or not info.trade_allowed:
            raise TradeError(
                int(Code.TRADING_NOT_ALLOWED), "Algo Trading is off in the MetaTrader 5 terminal"
            )

    def _filling(self, info: SymbolInfo) -> int:
        import MetaTrader5 as mt5

        if info.filling_mode & _FILLING_FOK:
            return mt5.ORDER_FILLING_FOK
        if info.filling_mode & _FILLING_IOC:
            return mt5.ORDER_FILLING_IOC
        return mt5.ORDER_FILLING_RETURN

    def _send(self, request: TradeRequest, what: str) -> OrderSendResult:
        import MetaTrader5 as mt5

        result = mt5.order_send(request)
        if result is None:
            code, description = mt5.last_error()
            raise TradeError(code, f"{what}: the terminal refused the request ({description})")
        if result.retcode not in (
            mt5.TRADE_RETCODE_DONE,
            mt5.TRADE_RETCODE_PLACED,
            mt5.TRADE_RETCODE_DONE_PARTIAL,
            mt5.TRADE_RETCODE_NO_CHANGES,
        ):
            raise TradeError(result.retcode, f"{what}: {result.comment or 'refused'}")
        return result

    # ------------------------------------------------------------------ trading

    def open(self, order: OpenOrder) -> Holding:
        import MetaTrader5 as mt5

        self._check_trading()
        info = self._info(order.symbol)
        buy = order.side is Side.BUY
        request: TradeRequest = {
            "symbol": order.symbol,
            "volume": float(order.volume),
            "sl": _level(order.stop_loss),
            "tp": _level(order.take_profit),
            "magic": self.magic,
            "comment": order.tag,
            "type_time": mt5.ORDER_TIME_GTC,
        }
        if order.order_type is OrderType.MARKET:
            tick = mt5.symbol_info_tick(order.symbol)
            if tick is None:
                raise TradeError(int(Code.SYMBOL_UNAVAILABLE), f"{order.symbol} has no price now")
            request["action"] = mt5.TRADE_ACTION_DEAL
            request["type"] = mt5.ORDER_TYPE_BUY if buy else mt5.ORDER_TYPE_SELL
            request["price"] = tick.ask if buy else tick.bid
            request["deviation"] = self.deviation
            request["type_filling"] = self._filling(info)
        else:
            assert order.entry is not None
            limit = order.order_type is OrderType.LIMIT
            kinds = {
                (True, True): mt5.ORDER_TYPE_BUY_LIMIT,
                (True, False): mt5.ORDER_TYPE_BUY_STOP,
                (False, True): mt5.ORDER_TYPE_SELL_LIMIT,
                (False, False): mt5.ORDER_TYPE_SELL_STOP,
            }
            request["action"] = mt5.TRADE_ACTION_PENDING
            request["type"] = kinds[(buy, limit)]
            request["price"] = float(order.entry)
            request["type_filling"] = mt5.ORDER_FILLING_RETURN
        result = self._send(request, f"{order.side.value} {order.symbol}")
        found = self.holding(result.order)
        if found is not None:
            return found
        # Not listed yet (a netting account merges positions): what the server answered.
        return Holding(
            ticket=result.order,
            kind=HoldingKind.POSITION
            if order.order_type is OrderType.MARKET
            else HoldingKind.ORDER,
            symbol=order.symbol,
            side=order.side,
            volume=_decimal(result.volume) if result.volume else order.volume,
            price=_decimal(result.price) if result.price else (order.entry or Decimal(0)),
            stop_loss=order.stop_loss,
            take_profit=order.take_profit,
            tag=order.tag,
        )

    def modify(
        self, holding: Holding, stop_loss: Decimal | None, take_profit: Decimal | None
    ) -> None:
        import MetaTrader5 as mt5

        self._check_trading()
        request: TradeRequest
        if holding.kind is HoldingKind.POSITION:
            request = {
                "action": mt5.TRADE_ACTION_SLTP,
                "position": holding.ticket,
                "symbol": holding.symbol,
                "sl": _level(stop_loss),
                "tp": _level(take_profit),
                "magic": self.magic,
            }
        else:
            request = {
                "action": mt5.TRADE_ACTION_MODIFY,
                "order": holding.ticket,
                "symbol": holding.symbol,
                "price": float(holding.price),
                "sl": _level(stop_loss),
                "tp": _level(take_profit),
                "type_time": mt5.ORDER_TIME_GTC,
                "magic": self.magic,
            }
        self._send(request, f"modify ticket {holding.ticket}")

    def close(self, holding: Holding, volume: Decimal, tag: str) -> Closed:
        import MetaTrader5 as mt5

        self._check_trading()
        info = self._info(holding.symbol)
        tick = mt5.symbol_info_tick(holding.symbol)
        if tick is None:
            raise TradeError(int(Code.SYMBOL_UNAVAILABLE), f"{holding.symbol} has no price now")
        buy = holding.side is Side.BUY
        request: TradeRequest = {
            "action": mt5.TRADE_ACTION_DEAL,
            "position": holding.ticket,
            "symbol": holding.symbol,
            "volume": float(volume),
            "type": mt5.ORDER_TYPE_SELL if buy else mt5.ORDER_TYPE_BUY,
            "price": tick.bid if buy else tick.ask,
            "deviation": self.deviation,
            "magic": self.magic,
            "comment": tag,
            "type_time": mt5.ORDER_TIME_GTC,
            "type_filling": self._filling(info),
        }
        result = self._send(request, f"close ticket {holding.ticket}")
        deal = next(
            (d for d in _deals_of_position(holding.ticket) if d.ticket == result.deal), None
        )
        if deal is not None:
            return Closed(
                holding.ticket,
                _decimal(deal.price),
                _decimal(deal.volume),
                _decimal(deal.profit),
                None,
            )
        logger.warning(
            "deal %d of ticket %d is not in the history yet", result.deal, holding.ticket
        )
        price = _decimal(result.price) if result.price else _decimal(request["price"])
        return Closed(holding.ticket, price, volume, Decimal(0), None)

    def cancel(self, holding: Holding) -> None:
        import MetaTrader5 as mt5

        self._check_trading()
        request: TradeRequest = {
            "action": mt5.TRADE_ACTION_REMOVE,
            "order": holding.ticket,
            "magic": self.magic,
        }
        self._send(request, f"delete order {holding.ticket}")

    # ------------------------------------------------------------------ looking

    def holding(self, ticket: int) -> Holding | None:
        import MetaTrader5 as mt5

        for position in mt5.positions_get(ticket=ticket) or ():
            if position.magic == self.magic:
                return self._position(position)
        for order in mt5.orders_get(ticket=ticket) or ():
            if order.magic == self.magic:
                return self._order(order)
        return None

    def find_by_tag(self, tag: str, since: datetime) -> Holding | None:
        import MetaTrader5 as mt5

        for position in mt5.positions_get() or ():
            if position.magic == self.magic and position.comment == tag:
                return self._position(position)
        for order in mt5.orders_get() or ():
            if order.magic == self.magic and order.comment == tag:
                return self._order(order)
        until = datetime.now(UTC) + timedelta(days=1)
        for deal in _deals_between(since, until):
            if deal.magic == self.magic and deal.comment == tag and deal.entry == mt5.DEAL_ENTRY_IN:
                # Opened, and closed since (stop loss, take profit, by hand).
                return Holding(
                    ticket=deal.position_id,
                    kind=HoldingKind.POSITION,
                    symbol=deal.symbol,
                    side=Side.BUY if deal.type == mt5.DEAL_TYPE_BUY else Side.SELL,
                    volume=_decimal(deal.volume),
                    price=_decimal(deal.price),
                    stop_loss=None,
                    take_profit=None,
                    tag=tag,
                    is_open=False,
                )
        return None

    def closed_part(self, ticket: int, tag: str, since: datetime) -> Closed | None:
        import MetaTrader5 as mt5

        outs = (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY, mt5.DEAL_ENTRY_INOUT)
        deals = [
            d
            for d in _deals_of_position(ticket)
            if d.magic == self.magic and d.comment == tag and d.entry in outs
        ]
        if not deals:
            return None
        deal = max(deals, key=lambda d: d.ticket)
        return Closed(
            ticket, _decimal(deal.price), _decimal(deal.volume), _decimal(deal.profit), None
        )

    def exit_of(self, ticket: int, since: datetime) -> Exit | None:
        import MetaTrader5 as mt5

        if mt5.positions_get(ticket=ticket):
            return None  # still open
        outs = (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY, mt5.DEAL_ENTRY_INOUT)
        deals = [d for d in _deals_of_position(ticket) if d.entry in outs]
        if not deals:
            return None  # the history has not caught up yet: looked at again later
        last = max(deals, key=lambda d: d.ticket)
        # A deal's time is the trade server's, not UTC: the event goes without one.
        return Exit(
            ticket,
            _DEAL_REASONS.get(last.reason, CloseReason.MANUAL),
            _decimal(last.price),
            _decimal(last.volume),
            _decimal(last.profit),
            None,
        )

    # ------------------------------------------------------------------ shapes

    def _position(self, position: TradePosition) -> Holding:
        import MetaTrader5 as mt5

        return Holding(
            ticket=position.ticket,
            kind=HoldingKind.POSITION,
            symbol=position.symbol,
            side=Side.BUY if position.type == mt5.POSITION_TYPE_BUY else Side.SELL,
            volume=_decimal(position.volume),
            price=_decimal(position.price_open),
            stop_loss=_optional(position.sl),
            take_profit=_optional(position.tp),
            tag=position.comment,
            profit=_decimal(position.profit),
        )

    def _order(self, order: TradeOrder) -> Holding:
        import MetaTrader5 as mt5

        buys = (mt5.ORDER_TYPE_BUY_LIMIT, mt5.ORDER_TYPE_BUY_STOP, mt5.ORDER_TYPE_BUY)
        return Holding(
            ticket=order.ticket,
            kind=HoldingKind.ORDER,
            symbol=order.symbol,
            side=Side.BUY if order.type in buys else Side.SELL,
            volume=_decimal(order.volume_current),
            price=_decimal(order.price_open),
            stop_loss=_optional(order.sl),
            take_profit=_optional(order.tp),
            tag=order.comment,
        )
