"""The admin's short syntax for signals in the chat.

``/signal EURUSD buy [limit 1.0850 | stop 1.0850 | market] [sl 1.0800] [tp 1.0950]...
[exp 15m] [comment...]``: symbol and side first, then options in any order, and the
first word that is no option starts the free-text comment. The parser only splits; the
values are checked by the one validator (bot/domain/signal_rules.py).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from bot.domain.errors import ErrorCode, InvalidInputError

EXAMPLE = "/signal EURUSD buy sl 1.0800 tp 1.0950 tp 1.1000 exp 15m Breakout retest"
LEVELS_EXAMPLE = "sl 1.0810 tp 1.0960 tp 1.1000"
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^(\d{1,7})([smhd])$", re.IGNORECASE)
_TOKEN_RE = re.compile(r"\S+")
# Field names of the validator as the admin writes them in the chat.
CHAT_NAMES = {
    "symbol": "symbol",
    "side": "side",
    "order_type": "order type",
    "entry": "limit/stop price",
    "stop_loss": "sl",
    "take_profit": "tp",
    "expires_in": "exp",
    "comment": "comment",
}


class SyntaxProblem(StrEnum):
    """What could not be read; the chat layer words it (bot/chat/texts/signals.py)."""

    NO_SYMBOL = "no_symbol"  # nothing after /signal
    NO_SIDE = "no_side"  # a symbol and nothing else
    NOT_A_SIDE = "not_a_side"  # word
    NEEDS_PRICE = "needs_price"  # word (limit, stop, sl, tp) at the end
    NEEDS_DURATION = "needs_duration"  # exp at the end
    NOT_A_DURATION = "not_a_duration"  # word
    NO_LEVELS = "no_levels"  # an empty change of levels
    NOT_A_LEVEL = "not_a_level"  # word
    NEEDS_LEVEL = "needs_level"  # word (sl, tp) at the end of a change of levels
    TP_NONE_WITH_OTHERS = "tp_none_with_others"
    TWICE = "twice"  # field (the validator's name: order_type, stop_loss, expires_in)


class SignalSyntaxError(InvalidInputError):
    """The command could not be read: ``problem`` says what, ``word`` or ``field`` where."""

    def __init__(self, problem: SyntaxProblem, *, word: str = "", field: str = "") -> None:
        super().__init__(ErrorCode.SIGNAL_SYNTAX, problem=problem.value, word=word, field=field)
        self.problem = problem
        self.word = word
        self.field = field


def parse_duration(token: str) -> int:
    """``90s``, ``15m``, ``2h`` or ``1d`` in seconds; ValueError otherwise."""
    match = _DURATION_RE.match(token)
    if match is None:
        raise ValueError(token)
    return int(match.group(1)) * DURATION_UNITS[match.group(2).lower()]


def parse_signal_command(args: str | None) -> dict[str, Any]:
    """Split ``/signal`` arguments into the validator's fields."""
    tokens = [(m.group(), m.start()) for m in _TOKEN_RE.finditer(args or "")]
    if not tokens:
        raise SignalSyntaxError(SyntaxProblem.NO_SYMBOL)
    if len(tokens) < 2:
        raise SignalSyntaxError(SyntaxProblem.NO_SIDE)
    data: dict[str, Any] = {"symbol": tokens[0][0], "side": tokens[1][0]}
    if tokens[1][0].lower() not in {"buy", "sell"}:
        raise SignalSyntaxError(SyntaxProblem.NOT_A_SIDE, word=tokens[1][0])
    index = 2
    take_profits: list[str] = []
    while index < len(tokens):
        word = tokens[index][0].lower()
        if word == "market":
            _once(data, "order_type", "market")
            index += 1
            continue
        if word not in {"limit", "stop", "sl", "tp", "exp"}:
            data["comment"] = (args or "")[tokens[index][1] :].strip()
            break
        if index + 1 >= len(tokens):
            if word == "exp":
                raise SignalSyntaxError(SyntaxProblem.NEEDS_DURATION, word=word)
            raise SignalSyntaxError(SyntaxProblem.NEEDS_PRICE, word=word)
        value = tokens[index + 1][0]
        if word in {"limit", "stop"}:
            _once(data, "order_type", word)
            data["entry"] = value
        elif word == "sl":
            _once(data, "stop_loss", value)
        elif word == "tp":
            take_profits.append(value)
        else:
            try:
                _once(data, "expires_in", parse_duration(value))
            except ValueError:
                raise SignalSyntaxError(SyntaxProblem.NOT_A_DURATION, word=value) from None
        index += 2
    if take_profits:
        data["take_profit"] = take_profits
    return data


def parse_levels(text: str | None) -> dict[str, Any]:
    """``sl <price|none>`` and ``tp <price|none>``... for a change of levels."""
    tokens = (text or "").split()
    if not tokens:
        raise SignalSyntaxError(SyntaxProblem.NO_LEVELS)
    data: dict[str, Any] = {}
    take_profits: list[str] = []
    clear_take_profits = False
    for index in range(0, len(tokens), 2):
        word = tokens[index].lower()
        if word not in {"sl", "tp"}:
            raise SignalSyntaxError(SyntaxProblem.NOT_A_LEVEL, word=tokens[index])
        if index + 1 >= len(tokens):
            raise SignalSyntaxError(SyntaxProblem.NEEDS_LEVEL, word=word)
        value = tokens[index + 1]
        none = value.lower() == "none"
        if word == "sl":
            _once(data, "stop_loss", None if none else value)
        elif none:
            clear_take_profits = True
        else:
            take_profits.append(value)
    if clear_take_profits and take_profits:
        raise SignalSyntaxError(SyntaxProblem.TP_NONE_WITH_OTHERS)
    if clear_take_profits or take_profits:
        data["take_profit"] = take_profits
    return data


def _once(data: dict[str, Any], key: str, value: Any) -> None:
    if key in data:
        raise SignalSyntaxError(SyntaxProblem.TWICE, field=key)
    data[key] = value
