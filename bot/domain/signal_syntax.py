"""The admin's short syntax for signals in the chat.

``/signal EURUSD buy [limit 1.0850 | stop 1.0850 | market] [sl 1.0800] [tp 1.0950]...
[exp 15m] [comment...]``: symbol and side first, then options in any order, and the
first word that is no option starts the free-text comment. The parser only splits; the
values are checked by the one validator (bot/domain/signal_rules.py).
"""

from __future__ import annotations

import re
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


class SignalSyntaxError(InvalidInputError):
    """The command could not be read; ``problem`` says what was wrong (in English: the
    provider API's sentence, shown as it is)."""

    def __init__(self, problem: str) -> None:
        super().__init__(ErrorCode.SIGNAL_SYNTAX, problem=problem)
        self.problem = problem


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
        raise SignalSyntaxError("Write the symbol and the side after /signal.")
    if len(tokens) < 2:
        raise SignalSyntaxError("After the symbol comes the side: buy or sell.")
    data: dict[str, Any] = {"symbol": tokens[0][0], "side": tokens[1][0]}
    if tokens[1][0].lower() not in {"buy", "sell"}:
        raise SignalSyntaxError(f"“{tokens[1][0]}” is not a side: write buy or sell.")
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
            what = "a duration such as 15m" if word == "exp" else "a price"
            raise SignalSyntaxError(f"“{word}” needs {what} after it.")
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
                raise SignalSyntaxError(
                    f"“{value}” after exp is not a duration: write e.g. 90s, 15m, 2h or 1d."
                ) from None
        index += 2
    if take_profits:
        data["take_profit"] = take_profits
    return data


def parse_levels(text: str | None) -> dict[str, Any]:
    """``sl <price|none>`` and ``tp <price|none>``... for a change of levels."""
    tokens = (text or "").split()
    if not tokens:
        raise SignalSyntaxError("Send the new levels, e.g. “sl 1.0810 tp 1.0960”.")
    data: dict[str, Any] = {}
    take_profits: list[str] = []
    clear_take_profits = False
    for index in range(0, len(tokens), 2):
        word = tokens[index].lower()
        if word not in {"sl", "tp"}:
            raise SignalSyntaxError(f"“{tokens[index]}” is not sl or tp.")
        if index + 1 >= len(tokens):
            raise SignalSyntaxError(f"“{word}” needs a price (or none) after it.")
        value = tokens[index + 1]
        none = value.lower() == "none"
        if word == "sl":
            _once(data, "stop_loss", None if none else value)
        elif none:
            clear_take_profits = True
        else:
            take_profits.append(value)
    if clear_take_profits and take_profits:
        raise SignalSyntaxError("“tp none” removes the take profits; give no other tp with it.")
    if clear_take_profits or take_profits:
        data["take_profit"] = take_profits
    return data


def _once(data: dict[str, Any], key: str, value: Any) -> None:
    if key in data:
        name = "order type" if key == "order_type" else CHAT_NAMES[key]
        raise SignalSyntaxError(f"{name} is given twice.")
    data[key] = value
